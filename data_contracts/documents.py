"""Source documents: the raw long texts everything else is made from."""

from __future__ import annotations

import hashlib

from pydantic import Field, model_validator

from data_contracts._base import Record


def doc_id_from_sha256(digest: str) -> str:
    """Document ID from the hex sha256 of its UTF-8 text (streamable: no need to hold the text)."""
    return f"doc-{digest[:16]}"


class SourceDocument(Record):
    """One long document, read from a file, a JSONL/Parquet row or a ``datasets`` dataset.

    ``doc_id`` is derived from the sha256 of the UTF-8 text, so the same text always gets the same
    ID (also when a huge file is streamed) and duplicates collapse; ``source`` says where it came
    from (a path or ``dataset:split:row``).
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
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return cls(
            doc_id=doc_id_from_sha256(digest),
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
