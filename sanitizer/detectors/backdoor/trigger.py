"""``backdoor``'s trigger: what a confirmed trigger records, whether a record carries it, and the
neighbours' vote on a carrier outside the trigger's features (shared by fit and score)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Trigger:
    """One confirmed trigger: which class it sends records to and how to recognise a carrier."""

    cls: int  # class index the carriers are labelled with
    kind: str  # "values" (shared exact values), "pattern" (a few features far from the rest), "group"
    features: np.ndarray  # (t,) pattern feature indices; empty for "group"
    centre: np.ndarray  # (t,) the group's standardised values on them
    typical: np.ndarray  # (t,) every other row's median there
    halfwidth: np.ndarray  # (t,) a carrier lies within this of centre (0 = exact)
    direction: np.ndarray | None  # "group": unit vector, mean and cut of the split
    mean: np.ndarray | None
    cut: float
    model: Any  # "group": classifier trained without the group
    keep: np.ndarray  # feature indices the vote uses
    ref_rows: np.ndarray  # reference rows that do not carry the trigger
    sample_group: int  # carriers in the sample
    sample_confirmed: int  # of them, contradicted by their neighbours
    baseline: float = 0.0  # share of the class's non-carriers the same vote contradicts


def _carries(t: Trigger, Z: np.ndarray) -> np.ndarray:
    if t.kind == "group":
        return ((Z - t.mean) @ t.direction) > t.cut
    values = Z[:, t.features]
    if t.kind == "values":
        close = np.abs(values - t.centre) <= 1e-9 * np.maximum(1.0, np.abs(t.centre))
        need = len(t.features) if len(t.features) < 2 else max(2, math.ceil(0.75 * len(t.features)))
        return close.sum(axis=1) >= need
    return (np.abs(values - t.centre) <= t.halfwidth).all(axis=1)


def _vote(ref_X, ref_labels, t: Trigger, Zq, c: int, C: int, k: int, own_rows: np.ndarray | None = None):
    """Vote margin (most common other label minus own), suggested label and neighbour indices (into the
    reference) of each query, among reference rows that do not carry the trigger, outside its features.

    ``own_rows``: where the queries are reference rows themselves, their positions in the reference, so
    that no query votes for itself (leave-one-out)."""
    import faiss

    members = t.ref_rows
    k = min(k, len(members) - (own_rows is not None))
    index = faiss.IndexFlatL2(len(t.keep))
    index.add(np.ascontiguousarray(ref_X[members][:, t.keep], dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(Zq[:, t.keep], dtype=np.float32), k + (own_rows is not None))
    nb = members[np.maximum(found, 0)]
    if own_rows is not None:  # drop each query's own row (or, failing that, its farthest neighbour)
        self_hit = nb == own_rows[:, None]
        self_hit[~self_hit.any(axis=1), -1] = True
        nb = nb[~self_hit].reshape(len(Zq), k)
    labels = ref_labels[nb]
    counts = np.zeros((len(Zq), C))
    np.add.at(counts, (np.repeat(np.arange(len(Zq)), k), labels.ravel()), 1.0)
    own = counts[:, c].copy()
    counts[:, c] = -1.0
    suggested = counts.argmax(axis=1)
    margin = (counts.max(axis=1) - own) / k
    return margin, suggested, nb
