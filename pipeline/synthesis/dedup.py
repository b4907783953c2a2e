"""Near-duplicate question detection: MinHash LSH on word 3-grams, plus embedding similarity.

MinHash catches copies and light edits; a question reworded by two words shares few 3-grams
(Jaccard 0.4-0.5) but keeps its meaning, which sentence embeddings see (cosine > 0.9).
"""

from __future__ import annotations

import re

import numpy as np

from pipeline.synthesis.grounding import normalize


class NearDuplicateFilter:
    """Remembers questions; :meth:`seen` says whether a new one is a near-duplicate of an earlier one.

    Args:
        threshold: estimated Jaccard similarity of shingle sets above which questions are duplicates.
        num_perm: MinHash permutations (more: slower, more precise).
        embedder: optional sentence embedder (``encode(texts) -> unit rows``), e.g. the packaged MiniLM.
        cosine: embedding cosine similarity at or above which questions are duplicates.

    """

    def __init__(
        self, threshold: float = 0.7, num_perm: int = 64, embedder=None, cosine: float = 0.9
    ) -> None:
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.embedder, self.cosine = embedder, cosine
        self._vectors: list[np.ndarray] = []
        self._numbers: list[frozenset[str]] = []
        self._n = 0

    def _signature(self, text: str):
        words = re.findall(r"\w+", normalize(text))
        shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
        m = self._minhash(num_perm=self.num_perm, seed=1)
        for s in sorted(shingles):
            m.update(s.encode("utf-8"))
        return m

    def seen(self, question: str) -> bool:
        """True if ``question`` near-duplicates an earlier one; otherwise remember it and return False."""
        return self.match(question) is not None

    def match(self, question: str) -> str | None:
        """How ``question`` duplicates an earlier one (``None``: it is new, and now remembered)."""
        sig = self._signature(question)
        if self.lsh.query(sig):
            return "word 3-gram MinHash"
        vec, nums = None, _numbers(question)
        if self.embedder is not None:
            vec = self.embedder.encode([question])[0]
            if self._vectors:
                sims = np.stack(self._vectors) @ vec
                # Embeddings barely see numbers: questions about section 4 and section 12 are two questions.
                same = [
                    i for i in np.argsort(-sims)[:8] if sims[i] >= self.cosine and self._numbers[i] == nums
                ]
                if same:
                    return f"embedding cosine {float(sims[same[0]]):.2f}"
        self.lsh.insert(str(self._n), sig)
        if vec is not None:
            self._vectors.append(vec)
            self._numbers.append(nums)
        self._n += 1
        return None


def _numbers(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\d+", text))
