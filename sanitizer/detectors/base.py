"""The detector protocol every built-in detector follows.

A detector is a small class with

* ``name`` and ``needs`` (what the data must provide),
* ``Params``: a frozen dataclass of its settings (validated in ``validate``),
* ``fit(sample, params, seed) -> state``: learn from the bounded sample. The state
  is small, picklable and holds no open handles; it reaches every worker as a
  Beam side input. When the data cannot support the detector, ``fit`` returns a
  :class:`Skipped` state with the reason, and the run goes on without it.
* ``score(batch, state) -> Scores``: a pure function of the batch and the state.
  Higher scores are more suspicious; NaN means "could not score".

Fitted state never overwrites params, and scoring never mutates anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np


@dataclass(frozen=True)
class Batch:
    """The valid rows of one record batch, as the detectors see them."""

    X: np.ndarray  # (n, d) float64
    labels: np.ndarray  # (n,) object array of class strings
    keys: np.ndarray  # (n,) uint64 hashes of record ids
    ids: np.ndarray  # (n,) object array of record ids
    feature_names: tuple[str, ...]
    embedding: np.ndarray | None = None  # (n, e) from a precomputed embedding column, when configured

    @property
    def n(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Scores:
    """What a detector said about each row of a batch."""

    score: np.ndarray  # (n,) float64, higher = more suspicious, NaN = not scored
    flagged: np.ndarray  # (n,) bool, score crossed the threshold
    threshold: float
    evidence: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Row index -> JSON-serialisable evidence, for flagged rows only."""
    thresholds: np.ndarray | None = None
    """Per-row thresholds, for detectors whose threshold depends on the row (e.g. its class)."""


@dataclass(frozen=True)
class Skipped:
    """State of a detector that cannot run on this data, with the reason (recorded in provenance)."""

    reason: str


class Detector(Protocol):
    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]

    def fit(self, sample: Batch, params: Any, seed: int) -> Any: ...

    def score(self, batch: Batch, state: Any) -> Scores: ...

    def summary(self, state: Any) -> dict[str, Any]: ...
