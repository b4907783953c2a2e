"""Record base class and deterministic ID helpers shared by every contract."""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """Base of every record that crosses a stage boundary.

    Records are frozen (hashable, safe to share between threads) and reject unknown fields, so a
    typo in a producer fails loudly instead of silently dropping data. Each concrete record names
    its contract and version; the Arrow schema derived from it carries both in its metadata.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    CONTRACT: ClassVar[str] = ""
    VERSION: ClassVar[int] = 0


def canonical_json(value: Any) -> str:
    """Serialise ``value`` to a canonical JSON string (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(*parts: Any, length: int = 16) -> str:
    """Return a hex digest of ``parts``: the same inputs always give the same ID, across machines."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else canonical_json(part).encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))  # length prefix: ("ab","c") != ("a","bc")
        h.update(data)
    return h.hexdigest()[:length]


def make_id(prefix: str, *parts: Any) -> str:
    """Return a deterministic, typed ID such as ``doc-3f2a...``."""
    return f"{prefix}-{content_hash(*parts)}"
