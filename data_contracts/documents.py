"""Source documents: the raw long texts everything else is made from."""

from __future__ import annotations

from pydantic import Field, model_validator

from data_contracts._base import Record, content_hash, make_id


class SourceDocument(Record):
    """One long document, read from a file, a JSONL/Parquet row or a ``datasets`` dataset.

    ``doc_id`` is a hash of the text, so the same text always gets the same ID and duplicates
    collapse; ``source`` says where it came from (a path or ``dataset:split:row``).
    """

    CONTRACT = "source_document"
    VERSION = 1

    doc_id: str
    source: str
    format: str = Field(description="txt | md | rst | jsonl | parquet | dataset")
    title: str | None = None
    text: str
    n_chars: int
    sha256: str
    license: str | None = None

    @classmethod
    def from_text(cls, text: str, source: str, format: str, **extra: str | None) -> SourceDocument:
        """Build a document and derive its ID and checksum from the text."""
        digest = content_hash(text, length=64)
        return cls(
            doc_id=make_id("doc", text),
            source=source,
            format=format,
            text=text,
            n_chars=len(text),
            sha256=digest,
            **extra,
        )

    @model_validator(mode="after")
    def _check(self) -> SourceDocument:
        if self.n_chars != len(self.text):
            raise ValueError(f"n_chars={self.n_chars} but the text has {len(self.text)} characters")
        return self
