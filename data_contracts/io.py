"""Read and write contract-stamped Arrow IPC shards atomically.

Shards use the IPC *stream* format: ``datasets.Dataset.from_file`` memory-maps it zero-copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from data_contracts._base import Record
from data_contracts.arrow import check_schema, records_to_table, schema_contract, table_to_records
from data_contracts.errors import ContractError

TMP_SUFFIX = ".tmp"  # temporary files of atomic writes: ``.<name>.<random>.tmp``


def current_umask() -> int:
    """The process umask (read without changing it where ``/proc`` allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: the classic swap (not thread-safe, but only used off Linux)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half.

    The file gets the permissions a plain ``open`` would give (``0666 & ~umask``): ``mkstemp``
    alone creates 0600 files, which would make shards unreadable to a group the umask allows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """A staging folder beside ``out`` that replaces ``out`` when the block succeeds.

    When the block raises, the staging folder is removed and ``out`` is left as it was. The folder
    gets the permissions a plain ``mkdir`` would give (``0777 & ~umask``), not ``mkdtemp``'s 0700,
    so a group the umask allows can read what is published.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tmp.chmod(0o777 & ~current_umask())
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def table_to_ipc_bytes(table: pa.Table) -> bytes:
    """Serialise a table to IPC stream bytes (deterministic for the same table)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_table(path: str | Path, table: pa.Table) -> str:
    """Atomically write ``table`` as an IPC stream file; return its sha256."""
    data = table_to_ipc_bytes(table)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def write_records(path: str | Path, records: list[Record], model: type[Record]) -> str:
    """Validate-by-construction and write ``records`` with ``model``'s derived schema."""
    return write_table(path, records_to_table(records, model))


def read_table(path: str | Path) -> pa.Table:
    """Read an IPC stream (or file) shard; a corrupt or missing file raises ``ContractError``."""
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: shard is missing; rerun the stage that writes it")
    try:
        with pa.memory_map(str(path)) as src:
            try:
                return pa.ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                src.seek(0)
                return pa.ipc.open_file(src).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(
            f"{path}: not a readable Arrow shard ({exc}); it is corrupt or truncated, "
            "delete it and rerun the stage that writes it"
        ) from exc


def read_records(path: str | Path, model: type[Record]) -> Iterator[Record]:
    """Yield validated records of ``model`` from a shard (contract and version are checked)."""
    table = read_table(path)
    check_schema(table.schema, model, str(path))
    yield from table_to_records(table, model, str(path))


def shard_contract(path: str | Path) -> tuple[str, int] | None:
    """The ``(contract, version)`` stamp of a shard, read from its schema only."""
    return schema_contract(read_table(path).schema)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def iter_batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Group an iterable of records into lists of ``size``."""
    batch: list[Record] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
