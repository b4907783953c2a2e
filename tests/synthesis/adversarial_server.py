"""An adversarial OpenAI-compatible teacher: a real HTTP server with good replies and every bad class.

Generation requests get a reply class chosen by a hash of the excerpt (so a run is reproducible),
and the server remembers what it gave (``labels``: question -> class) so a benchmark can count
the bad items that were kept. Transport faults (429, 500, a timeout) hit the first attempt of some
requests. Judge requests are answered by a small honest judge (negation and word overlap against
the evidence it is shown); closed-book requests are answered only for questions the "teacher knows".
"""

from __future__ import annotations

import hashlib
import json
import re
import threading

from tests.synthesis.fault_server import FaultServer, completion

GOOD = "good"
# Bad classes: what the gates must drop.
BAD = (
    "negated",  # answer negates its verbatim evidence
    "truncated",  # cut by the token limit, still parses
    "reworded",  # an earlier question reworded by two words
    "exact_dup",  # an earlier question verbatim
    "known",  # answerable without the document
    "soft_refusal",  # "The text does not specify ..."
    "paraphrased_quote",  # evidence not verbatim
    "failure_string",  # an error message as the answer
    "bad_ellipsis",  # "<real start> ... <invented end>"
    "unrelated_summary",  # a summary about something else
)
# Good classes with a twist the pipeline must handle correctly (they count as good).
TWISTED = ("escaped", "ellipsis", "http_429", "http_500", "timeout", "cut_once")
FAILURE_STRINGS = ("Error: the model failed", "[ERROR]", "as an AI language model", "upstream timeout")
_WORDS = re.compile(r"[a-z0-9]+")
_SENT = re.compile(r"[A-Z][^.!?\n]{30,220}[.!?]")


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _content(text: str) -> set[str]:
    return {w for w in _WORDS.findall(text.lower()) if len(w) > 3}


class AdversarialTeacher(FaultServer):
    """The server; ``mix`` maps class -> weight (default: half good, the rest spread over bad classes).

    Args:
        delay: seconds every reply waits (a slow server).
        fault_timeout: how long a "timeout" reply sleeps (make it longer than the client timeout).

    """

    def __init__(self, mix: dict[str, int] | None = None, delay: float = 0.0, fault_timeout: float = 1.5):
        super().__init__([], default=None)
        self.mix = mix or {GOOD: 10, **dict.fromkeys(BAD, 1), **dict.fromkeys(TWISTED, 1)}
        self.delay, self.fault_timeout = delay, fault_timeout
        self.labels: dict[str, str] = {}  # question -> class
        self.known: dict[str, str] = {}  # question -> answer the teacher knows unread
        self.issued: list[tuple[str, list[str], str]] = []  # good (question, evidence, answer) so far
        self.attempts: dict[str, int] = {}
        self.exact_dups: set[tuple[str, str]] = set()  # (question, answer) of verbatim repeats
        self.dup_of: dict[str, str] = {}  # reworded question -> the question it rewords
        self.calls = 0
        self._state = threading.Lock()
        self.respond = self._respond

    def _class(self, excerpt: str) -> str:
        table = [c for c, w in sorted(self.mix.items()) for _ in range(w)]
        return table[_h(excerpt) % len(table)]

    def _respond(self, body: dict) -> dict:
        """One step for ``body`` (a FaultServer step: status, body, sleep, headers)."""
        msgs = body["messages"]
        prompt = msgs[-1]["content"]
        key = json.dumps(msgs, sort_keys=True) + str(body.get("max_tokens"))
        with self._state:
            self.calls += 1
            n = self.attempts[key] = self.attempts.get(key, 0) + 1
        if "Proposed answer:" in prompt:
            return self._ok(self._judge(prompt))
        if "If you do not know" in prompt:
            q = prompt.split("Question:", 1)[1].strip()
            return self._ok(self.known.get(q, "unknown"))
        excerpt = next(m["content"] for m in msgs if m["role"] == "user")
        kind = self._class(excerpt)
        if "Summarize this section" in prompt:
            sents = _SENT.findall(prompt.split('"""')[1]) or [prompt.split('"""')[1].strip()[:200]]
            return self._ok(json.dumps({"summary": " ".join(sents[:2])}))
        if "summary of the whole document" in prompt:
            parts = re.findall(r"^Section \d+: (.*)$", prompt, re.M)
            answer = " ".join(parts[:8])
            if kind == "unrelated_summary":
                answer = "The recipe explains how to bake sourdough bread overnight in a dutch oven. " * 3
            question = f"Summarize the whole document, section {len(parts)} included."
            with self._state:
                self.labels.setdefault(question, kind if kind == "unrelated_summary" else GOOD)
            return self._ok(json.dumps({"question": question, "answer": answer.strip()}))
        if "every one of the" in prompt or "facts from both documents" in prompt:
            return self._ok(self._multi_segment(prompt, cite="both documents" in prompt))
        if n == 1 and kind in ("http_429", "http_500", "timeout"):
            return {
                "http_429": {"status": 429, "body": "slow down", "headers": {"Retry-After": "0.2"}},
                "http_500": {"status": 500, "body": "internal error"},
                "timeout": {"sleep": self.fault_timeout, "body": completion("too late")},
            }[kind]
        return self._generate(excerpt, kind, body)

    def _multi_segment(self, prompt: str, cite: bool = False) -> str:
        excerpts = prompt.split('"""')[1::2]
        sents = [(_SENT.findall(e) or [e.strip()[:150]])[0].strip() for e in excerpts]
        topics = [" ".join(w for w in s.split()[1:6] if len(w) > 3) for s in sents]
        question = "How do these parts relate: " + "; ".join(topics) + "?"
        answer = " ".join(
            " ".join(s.rstrip(".!?").split()[:8]) + (f" [{i}]." if cite else ".")
            for i, s in enumerate(sents, 1)
        )
        with self._state:
            self.labels.setdefault(question, GOOD)
        return json.dumps({"evidence": sents, "question": question, "answer": answer})

    def _ok(self, text: str, finish: str = "stop") -> dict:
        return {"sleep": self.delay, "body": completion(text, finish)}

    def _judge(self, prompt: str) -> str:
        evidence = prompt.split('"""')[1]
        answer = prompt.split("Proposed answer:", 1)[1].split("\n")[0]
        ev = " ".join(_WORDS.findall(evidence.lower()))
        if any(" ".join(g) not in ev for g in _neg_grams(answer)):
            verdict, why = "contradicted", "the answer negates what the evidence states"
        elif len(_content(answer) & _content(evidence)) < 0.6 * max(1, len(_content(answer))):
            verdict, why = "not_supported", "the evidence does not say this"
        else:
            verdict, why = "supported", "the evidence states it"
        return json.dumps({"verdict": verdict, "reason": why})

    def _generate(self, excerpt: str, kind: str, body: dict) -> dict:
        text = excerpt.split('"""')[1] if '"""' in excerpt else excerpt
        sents = [s.strip() for s in _SENT.findall(text)] or [text.strip()[:200]]
        start = _h(json.dumps(body["messages"][:2]))
        with self._state:  # a sentence no earlier reply used, so every question is its own
            for k in range(len(sents)):
                sent = sents[(start + k) % len(sents)]
                if _question(sent) not in self.labels:
                    break
        words = sent.rstrip(".!?").split()
        topic = " ".join(w for w in words[1:] if len(w) > 3 or w.isdigit())[:60]
        question = _question(sent)
        answer = " ".join(words[: min(len(words), 14)]) + "."
        evidence = [sent]
        if "summary of the main points" in excerpt:
            i = sents.index(sent)
            evidence = (sents[i:] + sents[:i])[:3]
            question = f"Summarize what the document says about {topic}."
            answer = " ".join(evidence)
            if kind == "unrelated_summary":
                answer = (
                    "The recipe explains how to bake sourdough bread, proof the dough overnight, score the loaf "
                    "and bake it in a hot dutch oven until the crust is dark."
                )
        elif kind == "unrelated_summary":
            kind = GOOD
        finish = "stop"
        with self._state:
            earlier = self.issued[-1] if self.issued else None
        if kind == "negated":
            answer = _negate(answer)
        elif kind == "truncated":
            answer, finish = " ".join(words[:4]) + " does not", "length"
        elif kind == "cut_once" and body.get("max_tokens", 0) < 300:
            answer, finish = " ".join(words[:4]), "length"
        elif kind == "reworded" and earlier:
            question = (
                earlier[0]
                .replace("What does", "What exactly does")
                .replace("state about", "say about")
                .replace("Summarize what the document says", "Briefly summarize what the text says")
            )
            self.dup_of[question] = earlier[0]
        elif kind == "exact_dup" and earlier:
            question = earlier[0]
            self.exact_dups.add((question, answer))
        elif kind == "known":
            self.known[question] = answer
        elif kind == "soft_refusal":
            answer = f"The text does not specify which {topic.split()[0] if topic else 'value'} is meant."
        elif kind == "paraphrased_quote":
            evidence = [" ".join(reversed(words[:12])) + " indeed."]
        elif kind == "failure_string":
            answer = "Error: the model failed to generate a response [ERROR] upstream timeout."
        elif kind == "bad_ellipsis":
            evidence = [" ".join(words[:5]) + " ... and then the committee approved the budget in full."]
        elif kind == "ellipsis" and len(words) > 12:
            evidence = [" ".join(words[:5]) + " ... " + " ".join(words[-5:])]
        elif kind in ("reworded", "exact_dup"):
            kind = GOOD  # nothing earlier to copy yet
        reply = json.dumps({"evidence": evidence, "question": question, "answer": answer})
        if kind == "escaped":  # almost-JSON: inner quotes unescaped in one field, escaped in another
            reply = (
                '{"evidence": '
                + json.dumps(evidence)
                + f', "question": "{question[:-1]} (the "main" point)?", '
                f'"answer": "It states \\"{answer[:-1]}\\"."}}'
            )
            question = f'{question[:-1]} (the "main" point)?'
        with self._state:
            if kind != "exact_dup":
                self.labels.setdefault(question, kind)
            if kind in (GOOD, "ellipsis", "http_429", "http_500", "timeout"):
                self.issued.append((question, evidence, answer))
        return self._ok(reply, finish)


def _neg_grams(text: str) -> list[tuple[str, ...]]:
    """Each negation with the word before it ("is not"): a negation the evidence lacks is a contradiction."""
    words = _WORDS.findall(text.lower().replace("n't", " not"))
    return [
        tuple(words[max(0, i - 1) : i + 1])
        for i, w in enumerate(words)
        if w in ("not", "no", "never", "cannot")
    ]


def _question(sent: str) -> str:
    topic = " ".join(w for w in sent.rstrip(".!?").split()[1:] if len(w) > 3 or w.isdigit())[:80]
    return f"What does the document state about {topic}?"


def _negate(answer: str) -> str:
    for verb in (" is ", " are ", " must ", " may ", " can ", " will ", " should ", " was ", " has "):
        if verb in answer:
            return answer.replace(verb, verb.rstrip() + " not ", 1)
    return "It is not the case that " + answer[0].lower() + answer[1:]
