"""A loopback OpenAI-compatible server whose replies follow a script: faults on demand."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content: str, finish: str = "stop") -> dict:
    return {
        "choices": [
            {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients at once (the default backlog of 5 drops connections)


class FaultServer:
    """Each POST takes the next step of ``script``; after the script, ``default`` answers.

    A step is a dict: ``{"status": 200, "body": {...} | str, "sleep": s, "headers": {...}}``.
    """

    def __init__(self, script: list[dict], default: dict | None = None):
        self.script, self.default = list(script), default
        self.requests: list[dict] = []
        self.respond = None  # optional: body -> step, used once the script is done and there is no default
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                    step = server.script.pop(0) if server.script else server.default
                if step is None and server.respond is not None:
                    step = server.respond(body)
                if step is None:
                    step = {"status": 500, "body": "script exhausted"}
                time.sleep(step.get("sleep", 0))
                payload = step.get("body", "")
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(step.get("status", 200))
                    for k, v in step.get("headers", {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
