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


_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _bom_encoding(data: bytes) -> str | None:
    return next((enc for bom, enc in _BOMS if data.startswith(bom)), None)


def _utf16_hint(data: bytes) -> str | None:
    """A conversion hint when NUL bytes look like BOM-less UTF-16 text rather than binary."""
    sample = data[:_BINARY_SNIFF]
    even, odd = sample[0::2], sample[1::2]
    for nuls, order in ((odd, "le"), (even, "be")):
        if nuls and nuls.count(0) > 0.9 * len(nuls):
            return f"utf-16{order}"
    return None


def decode_text(data: bytes, source: str) -> str:
    """Decode UTF-8 (BOM allowed); ``ValueError`` names the problem and, for UTF-16/32, the conversion."""
    enc = _bom_encoding(data)
    if enc is not None:  # hint, never guess: binary that happens to start with ff fe is not text
        raise ValueError(
            f"starts with a {enc.upper()} byte-order mark; only UTF-8 is read, convert it first, "
            f"e.g. `iconv -f {enc} -t utf-8 {source}`"
        )
    if b"\x00" in data[:_BINARY_SNIFF]:
        utf16 = _utf16_hint(data)
        if utf16:
            raise ValueError(
                f"looks like {utf16.upper()} text without a BOM; convert it first, "
                f"e.g. `iconv -f {utf16} -t utf-8 {source}`"
            )
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


Row = tuple[int, dict | InputProblem]


def _jsonl_rows(path: Path) -> Iterator[Row]:
    """``(line number, object)`` per non-blank line; a bad line is an :class:`InputProblem` for that line only."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        enc = _bom_encoding(head)
        if enc is not None or (len(head) >= 2 and 0 in head):
            hint = enc or _utf16_hint(head + fh.read(_BINARY_SNIFF)) or "the file's encoding"
            yield (
                0,
                InputProblem(
                    str(path),
                    f"JSONL must be UTF-8, this looks like {hint.upper()}; convert it first, "
                    f"e.g. `iconv -f {hint if enc is None else enc} -t utf-8 {path}`",
                ),
            )
            return
        fh.seek(0)
        for number, raw in enumerate(fh, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    InputProblem(where, f"invalid UTF-8 at byte {exc.start} of the line; fix or remove it"),
                )
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield (
                    number,
                    InputProblem(
                        where, f"invalid JSON at column {exc.colno}: {exc.msg}; fix or remove the line"
                    ),
                )
                continue
            if not isinstance(row, dict):
                yield (
                    number,
                    InputProblem(
                        where, f"a JSON {type(row).__name__}, not an object; each line must be one object"
                    ),
                )
                continue
            yield number, row


def _parquet_rows(path: Path, text_field: str) -> Iterator[Row]:
    """``(row number, row)`` with numbers counted over the whole file (1-based), not per batch."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    if text_field not in names:
        yield (
            0,
            InputProblem(
                str(path), f"no column '{text_field}' (columns: {', '.join(names)}); set --text-field"
            ),
        )
        return
    number = 0
    for batch in pf.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def read_table_file(path: Path, text_field: str = "text") -> Iterator[SourceDocument | InputProblem]:
    """Read documents from the ``text_field`` column of a JSONL or Parquet file, line by line.

    Every problem names ``file:line`` (Parquet: ``file:row``); bad lines are skipped and the rest of
    the file is kept. A missing field is reported with the fields that exist, once per file.
    """
    fmt = path.suffix.lstrip(".").lower()
    rows = _jsonl_rows(path) if fmt == "jsonl" else _parquet_rows(path, text_field)
    missing: list[int] = []
    try:
        for number, row in rows:
            if isinstance(row, InputProblem):
                yield row
                continue
            where = f"{path}:{number}"
            if text_field not in row:
                if not missing:
                    yield InputProblem(
                        where,
                        f"no field '{text_field}' (fields: {', '.join(map(str, row))}); set --text-field",
                    )
                missing.append(number)
                continue
            text = row[text_field]
            if not isinstance(text, str) or not text.strip():
                yield InputProblem(where, f"field '{text_field}' is empty or not a string")
                continue
            title = row.get("title") if isinstance(row.get("title"), str) else None
            yield SourceDocument.from_text(text, source=where, format=fmt, title=title)
    except (OSError, ValueError) as exc:  # unreadable Parquet, I/O errors: whatever was read is kept
        yield InputProblem(str(path), f"cannot read further: {exc}")
    if len(missing) > 1:
        more = ", ".join(map(str, missing[1:6])) + (", ..." if len(missing) > 6 else "")
        yield InputProblem(
            str(path), f"{len(missing) - 1} more lines without field '{text_field}' (lines {more})"
        )


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
