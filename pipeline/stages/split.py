"""Deterministic train / held-out split of QA records.

Evaluation numbers are only honest on rows the adapter never trained on. The split is a pure
function of a record's content hash, so every stage (shards, evaluation) agrees on it without
passing lists around, and a rerun puts every record on the same side.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from data_contracts import BuildManifest, Conversation, LMRecord, QARecord

SplitBy = Literal["document", "record"]
HELDOUT_DIR = "heldout"


def split_key(rec: QARecord | Conversation | LMRecord, by: SplitBy) -> str:
    """What decides a record's side: its evidence document (default) or the record itself.

    Splitting by document keeps every question about a held-out document out of training, so the
    model cannot have seen the context either; ``record`` suits corpora with very few documents.
    """
    if isinstance(rec, LMRecord):
        return rec.doc_id if by == "document" else rec.lm_id
    if isinstance(rec, Conversation):
        docs = sorted(rec.doc_ids) if by == "document" else []
        return docs[0] if docs else rec.conversation_id
    if by == "record":
        return rec.qa_id
    evidence_docs = [e.doc_id for e in rec.evidence if e.doc_id]
    return (evidence_docs or sorted(rec.doc_ids) or [rec.qa_id])[0]


def is_heldout(rec: QARecord | Conversation | LMRecord, fraction: float, by: SplitBy = "document") -> bool:
    """True when ``rec`` belongs to the held-out share ``fraction`` (0 keeps everything for training)."""
    return key_is_heldout(split_key(rec, by), fraction)


def key_is_heldout(key: str, fraction: float) -> bool:
    """True when a split key (see :func:`split_key`) falls in the held-out share ``fraction``."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def build_split(manifest: BuildManifest) -> str:
    """``train`` or ``heldout`` for a tokenized build (older builds have no split: ``train``)."""
    return json.loads(manifest.config_json).get("split", "train")


__all__ = ["HELDOUT_DIR", "SplitBy", "build_split", "is_heldout", "key_is_heldout", "split_key"]
