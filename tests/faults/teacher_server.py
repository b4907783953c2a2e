"""A deterministic OpenAI-compatible teacher, run as its own process (killable, restartable).

It answers anchored self-instruct prompts with a grounded reply: the question names the key
sentence's opening words and the answer is the key sentence itself, so every reply passes the
gates and two runs give the same bytes. ``--sleep`` slows each reply so a test can stop a build
in the middle of synthesis. Every request is counted in ``--log`` (one line per request).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = re.compile(r'Key sentences?:\n- "(.*?)"\n', re.S)


def reply_for(body: dict) -> str:
    user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    match = KEY.search(user)
    sentence = match.group(1) if match else user.strip().splitlines()[-1]
    words = sentence.split()
    return json.dumps(
        {"question": f"What does the document say about {' '.join(words[:4])}?", "answer": sentence}
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, {"status": "ok"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with open(args.log, "a") as fh:
                fh.write("request\n")
            time.sleep(args.sleep)
            content = reply_for(body)
            self._send(
                200,
                {
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10},
                },
            )

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
