"""One tokenizer interface for the whole pipeline, backed by the Rust ``tokenizers`` library.

Accepts a ``tokenizers.Tokenizer``, a transformers fast tokenizer, a ``tokenizer.json`` path, a
model folder, the alias ``smollm2-135m`` (the packaged default) or a hub ID. Truncation and
padding are switched off: some shipped tokenizers (MiniLM's) truncate at 128 tokens, which would
silently undercount every chunk.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from pipeline import assets
from pipeline.errors import AssetError

TokenizerLike = Any  # Tokenizer | PreTrainedTokenizerFast | str | Path | TokenizerAdapter | None


@dataclass(frozen=True)
class Encoding:
    """Token ids of a text and each token's character span in it."""

    ids: list[int]
    offsets: list[tuple[int, int]]


class TokenizerAdapter:
    """Counts and encodes text with a Rust tokenizer, never adding special tokens."""

    def __init__(self, backend: Tokenizer, name: str) -> None:
        self._tk = Tokenizer.from_str(backend.to_str())  # private copy: settings below stay local
        self._tk.no_truncation()
        self._tk.no_padding()
        self.name = name
        self.fingerprint = hashlib.sha256(self._tk.to_str().encode()).hexdigest()[:16]
        self.additive_at_whitespace = _probe_additivity(self._tk)

    @property
    def backend(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tk

    def encode(self, text: str) -> Encoding:
        """Token ids and character offsets of ``text``."""
        enc = self._tk.encode(text, add_special_tokens=False)
        return Encoding(enc.ids, enc.offsets)

    def encode_batch(self, texts: list[str]) -> list[Encoding]:
        """Encode many texts in parallel (Rust threads)."""
        return [Encoding(e.ids, e.offsets) for e in self._tk.encode_batch(texts, add_special_tokens=False)]

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self._tk.encode(text, add_special_tokens=False))

    def count_batch(self, texts: list[str]) -> list[int]:
        """Token counts of many texts, computed in parallel (no offsets: faster)."""
        if not texts:
            return []
        return [len(e) for e in self._tk.encode_batch_fast(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Decode ids back to text (for display only; spans are always sliced from the source)."""
        return self._tk.decode(ids)

    def __getstate__(self) -> dict[str, str]:
        return {"json": self._tk.to_str(), "name": self.name}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(Tokenizer.from_str(state["json"]), state["name"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"TokenizerAdapter({self.name!r}, fingerprint={self.fingerprint})"


# Texts whose whitespace cuts exercise the pre-tokenizer's edge rules (runs, newlines, digits,
# contractions, CJK, emoji, NBSP). A tokenizer passes only if every cut adds up exactly.
_PROBES = (
    "Hello  world.\n\nNext  para\r\nline 123 4567 it's done!  \t(ok) \u00a0x",
    "\u4f60\u597d \u4e16\u754c\u3002 caf\u00e9 na\u00efve \U0001f600 emoji  \u3000wide\n  # Head\n===\n",
    "a\x1cb c\u2028d e\x85f   g\n\n\n h . . ,x y",
)


def _probe_additivity(tk: Tokenizer) -> bool:
    """Check that token counts add up across every whitespace cut of the probe texts.

    When they do, the recursive chunker counts each piece once and sums; otherwise it re-counts
    every planned chunk. The probe is empirical on purpose: pre-tokenizer rules differ by model.
    """
    from pipeline.chunking.boundaries import is_ws

    def count(t: str) -> int:
        return len(tk.encode(t, add_special_tokens=False).ids) if t else 0

    for text in _PROBES:
        cuts = [i for i in range(1, len(text)) if is_ws(text[i]) and not is_ws(text[i - 1])]
        edges = [0, *cuts, len(text)]
        pieces = sum(count(text[a:b]) for a, b in zip(edges, edges[1:], strict=False))
        if pieces != count(text):
            return False
    return True


def load_tokenizer(spec: TokenizerLike = None) -> TokenizerAdapter:
    """Resolve any supported tokenizer spec to a :class:`TokenizerAdapter`."""
    if isinstance(spec, TokenizerAdapter):
        return spec
    if isinstance(spec, Tokenizer):
        return TokenizerAdapter(spec, "tokenizers.Tokenizer")
    if hasattr(spec, "backend_tokenizer"):  # transformers fast tokenizer
        return TokenizerAdapter(
            spec.backend_tokenizer, getattr(spec, "name_or_path", "") or type(spec).__name__
        )
    if spec is not None and not isinstance(spec, str | os.PathLike):
        raise TypeError(
            f"unsupported tokenizer {type(spec).__name__}: pass a tokenizers.Tokenizer, a transformers "
            "fast tokenizer, a tokenizer.json path, a model folder or a hub ID"
        )
    return _load_from_spec(spec)


def _load_from_spec(spec: str | os.PathLike[str] | None) -> TokenizerAdapter:
    name = str(spec) if spec is not None else assets.SMOLLM2
    path = Path(assets.resolve_model(spec))
    if path.is_file():
        return TokenizerAdapter(Tokenizer.from_file(str(path)), name)
    if (path / "tokenizer.json").exists():
        return TokenizerAdapter(Tokenizer.from_file(str(path / "tokenizer.json")), name)
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(spec))
    except Exception as exc:  # hub lookups fail in many ways offline; say what to do instead
        raise AssetError(
            f"cannot load tokenizer {spec!r}: {exc}. Pass a local tokenizer.json or model folder, "
            f"or '{assets.SMOLLM2}' for the packaged default"
        ) from exc
    if not hasattr(hf, "backend_tokenizer"):
        raise AssetError(
            f"tokenizer {spec!r} has no fast (Rust) backend; lengthwise needs one for exact offsets"
        )
    return TokenizerAdapter(hf.backend_tokenizer, name)
