"""Exact copies, label conflicts and leaks, decided per group of records with the same content hash.

Records meet in a hash bucket (the Beam stage groups them by ``content hash mod BUCKETS``), and a bucket's
records with the same 128-bit content hash form a group. Per group:

* a training record whose content equals a **holdout** record's is a ``leak`` (every such record is held,
  with the holdout record's id);
* otherwise a group whose content is a likely chance collision (:mod:`sanitizer.detectors.duplicates.chance`)
  is left alone, and counted;
* otherwise, when the copies' labels differ, the label held by most copies is the group's consensus and
  every copy with another label is a ``label_conflict``; so is the majority's first copy (the others are its
  copies), since a replicated poison is a majority: no copy of a group whose labels disagree is published
  before a reviewer has decided the group. When two or more labels tie for most copies, there is no
  consensus and every copy is held;
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


STATS = ("groups", "chance_groups", "chance_rows", "duplicate", "label_conflict", "leak", "near_duplicate",
         "conflict_groups", "tied_groups")


class Judge:
    """Decides groups of records (indices into the arrays given) by the rules of the module docstring and
    collects the held records as :class:`Verdicts`."""

    def __init__(self, keys, rank, labels, ids, holdout, chance_max: float, copy_code: int = DUPLICATE):
        self.keys, self.rank, self.labels, self.ids, self.holdout = keys, rank, labels, ids, holdout
        self.chance_max, self.copy_code = chance_max, copy_code
        self.stats = dict.fromkeys(STATS, 0)
        self.out: dict[str, list] = {k: [] for k in ("keys", "code", "group", "size", "other", "consensus",
                                                     "votes", "expected")}

    def hold(self, rows, code, group, size, other, consensus=None, votes=None, expected=0.0):
        for r in rows:
            for name, value in (("keys", self.keys[r]), ("code", code), ("group", group), ("size", size),
                                ("other", other), ("consensus", consensus), ("votes", votes),
                                ("expected", expected)):
                self.out[name].append(value)
            self.stats[CODES[code]] += 1

    def group(self, members: np.ndarray, group: int, expected: float = 0.0, similarity=None) -> None:
        """One group: ``members`` in any order; ``expected``: its content's chance copies; ``similarity``:
        record index -> how close it is to the group (near copies), shown as evidence."""
        members = members[np.argsort(self.rank[members], kind="stable")]
        train = members[~self.holdout[members]]
        if len(train) == 0:
            return
        self.stats["groups"] += 1
        held_out = members[self.holdout[members]]
        if len(held_out):
            self.hold(train, LEAK, group, len(members), _at(self.ids, held_out[0]))
            return
        if len(train) < 2:
            return
        if expected > self.chance_max:
            self.stats["chance_groups"] += 1
            self.stats["chance_rows"] += len(train)
            return
        given = [_at(self.labels, r) for r in train]
        names, counts = np.unique(np.array([str(x) if x is not None else "\0" for x in given]), return_counts=True)
        names = [None if n == "\0" else n for n in names]
        keep_rows = train
        if len(names) > 1:
            self.stats["conflict_groups"] += 1
            votes = ", ".join(f"{'(null)' if n is None else n}: {c}" for n, c in
                              sorted(zip(names, counts), key=lambda t: (-t[1], str(t[0]))))
            top = counts.max()
            winners = [n for n, c in zip(names, counts) if c == top]
            consensus = winners[0] if len(winners) == 1 else None
            if consensus is None:
                self.stats["tied_groups"] += 1
                self.hold(train, LABEL_CONFLICT, group, len(train), None, None, votes, expected)
                return
            agree = np.array([(None if x is None else str(x)) == consensus for x in given])
            self.hold(train[~agree], LABEL_CONFLICT, group, len(train), _at(self.ids, train[agree][0]), consensus,
                      votes, expected)
            # the majority's first copy is held too: a replicated poison is a majority, so no copy of a group
            # whose labels disagree is published before the reviewer has decided the group
            self.hold(train[agree][:1], LABEL_CONFLICT, group, len(train), None, consensus, votes, expected)
            keep_rows = train[agree]
        if len(keep_rows) < 2:
            return
        kept = keep_rows[0]
        for r in keep_rows[1:]:
            sim = None if similarity is None else similarity.get(int(r))
            self.hold([r], self.copy_code, group, len(train), _at(self.ids, kept), votes=sim, expected=expected)

    def verdicts(self) -> Verdicts:
        out = self.out
        if not out["keys"]:
            return Verdicts(stats=self.stats)
        v = Verdicts(
            keys=np.array(out["keys"], dtype=np.uint64), code=np.array(out["code"], dtype=np.int8),
            group=np.array(out["group"], dtype=np.uint64), size=np.array(out["size"], dtype=np.int32),
            other=np.array(out["other"], dtype=object), consensus=np.array(out["consensus"], dtype=object),
            votes=np.array(out["votes"], dtype=object), expected=np.array(out["expected"], dtype=np.float64),
            stats=self.stats,
        )
        return Verdicts.merge([v])


def decide(parts: Iterable[Part], chance_max: float) -> Verdicts:
    """The held records among ``parts`` (one bucket's): groups of equal content hashes."""
    parts = [p for p in parts if len(p.h1)]
    if not parts:
        return Verdicts(stats=dict.fromkeys(STATS, 0))
    h1, h2, keys, rank, chance, labels, ids, holdout = _concat(parts)
    judge = Judge(keys, rank, labels, ids, holdout, chance_max)
    order = np.lexsort((rank, h2, h1))
    h1, h2 = h1[order], h2[order]
    same = (h1[1:] == h1[:-1]) & (h2[1:] == h2[:-1])
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    ends = np.append(starts[1:], len(h1))
    for a, b in zip(starts, ends):
        if b - a >= 2:
            members = order[a:b]
            judge.group(members, int(h1[a]), float(chance[members[~holdout[members]][0]])
                        if (~holdout[members]).any() else 0.0)
    return judge.verdicts()
