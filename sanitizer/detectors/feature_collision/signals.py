"""``feature_collision``'s neighbourhood signals: the reference rows searched as a whole and class by
class, leave-self-out search, the class, group and cluster margins, the deep k-NN votes, and the
calibration of margins into nats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.detectors.base import DistanceCalibration
from sanitizer.detectors.shared.neighbour_search import NeighbourIndex, build_checked

MIN_RANK = 3
PROBE_ROWS = 2_000
"""Reference rows the approximate whole-reference search is checked on against exact search."""
"""The margins read a class's distance at its 3rd row at the earliest (the whole class when smaller)."""


@dataclass(frozen=True)
class Reference:
    """Reference rows in one vector space, searchable as a whole and class by class."""

    index: Any  # NeighbourIndex over all rows
    class_index: tuple[Any, ...]  # per class: NeighbourIndex over its rows (None if it has none)
    class_rows: tuple[np.ndarray, ...]  # per class: positions of its rows
    labels: np.ndarray  # (R,) class index
    keys: np.ndarray  # (R,) uint64, to leave a record out of its own neighbourhood
    ranks: np.ndarray  # (C,) rank of the neighbour each class's distance is read at (class margin)
    cluster_ranks: np.ndarray  # (C,) the same past a cluster of max_cluster poisons (cluster margin)
    search: dict  # how the whole-reference search was chosen and how close to exact it measured

    @staticmethod
    def build(V: np.ndarray, y: np.ndarray, keys: np.ndarray, C: int, m: int, cluster: int,
              seed: int, width: int, recall: float) -> "Reference":
        """``width``: the neighbours a query reads; ``recall``: the share of the exact ``width`` nearest an
        approximate whole-reference index must find on the reference's own rows (1.0: exact search)."""
        class_rows = tuple(np.flatnonzero(y == c) for c in range(C))
        index, search = build_checked(V, None, V[:PROBE_ROWS], width, seed=seed, target=recall, min_recall=recall)
        return Reference(
            index,
            tuple(NeighbourIndex.build(V[r], seed=seed) if len(r) else None for r in class_rows),
            class_rows, y, keys, _class_ranks(class_rows, m), _class_ranks(class_rows, cluster + 1), search,
        )


@dataclass(frozen=True)
class _Neighbourhood:
    """What the reference says about a set of query embeddings (all arrays have one row per query)."""

    nearest: np.ndarray  # (n, k) reference positions, nearest first, self left out
    nearest_distance: np.ndarray
    own_distance: np.ndarray  # distance to the m-th nearest own-class row
    other_distance: np.ndarray  # distance to the m-th nearest row of the nearest other class
    other_class: np.ndarray  # that class (-1 if none was found among the k nearest)
    margin: np.ndarray  # log(own / other distance)
    group: np.ndarray  # group margin
    votes: np.ndarray  # (n, C) among the k nearest
    cluster_margin: np.ndarray  # the margin read past a cluster of max_cluster rows
    group_rows: np.ndarray  # (n, group) reference positions of the nearest own-class rows, -1 if none


def _search(index, queries: np.ndarray, k: int, ref_keys: np.ndarray, query_keys: np.ndarray):
    """(distances, positions) of the k nearest reference rows of each query, never the query itself.

    k is cut to the reference rows minus one; a one-row reference returns its row."""
    if index.rows < 2:
        return index.search_distances(queries, 1)
    k = max(1, min(k, index.rows - 1))
    dist, found = index.search_distances(queries, k + 1)
    missing = found < 0  # an approximate search can come back short: fill with the nearest found
    if missing.any():
        found = np.where(missing, found[:, :1], found)
        dist = np.where(missing, dist[:, :1], dist)
    self_hit = ref_keys[found] == np.asarray(query_keys)[:, None]
    # Drop the record's own row when it is in the reference; otherwise drop the (k+1)-th neighbour.
    drop = np.where(self_hit.any(axis=1), self_hit.argmax(axis=1), k)
    keep = np.ones_like(found, dtype=bool)
    keep[np.arange(len(found)), drop] = False
    return dist[keep].reshape(len(found), k), found[keep].reshape(len(found), k)


def _other_distance(labels, rank, dist, y, ranks):
    """Distance to the nearest other class's rank-th row among the listed neighbours, and that class.

    ``rank`` is :func:`_rank_within_row` of ``labels``. When no other class has that many rows in the
    list, the last distance listed (a lower bound)."""
    n = len(y)
    reached = (rank + 1 == ranks[labels]) & (labels != y[:, None])
    hit = reached.any(axis=1)
    first = np.where(hit, reached.argmax(axis=1), dist.shape[1] - 1)
    other = np.where(hit, labels[np.arange(n), first], -1)
    nearest_other = labels != y[:, None]
    fallback = np.where(nearest_other.any(axis=1), labels[np.arange(n), nearest_other.argmax(axis=1)], -1)
    return dist[np.arange(n), first], np.where(other >= 0, other, fallback)


def _own_class(ref: Reference, V, y, keys, ranks_list, group: int, listed=None):
    """The distance to each row's rank-th own-class row for each rank table, and the reference positions of
    its ``group`` nearest own-class rows (-1 where the class has too few).

    ``listed`` is the whole-reference search's (distances, positions, labels), the row itself left out. A
    row with enough own-class rows in that list reads them there: the r-th own-class row of the list of
    nearest rows is the r-th nearest own-class row. The other rows search their own class."""
    n = len(y)
    out = [np.full(n, np.inf) for _ in ranks_list]
    nearest = np.full((n, max(group, 1)), -1, dtype=np.int64)
    avail = np.array([(i.rows - 1) if i is not None else -1 for i in ref.class_index], dtype=np.int64)[y]
    searchable = avail >= 1  # the class has at least 2 reference rows
    todo = searchable.copy()
    if listed is not None and n:
        dist, found, labels = listed
        count = np.cumsum(labels == y[:, None], axis=1)  # own-class rows up to each position
        wanted = [np.minimum(r[y], avail) for r in ranks_list]
        g = np.minimum(group, avail)
        readable = searchable & (count[:, -1] >= np.maximum.reduce(wanted + [g]))
        rows = np.flatnonzero(readable)
        c = count[rows]
        for o, w in zip(out, wanted):
            o[rows] = dist[rows, np.argmax(c >= w[rows][:, None], axis=1)]
        for j in range(group):
            take = rows[g[rows] > j]
            nearest[take, j] = found[take, np.argmax(count[take] >= j + 1, axis=1)]
        todo &= ~readable
    for c in np.unique(y[todo]):
        rows = np.flatnonzero(todo & (y == c))
        index = ref.class_index[c]
        wanted = [int(min(r[c], index.rows - 1)) for r in ranks_list]
        d, found = _search(index, V[rows], max(wanted + [group]), ref.keys[ref.class_rows[c]], keys[rows])
        for o, w in zip(out, wanted):
            o[rows] = d[:, min(w, d.shape[1]) - 1]
        g = min(group, found.shape[1])
        nearest[rows[:, None], np.arange(g)[None, :]] = ref.class_rows[c][found[:, :g]]
    return out, nearest[:, :group]


def _log_ratio(own, other):
    """log(own / other), NaN where the own class has no neighbour to measure (fewer than 2 reference rows)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.minimum(np.log(np.maximum(own, 1e-12) / np.maximum(other, 1e-12)), 50.0)
    return np.where(np.isfinite(own), out, np.nan)


def search_width(params, k: int) -> int:
    """Neighbours the whole-reference search returns per query (before leaving the query itself out)."""
    return max(k, 3 * params.neighbours, 2 * (params.max_cluster + 1))


def _neighbourhood(space, E, y, keys, C, params, k) -> _Neighbourhood:
    ref = space.embedded
    width = search_width(params, k)
    dist, nearest = _search(ref.index, E, width, ref.keys, keys)
    labels = ref.labels[nearest]
    rank = _rank_within_row(labels, C)
    other, other_class = _other_distance(labels, rank, dist, y, ref.ranks)
    cluster_other, _ = _other_distance(labels, rank, dist, y, ref.cluster_ranks)
    (own, cluster_own), group_rows = _own_class(ref, E, y, keys, [ref.ranks, ref.cluster_ranks], params.group,
                                                (dist, nearest, labels))
    margin = _log_ratio(own, other)
    return _Neighbourhood(nearest[:, :k], dist[:, :k], own, other, other_class, margin,
                          _group_margin(space.margins, margin, group_rows), _votes(labels[:, :k], C),
                          _log_ratio(cluster_own, cluster_other), group_rows)


def _class_ranks(class_rows: tuple[np.ndarray, ...], m: int) -> np.ndarray:
    """Per class, the rank of the neighbour whose distance enters the margin: ``m`` for the largest class,
    in proportion for smaller ones, so every class is measured at the same share of its rows.

    The margin then compares class-conditional densities: a clean row of a 20-row class is not judged by
    its 10th own neighbour (half its class, far away) against the 10th of a 150-row class next door."""
    sizes = np.array([len(r) for r in class_rows], dtype=np.float64)
    # At least the 3rd row (or the whole class when smaller): one row is no density estimate, and a class
    # the sample holds once must not pull its neighbours' margins toward it.
    return np.maximum(np.minimum(MIN_RANK, sizes), np.round(m * sizes / max(sizes.max(), 1.0))).astype(np.int64)


def _group_margin(reference_margins: np.ndarray, margin: np.ndarray, group_rows: np.ndarray) -> np.ndarray:
    """The record's margin averaged with those of its ``group`` nearest own-class reference rows."""
    found = group_rows >= 0
    total = margin + np.where(found, reference_margins[np.maximum(group_rows, 0)], 0.0).sum(axis=1)
    return total / (1 + found.sum(axis=1))


def _rank_within_row(labels: np.ndarray, C: int) -> np.ndarray:
    """For each (row, position): how many earlier positions of the row hold the same label."""
    n, w = labels.shape
    flat = (np.arange(n)[:, None] * C + labels).ravel()
    order = np.argsort(flat, kind="stable")
    sorted_flat = flat[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_flat)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(flat)]))
    rank = np.empty(len(flat), dtype=np.int64)
    rank[order] = np.arange(len(flat)) - run_start
    return rank.reshape(n, w)


def _votes(labels: np.ndarray, C: int) -> np.ndarray:
    n, k = labels.shape
    flat = np.repeat(np.arange(n), k) * C + labels.ravel()
    return np.bincount(flat, minlength=n * C).reshape(n, C)


def _nats(calibrations: tuple[DistanceCalibration, ...], values: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values))
    for c in np.unique(y):
        rows = y == c
        out[rows] = calibrations[c].nats(values[rows])
    return out
