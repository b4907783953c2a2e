"""Parse a teacher's JSON reply into a typed QA candidate."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


class TeacherQA(BaseModel):
    """What the teacher must return."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str = Field(min_length=1)
    answer: str
    evidence: list[str] = Field(default_factory=list)

    @field_validator("evidence", mode="before")
    @classmethod
    def _strings(cls, value: object) -> object:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [v if isinstance(v, str) else json.dumps(v) for v in value]
        return value


def _json_candidates(text: str) -> list[str]:
    """The reply itself, fenced blocks, and the outermost ``{...}`` span."""
    out = [text.strip()]
    out += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        out.append(text[start : end + 1])
    return out


_KEY_AT = re.compile(r'"(evidence|question|answer)"\s*:\s*')


def _lenient(text: str) -> TeacherQA | None:
    """Recover the three fields from almost-JSON (unescaped inner quotes, missing brackets).

    Small models often write valid structure with one broken string; the value of each key is
    taken as everything up to the next known key, so nothing is invented, only unwrapped.
    """
    marks = [(m.group(1), m.start(), m.end()) for m in _KEY_AT.finditer(text)]
    values: dict[str, list[str]] = {}
    for i, (key, _, end) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else len(text)
        raw = text[end:stop].strip().rstrip("}").strip().rstrip(",").strip()
        if key in values:  # a repeated key means the model started looping: keep the first
            continue
        if key == "evidence":
            items = re.findall(r'"((?:[^"\\]|\\.)*)"', raw) if raw.startswith("[") else [raw.strip('"')]
            values[key] = [_unescape(i) for i in items if i.strip()]
        else:
            inner = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw.strip('"')
            values[key] = [_unescape(inner)]
    if not all(values.get(k) for k in ("question", "answer")):
        return _labelled(text)
    try:
        return TeacherQA(
            question=values["question"][0], answer=values["answer"][0], evidence=values.get("evidence", [])
        )
    except ValidationError:
        return None


_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(value: str) -> str:
    """JSON string escapes (backslash-quote, -n, -u00e9 ...) decoded; anything else left as written."""

    def one(m: re.Match) -> str:
        esc = m.group(1)
        if esc.startswith("u"):
            return chr(int(esc[1:], 16))
        return _SIMPLE.get(esc, esc)

    return _ESCAPE.sub(one, value)


_LABELLED = re.compile(
    r"question\s*:\s*-?\s*(.+?)\s*\n\s*answer\s*:\s*-?\s*(.+?)\s*(?:\n\s*\n|$)", re.I | re.S
)


def _labelled(text: str) -> TeacherQA | None:
    """``Question: ...`` / ``Answer: ...`` lines, the plain format small models fall back to."""
    m = _LABELLED.search(text)
    if not m:
        return None
    question, answer = (g.strip().strip('"').strip() for g in m.groups())
    return TeacherQA(question=question, answer=answer) if question and answer else None


def parse_reply(text: str) -> TeacherQA | None:
    """The first candidate that parses and validates, else a lenient parse, else ``None``."""
    for cand in _json_candidates(text):
        try:
            data = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        if not isinstance(data, dict):
            continue
        try:
            return TeacherQA.model_validate(data)
        except ValidationError:
            continue
    return _lenient(text)
