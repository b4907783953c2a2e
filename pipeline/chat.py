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


#: Between turns of the plain completion format (base models without a chat template).
COMPLETION_SEP = "\n\n"


class ChatFormatter:
    """Applies a model's chat template (or the plain completion format) and tokenizes with offsets.

    Args:
        tokenizer: a model folder, hub ID, or ``None`` for the packaged SmolLM2.
        system_prompt: a system turn to put first; ``None`` keeps the template's default.
        chat_template: a Jinja file that replaces the tokenizer's chat template.
        completion: render without any template: turns joined by a blank line, each trained turn
            followed by the end-of-sequence token (for base models that have no chat template).

    """

    def __init__(
        self,
        tokenizer: str | os.PathLike[str] | None = None,
        system_prompt: str | None = None,
        chat_template: str | os.PathLike[str] | None = None,
        completion: bool = False,
    ):
        self.spec = str(tokenizer) if tokenizer is not None else assets.SMOLLM2
        self.path = assets.resolve_model(tokenizer)
        self.system_prompt = system_prompt
        self.completion = completion
        self.template = _read_template(chat_template) if chat_template else None

    @property
    def template_hash(self) -> str:
        """What decides the rendering besides the tokenizer (for config hashes)."""
        import hashlib

        key = "completion" if self.completion else (self.template or "")
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @cached_property
    def hf(self):
        """The transformers tokenizer (loaded on first use)."""
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        if self.template:
            tok.chat_template = self.template
        if not self.completion and not getattr(tok, "chat_template", None):
            raise AssetError(
                f"tokenizer {self.spec} has no chat template; pass a chat/instruct model's tokenizer, "
                "a Jinja template file (shard.chat_template / --chat-template) or use the plain "
                "completion format (shard.format: completion / --format completion)"
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
        if self.completion:
            system = self.system_prompt + COMPLETION_SEP if self.system_prompt else ""
            return system + user_message(context, question) + COMPLETION_SEP
        return self.hf.apply_chat_template(
            self._messages(context, question, None), tokenize=False, add_generation_prompt=True
        )

    def render(
        self, context: str, question: str, answer: str
    ) -> tuple[str, tuple[int, int], tuple[int, int]]:
        """Full example text, the answer's char span (with end-of-turn) and the context's span."""
        prompt = self.prompt_text(context, question)
        if self.completion:
            full = prompt + answer + self.eos_token
        else:
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

    def render_turns(self, turns, assistant_turns: str = "all") -> tuple[str, list[tuple[int, int, float]]]:
        """Render a conversation; return its text and the char spans that carry loss, with weights.

        A turn's weight is its own ``weight`` or, when unset, 1 for assistant turns (every one, or
        only the last with ``assistant_turns="last"``) and 0 for the rest. A trained span includes
        the end-of-turn token that follows it, so the model learns to stop.
        """
        weights = _turn_weights(turns, assistant_turns)
        if all(t.role.value == "text" for t in turns):  # plain text (an LM record): never a template
            return self._render_plain(turns, weights, with_system=False)
        if self.completion:
            return self._render_plain(turns, weights)
        msgs = [{"role": t.role.value, "content": t.content} for t in turns]
        if self.system_prompt and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        offset = len(msgs) - len(turns)
        full = self.hf.apply_chat_template(msgs, tokenize=False)
        spans = []
        for i, w in enumerate(weights):
            if not w:
                continue
            k = i + offset
            prefix = (
                self.hf.apply_chat_template(
                    msgs[:k], tokenize=False, add_generation_prompt=msgs[k]["role"] == "assistant"
                )
                if k
                else ""
            )
            start = full.find(msgs[k]["content"], len(prefix)) if full.startswith(prefix) else -1
            if start < 0:
                raise AssetError(
                    f"the chat template of {self.spec} does not render turn {i} after the turns before it "
                    "(it rewrites earlier turns); pass a Jinja file with shard.chat_template / --chat-template"
                )
            spans.append(self._with_eos(full, start, start + len(msgs[k]["content"]), w))
        return full, spans

    def _render_plain(
        self, turns, weights, with_system: bool = True
    ) -> tuple[str, list[tuple[int, int, float]]]:
        parts, spans, pos = [], [], 0
        add_system = with_system and self.system_prompt and turns[0].role.value != "system"
        system = [self.system_prompt] if add_system else []
        for text, w in [(s, 0.0) for s in system] + [
            (t.content, w) for t, w in zip(turns, weights, strict=True)
        ]:
            if parts:
                parts.append(COMPLETION_SEP)
                pos += len(COMPLETION_SEP)
            piece = text + (self.eos_token if w else "")
            if w:
                spans.append((pos, pos + len(piece), w))
            parts.append(piece)
            pos += len(piece)
        return "".join(parts), spans

    def _with_eos(self, full: str, a0: int, a1: int, w: float) -> tuple[int, int, float]:
        if self.eos_token and full.startswith(self.eos_token, a1):
            a1 += len(self.eos_token)
        return a0, a1, w

    def encode_turns(
        self, turns, assistant_turns: str = "all", scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and per-token loss weights of a conversation (weights times ``scale``)."""
        full, spans = self.render_turns(turns, assistant_turns)
        enc = self.hf.backend_tokenizer.encode(full, add_special_tokens=False)
        off = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        weights = np.zeros(len(enc.ids), dtype=np.float32)
        for a0, a1, w in spans:
            weights[(off[:, 1] > a0) & (off[:, 0] < a1)] = w * scale
        return np.asarray(enc.ids, dtype=np.int32), weights


def _turn_weights(turns, assistant_turns: str) -> list[float]:
    assistant = [i for i, t in enumerate(turns) if t.role.value == "assistant"]
    trained = set(assistant[-1:] if assistant_turns == "last" else assistant)
    return [t.weight if t.weight is not None else (1.0 if i in trained else 0.0) for i, t in enumerate(turns)]


def _read_template(path: str | os.PathLike[str]) -> str:
    from pathlib import Path

    try:
        return Path(path).read_text()
    except OSError as exc:
        raise AssetError(f"cannot read the chat template {path}: {exc}; pass a Jinja file") from exc
