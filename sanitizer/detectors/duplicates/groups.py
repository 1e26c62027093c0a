"""Exact copies, label conflicts and leaks, decided per group of records with the same content hash.

Records meet in a hash bucket (the Beam stage groups them by ``content hash mod BUCKETS``), and a bucket's
records with the same 128-bit content hash form a group. Per group:

* a training record whose content equals a **holdout** record's is a ``leak`` (every such record is held,
  with the holdout record's id);
* otherwise a group whose content is a likely chance collision (:mod:`sanitizer.detectors.duplicates.chance`)
  is left alone, and counted;
* otherwise, when the copies' labels differ, the labels held by most copies are the group's consensus and
  every copy with another label is a ``label_conflict``; when two or more labels tie for most copies, there
  is no consensus and every copy is held for review;
* of the copies left, one is **kept** and the others are ``duplicate`` copies of it. With generated ids
  (``file:row``) the kept copy is the first one in file and row order; with the user's ids, the one with
  the smallest record key (a hash of its id). Either way every runner and every rerun keeps the same one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

DUPLICATE, LABEL_CONFLICT, LEAK, NEAR_DUPLICATE = 0, 1, 2, 3
CODES = ("duplicate", "label_conflict", "leak", "near_duplicate")


@dataclass(frozen=True)
class Part:
    """One batch's records in one bucket (numpy arrays of equal length)."""

    h1: np.ndarray  # uint64
    h2: np.ndarray  # uint64
    keys: np.ndarray  # uint64
    order: np.ndarray  # uint64: the copy with the smallest is kept (the first read, or the smallest key)
    expected: np.ndarray  # float32: chance copies expected of the record's content (chance.ChanceModel)
    labels: Any  # pyarrow string array (nulls kept), or None without labels
    ids: Any  # pyarrow string array
    holdout: bool = False


@dataclass(frozen=True)
class Verdicts:
    """The held records of one or more buckets, sorted by key; a detector looks its batch's keys up here."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    code: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    size: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    other: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))  # kept copy's / holdout row's id
    consensus: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))  # the group's label (conflicts)
    votes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))  # "label: copies, ..." (conflicts)
    expected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))  # chance copies expected
    stats: dict = field(default_factory=dict)

    @staticmethod
    def merge(parts: Iterable["Verdicts"]) -> "Verdicts":
        parts = [p for p in parts if p is not None]
        if not parts:
            return Verdicts()
        stats: dict = {}
        for p in parts:
            for k, v in p.stats.items():
                stats[k] = stats.get(k, 0) + v
        cat = {name: np.concatenate([getattr(p, name) for p in parts])
               for name in ("keys", "code", "group", "size", "other", "consensus", "votes", "expected")}
        order = np.argsort(cat["keys"], kind="stable")
        return Verdicts(**{k: v[order] for k, v in cat.items()}, stats=stats)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """(n,) int64: each key's row in these verdicts, -1 where it is not held."""
        if len(self.keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, pos, -1)


def _concat(parts: list[Part]):
    h1 = np.concatenate([p.h1 for p in parts])
    h2 = np.concatenate([p.h2 for p in parts])
    keys = np.concatenate([p.keys for p in parts])
    order = np.concatenate([p.order for p in parts])
    expected = np.concatenate([p.expected for p in parts])
    n = len(keys)
    labels = (np.full(n, None, dtype=object) if all(p.labels is None for p in parts) else
              pa.concat_arrays([p.labels if p.labels is not None else pa.nulls(len(p.h1), pa.string())
                                for p in parts]))
    ids = pa.concat_arrays([p.ids for p in parts])
    holdout = np.concatenate([np.full(len(p.h1), p.holdout) for p in parts])
    return h1, h2, keys, order, expected, labels, ids, holdout


def _at(values, row: int):
    """One value of an Arrow array or a numpy array, as a Python str (or None)."""
    value = values[int(row)]
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    return None if value is None else str(value)


def decide(parts: Iterable[Part], chance_max: float) -> Verdicts:
    """The held records among ``parts`` (one bucket's)."""
    parts = [p for p in parts if len(p.h1)]
    stats = {"groups": 0, "chance_groups": 0, "chance_rows": 0, "duplicate": 0, "label_conflict": 0, "leak": 0,
             "conflict_groups": 0, "tied_groups": 0}
    if not parts:
        return Verdicts(stats=stats)
    h1, h2, keys, rank, chance, labels, ids, holdout = _concat(parts)
    order = np.lexsort((rank, h2, h1))
    h1, h2 = h1[order], h2[order]
    same = (h1[1:] == h1[:-1]) & (h2[1:] == h2[:-1])
    if not same.any():
        return Verdicts(stats=stats)
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    ends = np.append(starts[1:], len(h1))
    out: dict[str, list] = {k: [] for k in ("keys", "code", "group", "size", "other", "consensus", "votes",
                                            "expected")}

    def hold(rows, code, group, size, other, consensus=None, votes=None, expected=0.0):
        for r in rows:
            out["keys"].append(keys[r])
            out["code"].append(code)
            out["group"].append(group)
            out["size"].append(size)
            out["other"].append(other)
            out["consensus"].append(consensus)
            out["votes"].append(votes)
            out["expected"].append(expected)
            stats[CODES[code]] += 1

    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        members = order[a:b]
        train = members[~holdout[members]]
        if len(train) == 0:
            continue
        stats["groups"] += 1
        group = h1[a]
        held_out = members[holdout[members]]
        if len(held_out):
            first = held_out[np.argmin(rank[held_out])]
            hold(train, LEAK, group, len(members), _at(ids, first))
            continue
        if len(train) < 2:
            continue
        expected = float(chance[train[0]])
        if expected > chance_max:
            stats["chance_groups"] += 1
            stats["chance_rows"] += len(train)
            continue
        given = [_at(labels, r) for r in train]
        names, counts = np.unique(np.array([str(x) if x is not None else "\0" for x in given]), return_counts=True)
        names = [None if n == "\0" else n for n in names]
        keep_rows = train
        if len(names) > 1:
            stats["conflict_groups"] += 1
            votes = ", ".join(f"{'(null)' if n is None else n}: {c}" for n, c in
                              sorted(zip(names, counts), key=lambda t: (-t[1], str(t[0]))))
            top = counts.max()
            winners = [n for n, c in zip(names, counts) if c == top]
            consensus = winners[0] if len(winners) == 1 else None
            if consensus is None:
                stats["tied_groups"] += 1
                hold(train, LABEL_CONFLICT, group, len(train), None, None, votes, expected)
                continue
            agree = np.array([(None if x is None else str(x)) == consensus for x in given])
            hold(train[~agree], LABEL_CONFLICT, group, len(train), None, consensus, votes, expected)
            keep_rows = train[agree]
        if len(keep_rows) < 2:
            continue
        kept = keep_rows[np.argmin(rank[keep_rows])]
        hold(keep_rows[keep_rows != kept], DUPLICATE, group, len(train), _at(ids, kept), expected=expected)

    if not out["keys"]:
        return Verdicts(stats=stats)
    v = Verdicts(
        keys=np.array(out["keys"], dtype=np.uint64), code=np.array(out["code"], dtype=np.int8),
        group=np.array(out["group"], dtype=np.uint64), size=np.array(out["size"], dtype=np.int32),
        other=np.array(out["other"], dtype=object), consensus=np.array(out["consensus"], dtype=object),
        votes=np.array(out["votes"], dtype=object), expected=np.array(out["expected"], dtype=np.float64),
        stats=stats,
    )
    return Verdicts.merge([v])
