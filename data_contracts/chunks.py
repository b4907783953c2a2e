"""Chunks: exact spans of a source document, measured in the student model's tokens."""

from __future__ import annotations

from pydantic import Field, model_validator

from data_contracts._base import Record, make_id


class Chunk(Record):
    """A contiguous span ``document.text[char_start:char_end]``.

    ``token_start``/``token_end`` locate the span in the document's token stream;
    ``token_count`` is the length of ``text`` re-tokenized on its own, the number the
    ``max_tokens`` budget is enforced on. ``section_path`` is the heading trail when the
    format has headings (Markdown, reST).
    """

    CONTRACT = "chunk"
    VERSION = 1

    chunk_id: str
    doc_id: str
    index: int = Field(ge=0)
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    token_start: int = Field(ge=0)
    token_end: int = Field(ge=0)
    token_count: int = Field(ge=0)
    text: str
    chunker: str
    config_hash: str
    section_path: list[str] = Field(default_factory=list)

    @staticmethod
    def make_id(doc_id: str, char_start: int, char_end: int, config_hash: str) -> str:
        """Deterministic chunk ID from its document, span and chunker configuration."""
        return make_id("chk", doc_id, char_start, char_end, config_hash)

    @model_validator(mode="after")
    def _check(self) -> Chunk:
        if self.char_end < self.char_start:
            raise ValueError(f"char_end {self.char_end} < char_start {self.char_start}")
        if len(self.text) != self.char_end - self.char_start:
            raise ValueError(
                f"text has {len(self.text)} characters but the span is "
                f"{self.char_end - self.char_start} ({self.char_start}:{self.char_end})"
            )
        if self.token_end < self.token_start:
            raise ValueError(f"token_end {self.token_end} < token_start {self.token_start}")
        return self
