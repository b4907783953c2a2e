"""The student's chat format: one place that turns (context, question, answer) into tokens.

Synthesis measures lengths with it, the shard stage tokenizes with it and evaluation prompts with
it, so a length measured in one stage is the length the trainer sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pipeline import assets
from pipeline.errors import AssetError


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of a chat example with per-token masks for answer and context tokens."""

    input_ids: np.ndarray  # int32
    answer_mask: np.ndarray  # bool: the answer and the end-of-turn token after it
    context_mask: np.ndarray  # bool: tokens inside the document context

    @property
    def length(self) -> int:
        """Number of tokens."""
        return len(self.input_ids)


def user_message(context: str, question: str) -> str:
    """The user turn: the document(s), then the question (document first: prefix-cache friendly)."""
    return f"{context}\n\n{question}" if context else question


class ChatFormatter:
    """Applies a model's chat template and tokenizes with offsets.

    Args:
        tokenizer: a model folder, hub ID, or ``None`` for the packaged SmolLM2.
        system_prompt: a system turn to put first; ``None`` keeps the template's default.

    """

    def __init__(self, tokenizer: str | os.PathLike[str] | None = None, system_prompt: str | None = None):
        self.spec = str(tokenizer) if tokenizer is not None else assets.SMOLLM2
        self.path = assets.resolve_model(tokenizer)
        self.system_prompt = system_prompt

    @cached_property
    def hf(self):
        """The transformers tokenizer (loaded on first use)."""
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        if not getattr(tok, "chat_template", None):
            raise AssetError(
                f"tokenizer {self.spec} has no chat template; pass a chat/instruct model's tokenizer"
            )
        if not hasattr(tok, "backend_tokenizer"):
            raise AssetError(f"tokenizer {self.spec} has no fast (Rust) backend; offsets need one")
        return tok

    @property
    def eos_token(self) -> str:
        """The end-of-turn token text."""
        return self.hf.eos_token or ""

    def _messages(self, context: str, question: str, answer: str | None) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        msgs.append({"role": "user", "content": user_message(context, question)})
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
        return msgs

    def prompt_text(self, context: str, question: str) -> str:
        """The rendered prompt, ending with the assistant's generation prefix."""
        return self.hf.apply_chat_template(
            self._messages(context, question, None), tokenize=False, add_generation_prompt=True
        )

    def render(
        self, context: str, question: str, answer: str
    ) -> tuple[str, tuple[int, int], tuple[int, int]]:
        """Full example text, the answer's char span (with end-of-turn) and the context's span."""
        prompt = self.prompt_text(context, question)
        full = self.hf.apply_chat_template(self._messages(context, question, answer), tokenize=False)
        if not full.startswith(prompt) or full.find(answer, len(prompt)) < 0:
            raise AssetError(f"the chat template of {self.spec} does not render the answer after the prompt")
        a0 = full.index(answer, len(prompt))
        a1 = a0 + len(answer)
        if self.eos_token and full.startswith(self.eos_token, a1):
            a1 += len(self.eos_token)
        c0 = prompt.find(user_message(context, question)) if context else -1
        return full, (a0, a1), (c0, c0 + len(context)) if c0 >= 0 else (0, 0)

    def encode(self, context: str, question: str, answer: str) -> EncodedExample:
        """Tokenize a full example with answer and context masks."""
        full, (a0, a1), (c0, c1) = self.render(context, question, answer)
        enc = self.hf.backend_tokenizer.encode(full, add_special_tokens=False)
        off = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        starts, ends = off[:, 0], off[:, 1]
        answer_mask = (ends > a0) & (starts < a1)
        context_mask = (starts >= c0) & (ends <= c1) & (c1 > c0)
        return EncodedExample(np.asarray(enc.ids, dtype=np.int32), answer_mask, context_mask)

    def count(self, text: str) -> int:
        """Token count of raw text (no template)."""
        return len(self.hf.backend_tokenizer.encode(text, add_special_tokens=False))

    def count_prompt(self, context: str, question: str) -> int:
        """Tokens of the rendered prompt."""
        return self.count(self.prompt_text(context, question))

    def count_example(self, context: str, question: str, answer: str) -> int:
        """Tokens of the full rendered example (prompt + answer + end of turn)."""
        full, _, _ = self.render(context, question, answer)
        return self.count(full)
