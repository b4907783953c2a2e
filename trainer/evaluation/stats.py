"""Accuracy with its uncertainty: Wilson score intervals and the overlap rule used to compare models."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def z_value(confidence: float = 0.95) -> float:
    """Two-sided normal quantile for ``confidence`` (1.959964 for 95%)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n``.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty at 0/n or n/n, which
    is where small probe grids live. ``n == 0`` gives the uninformative (0, 1).
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact ends: at k == 0 (k == n) the lower (upper) bound is 0 (1) up to rounding.
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


@dataclass(frozen=True)
class Accuracy:
    """``k`` correct of ``n`` probes, with its Wilson interval."""

    k: int
    n: int
    confidence: float = 0.95

    @property
    def value(self) -> float:
        """The observed accuracy (NaN when nothing was measured)."""
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """The Wilson interval at ``confidence``."""
        return wilson(self.k, self.n, self.confidence)

    def to_dict(self) -> dict:
        """JSON form: accuracy, interval ends, k and n."""
        lo, hi = self.interval
        return {"accuracy": self.value, "lo": round(lo, 4), "hi": round(hi, 4), "k": self.k, "n": self.n}

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{self.value:.2f} [{lo:.2f}, {hi:.2f}] n={self.n}" if self.n else "n=0"


def overlap(a: Accuracy, b: Accuracy) -> bool:
    """True when the two intervals share any point: the models are reported as not different.

    Non-overlapping 95% intervals imply a significant difference; overlapping ones do not prove
    equality, so this rule is conservative (it calls some real differences "not different").
    """
    (alo, ahi), (blo, bhi) = a.interval, b.interval
    return alo <= bhi and blo <= ahi


def compare(model: Accuracy, reference: Accuracy) -> str:
    """``better``, ``worse`` or ``not different`` (overlapping intervals) of ``model`` vs ``reference``."""
    if overlap(model, reference):
        return "not different"
    return "better" if model.value > reference.value else "worse"
