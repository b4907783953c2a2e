"""Read source documents from files, folders, JSONL, Parquet and ``datasets`` datasets.

Bad inputs never stop a run: each one becomes an :class:`InputProblem` naming the file (and row)
and the fix, and every good document is still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from data_contracts import SourceDocument

TEXT_SUFFIXES = {".txt": "txt", ".md": "md", ".markdown": "md", ".rst": "rst", ".text": "txt"}
TABLE_SUFFIXES = {".jsonl", ".parquet"}
_BINARY_SNIFF = 8192


@dataclass(frozen=True)
class InputProblem:
    """A source that could not be read, with the reason and what to do about it."""

    source: str
    reason: str


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[InputProblem]]:
    """Expand folders (recursively, sorted) into readable files; report unknown or missing paths."""
    files: list[Path] = []
    problems: list[InputProblem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if child.suffix.lower() in TEXT_SUFFIXES or child.suffix.lower() in TABLE_SUFFIXES:
                    files.append(child)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(InputProblem(str(path), "no such file or folder"))
    return files, problems


def decode_text(data: bytes, source: str) -> str:
    """Decode UTF-8 (BOM allowed); raise ``ValueError`` naming the byte offset otherwise."""
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise ValueError("looks binary (NUL bytes); only UTF-8 text files are read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"invalid UTF-8 at byte {exc.start}; convert it first, e.g. `iconv -f latin1 -t utf-8 {source}`"
        ) from exc


def read_text_file(path: Path) -> SourceDocument:
    """Read one text/Markdown/reST file; ``ValueError`` says why it cannot be used."""
    data = path.read_bytes()
    text = decode_text(data, str(path))
    if not text.strip():
        raise ValueError("empty file (no text to chunk)")
    fmt = TEXT_SUFFIXES.get(path.suffix.lower(), "txt")
    return SourceDocument.from_text(text, source=str(path), format=fmt, title=path.stem)


def _table_rows(path: Path, text_field: str) -> Iterator[tuple[int, dict]]:
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if line.strip():
                    yield i, json.loads(line)
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            for i, row in enumerate(batch.to_pylist()):
                yield i, row


def read_table_file(path: Path, text_field: str = "text") -> Iterator[SourceDocument | InputProblem]:
    """Read documents from the ``text_field`` column of a JSONL or Parquet file."""
    fmt = path.suffix.lstrip(".")
    try:
        for i, row in _table_rows(path, text_field):
            text = row.get(text_field)
            where = f"{path}:{i + 1}"
            if not isinstance(text, str) or not text.strip():
                yield InputProblem(where, f"no non-empty string field '{text_field}' (set --text-field)")
                continue
            title = row.get("title") if isinstance(row.get("title"), str) else None
            yield SourceDocument.from_text(text, source=where, format=fmt, title=title)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, ValueError) as exc:
        yield InputProblem(str(path), f"cannot read: {exc}")


def read_documents(
    paths: Iterable[str | Path], text_field: str = "text"
) -> Iterator[SourceDocument | InputProblem]:
    """Yield every readable document under ``paths`` and an :class:`InputProblem` for the rest."""
    files, problems = expand_paths(paths)
    yield from problems
    for path in files:
        if path.suffix.lower() in TABLE_SUFFIXES:
            yield from read_table_file(path, text_field)
            continue
        try:
            yield read_text_file(path)
        except (ValueError, OSError) as exc:
            yield InputProblem(str(path), str(exc))


def read_hf_dataset(
    name: str, split: str = "train", text_field: str = "text"
) -> Iterator[SourceDocument | InputProblem]:
    """Read documents from a ``datasets`` dataset (a local ``save_to_disk`` folder or a hub name)."""
    import datasets

    path = Path(name)
    ds = datasets.load_from_disk(str(path)) if path.exists() else datasets.load_dataset(name, split=split)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[split]
    if text_field not in ds.column_names:
        yield InputProblem(name, f"no column '{text_field}' (columns: {', '.join(ds.column_names)})")
        return
    for i, row in enumerate(ds):
        text = row[text_field]
        if isinstance(text, str) and text.strip():
            yield SourceDocument.from_text(text, source=f"{name}:{split}:{i}", format="dataset")
        else:
            yield InputProblem(f"{name}:{split}:{i}", f"empty or non-string '{text_field}'")
