"""LM stage: documents -> long-document language-modelling records (LIFT / ProLong style).

A document that fits a stage length becomes one record; a longer one is cut into sliding windows
at every stage length it exceeds (the sliding-window chunker: token-exact, character offsets exact,
edges on word boundaries). Which records reach the shards, and how many, is decided later by the
shard stage's mix (:mod:`pipeline.stages.mix`): this stage writes every candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from data_contracts import LMRecord, SourceDocument, content_hash
from pipeline.chunking import SlidingWindowChunker
from pipeline.config import LMConfig
from pipeline.errors import ConfigError
from pipeline.stages.shards import ShardWriter, write_manifest
from pipeline.tokenizer import TokenizerAdapter, load_tokenizer

EOS_RESERVE = 1  # a record that ends its document gets the end-of-sequence token after its text


class _SharedOffsets(SlidingWindowChunker):
    """The sliding-window chunker, with the document's token offsets shared between window lengths.

    Tokenizing the whole document was half the cost, once per length; the offsets do not depend
    on the length, so the chunkers of one windower share the last document's.
    """

    def __init__(self, cache: dict, **kwargs):
        super().__init__(**kwargs)
        self._cache = cache

    def _offsets(self, text, ix):
        if self._cache.get("text") is not text:
            self._cache.update(text=text, offsets=super()._offsets(text, ix))
        return self._cache["offsets"]


class LMWindower:
    """Cuts documents into LM records at the given stage lengths.

    Args:
        lengths: stage lengths in tokens (strictly increasing); a record is at most that long,
            end-of-sequence token included, so it lands in the bucket of that length.
        tokenizer: the student tokenizer (the shard stage's), so counts are the trainer's.

    """

    def __init__(
        self, lengths: Sequence[int], cfg: LMConfig, tokenizer: str | TokenizerAdapter | None = None
    ):
        if not lengths or list(lengths) != sorted(set(lengths)) or lengths[0] < 32:
            raise ConfigError([f"lm lengths must be strictly increasing integers >= 32, got {list(lengths)}"])
        self.cfg = cfg
        self.lengths = list(lengths)
        self.tokenizer = load_tokenizer(tokenizer)
        self.config_hash = content_hash(
            "lm", self.tokenizer.fingerprint, self.lengths, cfg.overlap, cfg.min_tokens
        )
        shared: dict = {}
        self._chunkers = {
            n: _SharedOffsets(
                shared,
                tokenizer=self.tokenizer,
                max_tokens=n - EOS_RESERVE,
                stride_tokens=max(1, round((n - EOS_RESERVE) * (1 - cfg.overlap))),
            )
            for n in self.lengths
        }

    def records(self, doc: SourceDocument) -> list[LMRecord]:
        """The LM records of one document: windows at each length it exceeds, whole when it fits one."""
        n_tokens = self.tokenizer.count(doc.text)
        out: list[LMRecord] = []
        for n in self.lengths:
            if n_tokens + EOS_RESERVE <= n:
                if n_tokens >= self.cfg.min_tokens:
                    out.append(self._record(doc, 0, len(doc.text), n_tokens, None))
                break
            for c in self._chunkers[n].chunk_document(doc):
                if c.token_count >= self.cfg.min_tokens:
                    out.append(self._record(doc, c.char_start, c.char_end, c.token_count, n))
        return out

    def _record(
        self, doc: SourceDocument, start: int, end: int, n_tokens: int, window: int | None
    ) -> LMRecord:
        return LMRecord(
            lm_id=LMRecord.make_id(doc.doc_id, start, end, self.config_hash),
            doc_id=doc.doc_id,
            source=doc.source,
            char_start=start,
            char_end=end,
            text=doc.text[start:end],
            token_count=n_tokens,
            window=window,
            ends_document=end == len(doc.text),
            config_hash=self.config_hash,
        )


def lm_corpus(
    docs: Iterable[SourceDocument], out_dir: str | Path, cfg: LMConfig, lengths: Sequence[int], tokenizer=None
) -> Path:
    """Write the LM records of ``docs`` to ``out_dir`` (``lm-*.arrow`` + ``manifest.json``, kind ``lm``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    windower = LMWindower(lengths, cfg, tokenizer)
    writer = ShardWriter(out, "lm", LMRecord, windower.config_hash, length_of=lambda r: r.length)
    for doc in docs:
        writer.extend(windower.records(doc))
    write_manifest(
        out,
        "lm",
        cfg.model_dump_json(),
        windower.config_hash,
        writer.close(),
        tokenizer=windower.tokenizer.name,
        bucket_edges=windower.lengths,
    )
    return out


__all__ = ["LMWindower", "lm_corpus"]
