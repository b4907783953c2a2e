"""What every chunker shares: configuration, spans to ``Chunk`` records, batching, streaming.

Subclasses only decide *where* to cut (:meth:`BaseChunker._plan`).
"""

from __future__ import annotations

import abc
import codecs
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, ClassVar

from data_contracts import Chunk, SourceDocument, content_hash
from data_contracts.documents import doc_id_from_sha256
from pipeline.chunking import boundaries as bd
from pipeline.errors import ConfigError
from pipeline.tokenizer import TokenizerAdapter, TokenizerLike, load_tokenizer

MIN_MAX_TOKENS = 16  # below this a single character may not fit (byte-level BPE: up to 4 per char)
# Smaller batches run in-process, where the tokenizer's Rust threads already use every core for the
# dominant cost (tokenization); worker processes only pay off for big batches on many cores.
_PARALLEL_MIN_CHARS = 32_000_000


@dataclass
class Plan:
    """Where a document is cut: spans with exact token counts and their token offsets."""

    starts: list[int]
    ends: list[int]
    counts: list[int]
    token_starts: list[int]
    paths: list[list[str]] = field(default_factory=list)


class BaseChunker(abc.ABC):
    """Common interface: ``chunker(text) -> list[Chunk]``, plus batch and streaming variants.

    Args:
        tokenizer: the *student* model's tokenizer (a ``tokenizers.Tokenizer``, a transformers fast
            tokenizer, a ``tokenizer.json`` path, a model folder or hub ID); default: SmolLM2.
        max_tokens: hard limit; re-tokenizing any chunk's text never gives more tokens.
        min_tokens: chunks are kept at or above this size wherever the document allows it.

    """

    name: ClassVar[str] = "base"

    def __init__(
        self, *, tokenizer: TokenizerLike = None, max_tokens: int = 512, min_tokens: int | None = None
    ):
        problems = []
        if not isinstance(max_tokens, int) or max_tokens < MIN_MAX_TOKENS:
            problems.append(f"max_tokens must be an integer >= {MIN_MAX_TOKENS}, got {max_tokens!r}")
        if min_tokens is not None and (
            min_tokens < 0 or (isinstance(max_tokens, int) and min_tokens > max_tokens)
        ):
            problems.append(f"min_tokens must be in [0, max_tokens], got {min_tokens!r}")
        if problems:
            raise ConfigError(problems, source=type(self).__name__)
        self.tokenizer: TokenizerAdapter = load_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        self.min_tokens = max_tokens // 4 if min_tokens is None else min_tokens

    # -- configuration -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Settings that determine the output (hashed into every chunk's ``config_hash``)."""
        return {
            "chunker": self.name,
            "tokenizer": self.tokenizer.fingerprint,
            "max_tokens": self.max_tokens,
            "min_tokens": self.min_tokens,
        }

    @property
    def config_hash(self) -> str:
        """Deterministic hash of :meth:`config`."""
        return content_hash(self.config())

    # -- planning (subclasses) -------------------------------------------------------------------
    @abc.abstractmethod
    def _plan(self, text: str, fmt: str | None, initial_path: list[str]) -> Plan:
        """Decide the spans of ``text``; every count must be the exact re-tokenized count."""

    # -- public API ------------------------------------------------------------------------------
    def __call__(self, text: str, *, doc_id: str | None = None, fmt: str | None = None) -> list[Chunk]:
        """Chunk one text. ``fmt`` (``md``/``rst``/``txt``) selects heading detection; default: both."""
        if not isinstance(text, str):
            raise TypeError(f"{self.name} chunker takes a str, got {type(text).__name__}")
        if doc_id is None:
            doc_id = doc_id_from_sha256(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        if not text:
            return []
        return self._to_chunks(text, self._plan(text, fmt, []), doc_id, 0, 0, 0)

    def chunk_document(self, doc: SourceDocument) -> list[Chunk]:
        """Chunk a :class:`SourceDocument`, using its ID and format."""
        return self(doc.text, doc_id=doc.doc_id, fmt=doc.format)

    def chunk_batch(
        self, docs: Sequence[SourceDocument | str], *, workers: int | None = None
    ) -> list[list[Chunk]]:
        """Chunk many documents using every core.

        Tokenization (most of the cost) runs on all cores through the tokenizer's Rust thread pool;
        batches over 32 MB on machines with more than two cores also spread the planning over
        worker processes.
        """
        docs = [
            d if isinstance(d, SourceDocument) else SourceDocument.from_text(d, "<str>", "txt") for d in docs
        ]
        workers = workers or os.cpu_count() or 1
        total = sum(d.n_chars for d in docs)
        if workers <= 2 or len(docs) < 2 or total < _PARALLEL_MIN_CHARS:
            return [self.chunk_document(d) for d in docs]
        ctx = get_context("spawn")  # fork is unsafe with the tokenizer's Rust thread pool
        with ProcessPoolExecutor(
            min(workers, len(docs)), mp_context=ctx, initializer=_init_worker, initargs=(self,)
        ) as pool:
            return list(pool.map(_chunk_in_worker, docs, chunksize=max(1, len(docs) // (4 * workers))))

    def stream(
        self, pieces: Iterable[str], *, doc_id: str, fmt: str | None = None, window_chars: int | None = None
    ) -> Iterator[Chunk]:
        """Chunk a document given as a stream of text pieces, holding only a window in memory.

        The window is cut at the last paragraph (else line, else whitespace) boundary in its second
        half; chunks never straddle a window cut, so offsets stay exact and memory stays flat.
        """
        window = window_chars or max(1 << 20, self.max_tokens * 64)
        buf, base, index, tok_base, path = "", 0, 0, 0, []
        for piece in pieces:
            buf += piece
            while len(buf) >= window:
                cut = _window_cut(buf, window // 2)
                plan = self._plan(buf[:cut], fmt, path)
                yield from self._to_chunks(buf[:cut], plan, doc_id, base, index, tok_base)
                index += len(plan.starts)
                tok_base += sum(plan.counts)
                path = plan.paths[-1] if plan.paths else path
                base += cut
                buf = buf[cut:]
        if buf:
            yield from self._to_chunks(buf, self._plan(buf, fmt, path), doc_id, base, index, tok_base)

    def stream_file(
        self, path: str | Path, *, fmt: str | None = None, block_chars: int = 1 << 20
    ) -> Iterator[Chunk]:
        """Chunk a (possibly huge) UTF-8 file without loading it: one pass to hash, one to chunk."""
        path = Path(path)
        digest = hashlib.sha256()
        for text in _read_utf8_blocks(path, block_chars):
            digest.update(text.encode("utf-8"))
        doc_id = doc_id_from_sha256(digest.hexdigest())
        fmt = fmt or bd_format(path)
        yield from self.stream(_read_utf8_blocks(path, block_chars), doc_id=doc_id, fmt=fmt)

    # -- helpers ---------------------------------------------------------------------------------
    def _to_chunks(
        self, text: str, plan: Plan, doc_id: str, base: int, index0: int, tok_base: int
    ) -> list[Chunk]:
        cfg = self.config_hash
        paths = plan.paths or [[] for _ in plan.starts]
        out = []
        for i, (s, e, n, t0, sec) in enumerate(
            zip(plan.starts, plan.ends, plan.counts, plan.token_starts, paths, strict=True)
        ):
            out.append(
                Chunk(
                    chunk_id=Chunk.make_id(doc_id, base + s, base + e, cfg),
                    doc_id=doc_id,
                    index=index0 + i,
                    char_start=base + s,
                    char_end=base + e,
                    token_start=tok_base + t0,
                    token_end=tok_base + t0 + n,
                    token_count=n,
                    text=text[s:e],
                    chunker=self.name,
                    config_hash=cfg,
                    section_path=sec,
                )
            )
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k not in ("chunker", "tokenizer"))
        return f"{type(self).__name__}({args}, tokenizer={self.tokenizer.name!r})"


def bd_format(path: Path) -> str | None:
    """Heading format implied by a file suffix."""
    return {".md": "md", ".markdown": "md", ".rst": "rst", ".txt": "txt"}.get(path.suffix.lower())


def _window_cut(buf: str, floor: int) -> int:
    for pattern in ("\n\n", "\n"):
        i = buf.rfind(pattern, floor)
        if i > 0:
            j = i
            while j > 0 and bd.is_ws(buf[j - 1]):
                j -= 1
            if j > floor // 2:
                return j
    for j in range(len(buf) - 1, floor, -1):
        if bd.is_ws(buf[j]) and not bd.is_ws(buf[j - 1]):
            return j
    return len(buf) // 2 + 1 if len(buf) > 1 else len(buf)


def _read_utf8_blocks(path: Path, block_chars: int) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    with open(path, "rb") as fh:
        first = True
        while True:
            data = fh.read(block_chars)
            text = decoder.decode(data, final=not data)
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = False
            if text:
                yield text
            if not data:
                return


_WORKER: BaseChunker | None = None


def _init_worker(chunker: BaseChunker) -> None:
    global _WORKER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER = chunker


def _chunk_in_worker(doc: SourceDocument) -> list[Chunk]:
    assert _WORKER is not None
    return _WORKER.chunk_document(doc)
