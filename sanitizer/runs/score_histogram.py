"""Fixed-bin histograms of every scored row's score, per detector, merged across batches and workers.

The bins are fixed before anything is scored - :data:`BINS` equal bins over the
detector's ``score_range`` plus an underflow and an overflow bin - so the
histograms of two batches (or two workers) add bin by bin, and the report shows
the whole distribution, clean rows included, against the threshold. A few
hundred bytes per detector, whatever the data size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 40


@dataclass(frozen=True)
class ScoreHistogram:
    lo: float
    hi: float
    counts: tuple[int, ...]  # BINS + 2: [below lo], the BINS bins over [lo, hi), [hi and above]

    @staticmethod
    def of(scores: np.ndarray, lo: float, hi: float) -> ScoreHistogram:
        """Count the finite ``scores`` (NaN: not scored, left out) into the fixed bins over [lo, hi)."""
        values = np.asarray(scores, dtype=np.float64)
        values = values[np.isfinite(values)]
        position = np.floor((values - lo) * (BINS / (hi - lo)))
        index = np.clip(position, -1, BINS).astype(np.int64) + 1
        return ScoreHistogram(float(lo), float(hi), tuple(int(c) for c in np.bincount(index, minlength=BINS + 2)))

    @property
    def edges(self) -> np.ndarray:
        """The BINS + 1 edges of the inner bins."""
        return np.linspace(self.lo, self.hi, BINS + 1)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        if (self.lo, self.hi, len(self.counts)) != (other.lo, other.hi, len(other.counts)):
            raise ValueError("histograms with different bins cannot be added")
        return ScoreHistogram(self.lo, self.hi, tuple(a + b for a, b in zip(self.counts, other.counts)))

    def to_dict(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "bins": BINS, "counts": list(self.counts)}

    @staticmethod
    def from_dict(d: dict | None) -> ScoreHistogram | None:
        if not d or len(d.get("counts") or []) != int(d.get("bins", BINS)) + 2:
            return None
        return ScoreHistogram(float(d["lo"]), float(d["hi"]), tuple(int(c) for c in d["counts"]))
