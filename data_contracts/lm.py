"""Long-document language-modelling records (LIFT / ProLong style): document text that carries the loss."""

from __future__ import annotations

from pydantic import Field, model_validator

from data_contracts._base import Record, make_id


class LMRecord(Record):
    """A whole document, or one window ``document.text[char_start:char_end]`` cut for a stage length.

    The shard stage renders it as plain text (no chat template) with loss on every token, plus the
    end-of-sequence token when the record reaches the end of its document (a window cut in the
    middle must not teach the model to stop there). ``token_count`` is the text re-tokenized on its
    own with the student tokenizer; ``window`` is the stage length it was cut for (``None``: the
    whole document fits the largest one).
    """

    CONTRACT = "lm_record"
    VERSION = 1

    lm_id: str = Field(description="deterministic hash of document, span and settings")
    doc_id: str
    source: str = Field(description="the document's source file or dataset row")
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    text: str
    token_count: int = Field(ge=1)
    window: int | None = Field(
        None, description="the stage length the window was cut for; null: whole document"
    )
    ends_document: bool
    config_hash: str

    @staticmethod
    def make_id(doc_id: str, char_start: int, char_end: int, config_hash: str) -> str:
        """Deterministic record ID from its document, span and windowing settings."""
        return make_id("lm", doc_id, char_start, char_end, config_hash)

    @property
    def length(self) -> int:
        """Tokens of the rendered record (text plus the end-of-sequence token where the document ends)."""
        return self.token_count + int(self.ends_document)

    @model_validator(mode="after")
    def _check(self) -> LMRecord:
        if self.char_end <= self.char_start:
            raise ValueError(f"empty span [{self.char_start}, {self.char_end})")
        if len(self.text) != self.char_end - self.char_start:
            raise ValueError(
                f"text has {len(self.text)} chars but the span [{self.char_start}, {self.char_end}) has "
                f"{self.char_end - self.char_start}"
            )
        return self
