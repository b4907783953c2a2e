"""Chat and instruction datasets -> :class:`~data_contracts.Conversation` records.

Formats (``auto`` picks one per row from its keys):

* ``messages``: OpenAI style, ``{"messages": [{"role": "user", "content": ...}, ...]}``.
* ``sharegpt``: ``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}``.
* ``alpaca``: ``{"instruction", "input", "output"}`` (optional ``system`` and ``history``).
* ``longalign``: ``{"context", "question" | "instruction", "answer" | "output"}`` (the document first,
  like lengthwise's own QA); LongAlign-10k's ``messages`` rows are read as ``messages``.

Rows come from JSONL (read line by line), a JSON array, Parquet, a ``datasets`` ``save_to_disk``
folder, or a hub dataset ID when online. A bad row becomes an :class:`InputProblem` naming the file
and line, and the rest goes on. A per-row ``system`` field (or a system turn) is kept as that
record's system prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from data_contracts import content_hash, make_id
from data_contracts.conversations import Conversation, Role, Turn
from pipeline.io.readers import InputProblem

ChatFormat = Literal["auto", "messages", "sharegpt", "alpaca", "longalign"]
CHAT_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "longalign")
CHAT_SUFFIXES = (".jsonl", ".json", ".parquet")

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "human": Role.USER,
    "assistant": Role.ASSISTANT,
    "gpt": Role.ASSISTANT,
    "model": Role.ASSISTANT,
    "chatgpt": Role.ASSISTANT,
    "bot": Role.ASSISTANT,
}


class RowError(ValueError):
    """A row that cannot be turned into a conversation; the message says which field and why."""


def detect_format(row: dict) -> str:
    """The format a row is in, from its keys."""
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "context" in row and ("question" in row or "instruction" in row):
        return "longalign"
    if "instruction" in row and "output" in row:
        return "alpaca"
    raise RowError(
        f"unknown row format (keys: {', '.join(sorted(row)) or 'none'}); expected messages, conversations, "
        "instruction/input/output or context/question/answer"
    )


def _text(row: dict, key: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise RowError(f"field '{key}' must be a non-empty string")
    return value


def _turns_from(items, role_key: str, content_key: str, field: str) -> list[Turn]:
    if not isinstance(items, list) or not items:
        raise RowError(f"field '{field}' must be a non-empty list of turns")
    turns = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RowError(f"{field}[{i}] is not an object")
        role = _ROLES.get(str(item.get(role_key, "")).lower())
        if role is None:
            raise RowError(f"{field}[{i}].{role_key}: unknown role {item.get(role_key)!r}")
        content = item.get(content_key)
        if not isinstance(content, str):
            raise RowError(f"{field}[{i}].{content_key} must be a string")
        turns.append(Turn(role=role, content=content))
    return turns


def row_turns(row: dict, fmt: str) -> list[Turn]:
    """The turns of one row in format ``fmt`` (a system turn first when the row has one)."""
    match fmt:
        case "messages":
            turns = _turns_from(row.get("messages"), "role", "content", "messages")
        case "sharegpt":
            turns = _turns_from(row.get("conversations"), "from", "value", "conversations")
        case "alpaca":
            turns = []
            for pair in row.get("history") or []:
                if not (isinstance(pair, list | tuple) and len(pair) == 2):
                    raise RowError("field 'history' must be a list of [instruction, response] pairs")
                turns += [Turn(role=Role.USER, content=pair[0]), Turn(role=Role.ASSISTANT, content=pair[1])]
            extra = _text(row, "input", required=False)
            prompt = _text(row, "instruction") + (f"\n\n{extra}" if extra.strip() else "")
            turns += [
                Turn(role=Role.USER, content=prompt),
                Turn(role=Role.ASSISTANT, content=_text(row, "output")),
            ]
        case "longalign":
            question = _text(row, "question" if "question" in row else "instruction")
            answer = _text(row, "answer" if "answer" in row else "output")
            user = f"{_text(row, 'context')}\n\n{question}"
            turns = [Turn(role=Role.USER, content=user), Turn(role=Role.ASSISTANT, content=answer)]
        case _:
            raise RowError(f"unknown format {fmt!r}; use one of {', '.join(CHAT_FORMATS)}")
    system = row.get("system")
    if isinstance(system, str) and system.strip() and turns[0].role != Role.SYSTEM:
        turns.insert(0, Turn(role=Role.SYSTEM, content=system))
    return turns


def to_conversation(row, fmt: str, where: str, system_prompt: str | None = None) -> Conversation:
    """One row -> a Conversation (raises :class:`RowError` naming the field)."""
    if not isinstance(row, dict):
        raise RowError("a row must be a JSON object")
    fmt = detect_format(row) if fmt == "auto" else fmt
    turns = row_turns(row, fmt)
    if system_prompt and turns[0].role != Role.SYSTEM:
        turns.insert(0, Turn(role=Role.SYSTEM, content=system_prompt))
    key = [(t.role.value, t.content) for t in turns]
    try:
        return Conversation(
            conversation_id=make_id("conv", content_hash(key)),
            turns=turns,
            source=where,
            source_format=fmt,
        )
    except ValidationError as exc:
        raise RowError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from exc


def _rows(path: Path) -> Iterator[tuple[str, object]]:
    """(where, row) for every row of a file; JSONL is read line by line."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        yield f"{path}:{n}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield f"{path}:{n}", RowError(f"invalid JSON: {exc.msg} at column {exc.colno}")
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        for i, row in enumerate(data if isinstance(data, list) else [data]):
            yield f"{path}:item {i}", row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            for row in batch.to_pylist():
                n += 1
                yield f"{path}:row {n}", row
    else:
        raise RowError(f"unsupported file type {suffix!r}; use .jsonl, .json or .parquet")


def _dataset_rows(name: str, split: str) -> Iterator[tuple[str, object]]:
    import datasets

    path = Path(name)
    ds = datasets.load_from_disk(str(path)) if path.exists() else datasets.load_dataset(name, split=split)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[split]
    for i, row in enumerate(ds):
        yield f"{name}:{split}:{i}", row


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in CHAT_SUFFIXES and p.is_file())
    return [path]


def is_datasets_folder(path: Path) -> bool:
    """True for a ``datasets`` ``save_to_disk`` folder."""
    return path.is_dir() and any((path / n).exists() for n in ("dataset_info.json", "dataset_dict.json"))


def read_conversations(
    source: str | Path,
    fmt: str = "auto",
    split: str = "train",
    system_prompt: str | None = None,
    max_rows: int | None = None,
) -> Iterator[Conversation | InputProblem]:
    """Every conversation in ``source`` (file, folder of files, ``datasets`` folder or hub ID).

    Bad rows and unreadable sources are yielded as :class:`InputProblem` (file and line, reason);
    nothing stops the rest.
    """
    path = Path(source)
    if path.exists() and not is_datasets_folder(path):
        streams = [(str(p), _rows(p)) for p in _files(path)]
        if not streams:
            yield InputProblem(str(path), "no .jsonl, .json or .parquet files in this folder")
    else:
        streams = [(str(source), _dataset_rows(str(source), split))]
    kept = 0
    for name, rows in streams:
        try:
            for where, row in rows:
                if max_rows and kept >= max_rows:
                    return
                try:
                    if isinstance(row, RowError):
                        raise row
                    yield to_conversation(row, fmt, where, system_prompt)
                    kept += 1
                except RowError as exc:
                    yield InputProblem(where, str(exc))
        except Exception as exc:  # a source that cannot be opened at all: name it, keep the others
            yield InputProblem(name, dataset_open_error(name, exc))


def dataset_open_error(name: str, exc: Exception) -> str:
    """Why a source could not be opened at all, and what to do (offline hub IDs get their own line)."""
    import os

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not Path(name).exists() and offline:
        return (
            f"cannot load hub dataset {name!r} while offline (HF_HUB_OFFLINE is set): unset it, or "
            "download the data and point to the local file or folder"
        )
    if not Path(name).exists():
        return f"no such file or folder, and not loadable as a hub dataset ({type(exc).__name__}: {exc})"
    return f"cannot read: {type(exc).__name__}: {exc}"


__all__ = [
    "CHAT_FORMATS",
    "ChatFormat",
    "RowError",
    "dataset_open_error",
    "detect_format",
    "read_conversations",
    "to_conversation",
]
