"""Golden schema snapshots: a schema change without a version bump must fail the tests.

Run ``python -m data_contracts.snapshots --update`` after bumping a contract's ``VERSION``
to record the new schema next to the old ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa

from data_contracts import ALL_CONTRACTS, to_arrow_schema
from data_contracts._base import Record

SNAPSHOT_DIR = Path(__file__).parent / "schemas"


def describe(schema: pa.Schema) -> list[dict[str, object]]:
    """A full, untruncated description of every field of ``schema``."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def snapshot_path(model: type[Record]) -> Path:
    """Where the snapshot of ``model``'s current version lives."""
    return SNAPSHOT_DIR / f"{model.CONTRACT}.v{model.VERSION}.json"


def render(model: type[Record]) -> str:
    """The snapshot text of ``model``'s current schema."""
    doc = {"contract": model.CONTRACT, "version": model.VERSION, "fields": describe(to_arrow_schema(model))}
    return json.dumps(doc, indent=2) + "\n"


def update() -> list[Path]:
    """Write snapshots for contract versions that have none yet; never overwrite an old one."""
    written = []
    for model in ALL_CONTRACTS.values():
        path = snapshot_path(model)
        if not path.exists():
            path.write_text(render(model))
            written.append(path)
    return written


if __name__ == "__main__":
    if "--update" in sys.argv:
        for p in update():
            print(f"wrote {p}")
    else:
        print(__doc__)
