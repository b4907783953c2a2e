"""Imported conversations: chat and instruction data from outside lengthwise, one typed record each.

A :class:`Conversation` is an ordered list of turns. Which tokens carry loss is data, not a
formatting accident: each turn says whether it is trained (``weight``), so the shard stage can put
loss on every assistant turn, on the last one only, or on a whole document. A long-document
language-modelling record is the same record with one ``text`` turn of weight 1 rendered as a
plain completion (no chat template).
"""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from data_contracts._base import Record


class Role(enum.StrEnum):
    """Who speaks a turn; ``text`` is raw text outside any chat template (completion format)."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TEXT = "text"


class Turn(Record):
    """One turn of a conversation.

    ``weight`` is the loss weight of its tokens; ``None`` means the stage decides from the role
    (assistant turns trained, the rest not, following ``shard.assistant_turns``).
    """

    CONTRACT = "turn"
    VERSION = 1

    role: Role
    content: str
    weight: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Turn:
        if self.weight is not None and not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        return self


class Conversation(Record):
    """A multi-turn conversation (or a plain text) imported from a chat/instruction dataset."""

    CONTRACT = "conversation"
    VERSION = 1

    conversation_id: str = Field(description="deterministic hash of the turns")
    turns: list[Turn] = Field(min_length=1)
    source: str = Field(description="where it came from: file:line or dataset:split:row")
    source_format: str = Field(description="messages | sharegpt | alpaca | longalign | text")
    task_type: str = Field("chat", description="what it trains (a shard's task column): chat, lm, ...")
    doc_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Conversation:
        roles = [t.role for t in self.turns]
        if Role.SYSTEM in roles[1:]:
            raise ValueError("a system turn may only come first")
        if not any(t.weight or (t.weight is None and t.role == Role.ASSISTANT) for t in self.turns):
            raise ValueError("nothing to train on: no assistant turn and no turn with a loss weight")
        if Role.TEXT in roles and any(r not in (Role.TEXT,) for r in roles):
            raise ValueError("text turns (plain completion records) cannot be mixed with chat roles")
        return self
