"""The built-in embedding's categorical input: each categorical column's common levels as indicators
beside the numeric features, so the network trained on the sample sees the whole row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_LEVELS = 8
"""Indicators per categorical column: its most frequent levels in the sample."""
MIN_SHARE = 0.01
"""A level held by fewer of the sample's rows than this gets no indicator (it reads as none of the levels)."""
MAX_WIDTH = 128
"""Indicators in all: columns past this bound are left out (the first columns of the table are kept)."""


@dataclass(frozen=True)
class OneHot:
    """Which codes of each categorical matrix column get an indicator (sorted; empty: the column is left out)."""

    levels: tuple[np.ndarray, ...]

    @staticmethod
    def of(K: np.ndarray | None) -> "OneHot | None":
        """The encoding of the sample's categorical codes ``K``; None when no column has two common levels."""
        if K is None or K.shape[1] == 0 or len(K) == 0:
            return None
        levels, width = [], 0
        for j in range(K.shape[1]):
            codes, counts = np.unique(K[:, j], return_counts=True)
            common = np.argsort(-counts, kind="stable")[:MAX_LEVELS]
            common = common[counts[common] >= MIN_SHARE * len(K)]
            if len(common) < 2 or width + len(common) > MAX_WIDTH:
                common = common[:0]
            width += len(common)
            levels.append(np.sort(codes[common]))
        return OneHot(tuple(levels)) if width else None

    @property
    def width(self) -> int:
        return sum(len(lv) for lv in self.levels)

    def encode(self, X: np.ndarray, K: np.ndarray | None) -> np.ndarray:
        """``X`` with the indicators of ``K``'s codes after it (a code without one, or no ``K``: all zero)."""
        out = np.zeros((len(X), X.shape[1] + self.width))
        out[:, : X.shape[1]] = X
        start = X.shape[1]
        for j, lv in enumerate(self.levels):
            if len(lv) and K is not None:
                at = np.minimum(np.searchsorted(lv, K[:, j]), len(lv) - 1)
                hit = lv[at] == K[:, j]
                out[np.flatnonzero(hit), start + at[hit]] = 1.0
            start += len(lv)
        return out
