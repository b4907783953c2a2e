"""Near-duplicate question detection with MinHash LSH (word 3-gram shingles)."""

from __future__ import annotations

import re

from pipeline.synthesis.grounding import normalize


class NearDuplicateFilter:
    """Remembers questions; :meth:`seen` says whether a new one is a near-duplicate of an earlier one.

    Args:
        threshold: estimated Jaccard similarity of shingle sets above which questions are duplicates.
        num_perm: MinHash permutations (more: slower, more precise).

    """

    def __init__(self, threshold: float = 0.7, num_perm: int = 64) -> None:
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
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
        sig = self._signature(question)
        if self.lsh.query(sig):
            return True
        self.lsh.insert(str(self._n), sig)
        self._n += 1
        return False
