"""``backdoor``'s categorical triggers: a rare categorical value, or a rare combination of two, that sends
records of other classes to one label.

A candidate pattern is one value of a categorical column, or one pair of values of two columns, whose
sample rows (the group) are a small share of the data and nearly all of one label ``t``. It is confirmed
as a trigger when the rest of its rows' content - the numeric features and the other categorical columns,
never the pattern's own columns - says another class: among the rows that do not carry the pattern, the
group's nearest neighbours by content are labelled ``t`` about as rarely as those of the other classes'
rows (those of class ``t``'s own rows much more often), and the group's rows are not each other's
neighbours more often than any rows would be (rows sent to ``t`` from the other classes are a random
draw of them).
A legitimate pattern that determines the label (a sub-grade that defines a grade) is explained by the
content too, so its group's neighbours look like class ``t``; one the content does not explain (a travel
agent that books only contracts) has content of its own, so its rows are each other's neighbours:
neither is confirmed.

The search is bounded: at most ``MAX_COLUMNS`` categorical columns; patterns with at least ``min_group``
rows; the ``MAX_TESTED`` single values, then the ``MAX_TESTED`` pairs, whose label purity is least
likely by chance; content votes among ``REFERENCE_ROWS`` reference rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from sanitizer.detectors.backdoor.trigger import _vote

MAX_COLUMNS = 24
"""Categorical columns the search looks at (the first ones of the table)."""
MAX_LEVELS = 1_000
"""A column with more distinct values than this in the sample is not searched (it names rows, not kinds)."""
ONE_HOT_LEVELS = 16
"""Levels per column (the most frequent in the sample) the content encodes, one indicator each."""
MAX_TESTED = 20
"""Single values, and then pairs of values, tested per fit."""
GROUP_ROWS = 300
"""Rows of a group whose content is voted on (its first ones: the sample is in random order)."""
REFERENCE_ROWS = 5_000
"""Reference rows the content votes use (the first of the detector's reference)."""
POOL_ROWS = 200
"""Rows of the trigger's class, and of the other classes, whose content vote the group's is compared with."""
SURE = 4.0
"""How many standard errors of the group's content vote its gap from the class's must span."""
COHESION, COHESION_SLACK = 2.0, 0.05
"""A group whose carriers find carriers among their content neighbours more often than this many times the
carriers' share of the reference (plus the slack) has content of its own: a natural part of its class."""
LEAN = 0.5
"""A carrier is flagged when its content neighbours hold its label less often than half-way from the rate of
the class's rows that carry nothing to all of them, or when another label outvotes it."""
WEIGHT = 1.0 / math.sqrt(2.0)
"""An indicator's value: two rows with different levels of a column are at distance 1, one standard
deviation of a numeric feature."""


@dataclass(frozen=True)
class CategoricalTrigger:
    """A confirmed categorical trigger: carriers hold ``codes`` on the categorical matrix columns ``columns``."""

    cls: int  # the label the carriers are given
    columns: tuple[int, ...]  # categorical matrix columns of the pattern
    names: tuple[str, ...]  # their input column names
    codes: tuple[int, ...]  # the pattern's codes
    sample_group: int  # sample rows carrying the pattern
    purity: float  # share of them labelled ``cls``
    content_share: float  # share of ``cls`` among the content neighbours of the carriers labelled ``cls``
    class_share: float  # the same for rows of ``cls`` that carry nothing
    other_share: float  # the same for rows of the other classes
    sample_confirmed: int  # carriers labelled ``cls`` whose content neighbours say another label
    content_error: float = 0.0  # standard error of ``content_share``
    cohesion: float = 0.0  # share of carriers among the content neighbours of the carriers labelled ``cls``
    carrier_share: float = 0.0  # share of carriers among the reference rows
    kind: str = "categorical"


@dataclass(frozen=True)
class ContentEncoder:
    """How a row's content is encoded for the vote: standardised numeric features, then one block of
    indicators per categorical column (its most frequent levels)."""

    levels: tuple[np.ndarray, ...]  # per categorical matrix column: the sorted codes with an indicator
    width: int  # numeric features

    def encode(self, Z: np.ndarray, K: np.ndarray) -> np.ndarray:
        blocks = [np.asarray(Z, dtype=np.float32)]
        for j, lv in enumerate(self.levels):
            block = np.zeros((len(K), len(lv)), dtype=np.float32)
            if len(lv):
                at = np.minimum(np.searchsorted(lv, K[:, j]), len(lv) - 1)
                hit = lv[at] == K[:, j]
                block[np.flatnonzero(hit), at[hit]] = WEIGHT
            blocks.append(block)
        return np.ascontiguousarray(np.concatenate(blocks, axis=1))

    def keep(self, dropped: tuple[int, ...]) -> np.ndarray:
        """Encoded columns outside the categorical columns ``dropped``."""
        parts = [np.arange(self.width)]
        start = self.width
        for j, lv in enumerate(self.levels):
            if j not in dropped:
                parts.append(np.arange(start, start + len(lv)))
            start += len(lv)
        return np.concatenate(parts).astype(np.int64)


def encoder_of(Z: np.ndarray, K: np.ndarray) -> ContentEncoder:
    levels = []
    for j in range(K.shape[1]):
        codes, counts = np.unique(K[:, j], return_counts=True)
        top = codes[np.argsort(-counts, kind="stable")[:ONE_HOT_LEVELS]] if len(codes) > 1 else codes[:0]
        levels.append(np.sort(top))
    return ContentEncoder(tuple(levels), Z.shape[1])


def carries(t: CategoricalTrigger, K: np.ndarray) -> np.ndarray:
    mask = np.ones(len(K), dtype=bool)
    for j, code in zip(t.columns, t.codes):
        mask &= K[:, j] == code
    return mask


class _Candidates:
    """The candidate patterns of a sample: single values first, then pairs of values.

    A pattern's rows must be between ``min_group`` and ``max_pattern_share`` of the sample and at least
    ``min_pattern_purity`` one label ``t`` (and purer than half-way from ``t``'s share of the sample to 1).
    Candidates come most unlikely purity first (binomial tail at ``t``'s share of the sample)."""

    def __init__(self, K: np.ndarray, y: np.ndarray, C: int, params):
        self.y, self.C, self.n = y, C, len(y)
        self.base = np.bincount(y, minlength=C) / self.n
        self.lo, self.hi = max(params.min_group, 5), params.max_pattern_share * self.n
        self.min_purity = params.min_pattern_purity
        self.cols, self.inverse, self.uniques, self.sizes = [], [], [], []
        for j in range(K.shape[1]):
            u, inv, counts = np.unique(K[:, j], return_inverse=True, return_counts=True)
            if 2 <= len(u) <= MAX_LEVELS:
                self.cols.append(j)
                self.inverse.append(inv.astype(np.int64).ravel())
                self.uniques.append(u)
                self.sizes.append(counts)
            if len(self.cols) >= MAX_COLUMNS:
                break

    def _cells(self, key, size):
        table = np.bincount(key * self.C + self.y, minlength=size * self.C).reshape(size, self.C)
        m = table.sum(axis=1)
        t = table.argmax(axis=1)
        purity = table[np.arange(size), t] / np.maximum(m, 1)
        ok = ((m >= self.lo) & (m <= self.hi) & (purity >= self.min_purity)
              & (purity >= 0.5 * (1.0 + self.base[t])))
        return m, t, table[np.arange(size), t], ok

    def _ranked(self, found):
        """Most surprising first: the chance of the pattern's purity at the rate its label has among the rows
        of its likeliest part alone (the class's share of the sample for a single value; for a pair, the
        larger of that and the label's share among each value's rows)."""
        from scipy.stats import binom

        scored = [(float(binom.logsf(nt - 1, m, min(p, 0.999))), columns, codes, int(t))
                  for m, t, nt, p, columns, codes in found]
        scored.sort(key=lambda f: f[0])
        return [f[1:] for f in scored[:MAX_TESTED]]

    def singles(self) -> list[tuple[tuple, tuple, int]]:
        """(columns, codes, label) of the single values to test."""
        found = []
        for a, j in enumerate(self.cols):
            m, t, nt, ok = self._cells(self.inverse[a], len(self.uniques[a]))
            found += [(m[i], t[i], nt[i], self.base[t[i]], (j,), (int(self.uniques[a][i]),))
                      for i in np.flatnonzero(ok)]
        return self._ranked(found)

    def pairs(self, settled: set) -> list[tuple[tuple, tuple, int]]:
        """(columns, codes, label) of the pairs to test: fewer rows than either value alone; neither value a
        tested single of the same label that ``settled`` holds (its content explained); and neither value too
        common to be a candidate itself while about as pure for the label as the pair (a trait of the class,
        which every pattern inside it inherits)."""
        found = []
        share = [np.bincount(inv * self.C + self.y, minlength=len(u) * self.C).reshape(len(u), self.C)
                 / np.maximum(sizes, 1)[:, None] for inv, u, sizes in zip(self.inverse, self.uniques, self.sizes)]
        for a in range(len(self.cols)):
            for b in range(a + 1, len(self.cols)):
                Lb = len(self.uniques[b])
                m, t, nt, ok = self._cells(self.inverse[a] * Lb + self.inverse[b], len(self.uniques[a]) * Lb)
                ia, ib = np.divmod(np.arange(len(m)), Lb)
                ok &= (m < self.sizes[a][ia]) & (m < self.sizes[b][ib])
                for i in np.flatnonzero(ok):
                    ca, cb = int(self.uniques[a][ia[i]]), int(self.uniques[b][ib[i]])
                    if (self.cols[a], ca, t[i]) in settled or (self.cols[b], cb, t[i]) in settled:
                        continue
                    rate = max(self.base[t[i]], share[a][ia[i], t[i]], share[b][ib[i], t[i]])
                    trait = [sh[v, t[i]] for sh, sz, v in ((share[a], self.sizes[a], ia[i]),
                                                          (share[b], self.sizes[b], ib[i])) if sz[v] > self.hi]
                    if trait and max(trait) >= nt[i] / m[i] - 0.1:
                        continue
                    found.append((m[i], t[i], nt[i], rate, (self.cols[a], self.cols[b]), (ca, cb)))
        return self._ranked(found)


def _t_share(refC, ref_y, members, keep, Q, c, C, k, own=None):
    """Per query: share of label ``c`` among its ``k`` nearest member reference rows on the ``keep``
    columns (leaving a query that is a reference row itself out), and the vote margin against ``c``."""
    view = SimpleNamespace(ref_rows=members, keep=keep)
    margin, suggested, nb = _vote(refC, ref_y, view, Q, c, C, k, own_rows=own)
    return (ref_y[nb] == c).mean(axis=1), margin, suggested, nb


def find_triggers(Z, K, y, C, ref, params, names) -> tuple[list[CategoricalTrigger], ContentEncoder, int]:
    """The confirmed categorical triggers of the sample (``Z`` standardised numeric features, ``K`` the
    categorical codes, ``ref`` the reference rows), the content encoder and how many candidates were tested."""
    ref = ref[:REFERENCE_ROWS]
    encoder = encoder_of(Z[ref], K[ref])
    candidates = _Candidates(K, y, C, params)
    refC = encoder.encode(Z[ref], K[ref])
    singles, explained, tested = {}, set(), 0
    for columns, codes, t in candidates.singles():
        trig = _test(Z, K, y, C, ref, refC, encoder, columns, codes, t, params, names)
        tested += 1
        if trig is not None and _confirmed(trig, params):
            singles[(columns[0], codes[0], t)] = trig
        elif trig is not None and _explained(trig, params):
            explained.add((columns[0], codes[0], t))
    pairs, checked, mixed = [], set(), set()
    for columns, codes, t in candidates.pairs(explained):
        values = [(j, c, t) for j, c in zip(columns, codes)]
        parts = [v for v in values if v in singles]
        if parts and parts[0] in checked or any(v in mixed for v in values):
            continue  # a subset of a confirmed single value, already checked once
        trig = _test(Z, K, y, C, ref, refC, encoder, columns, codes, t, params, names)
        tested += 1
        if trig is None or not _confirmed(trig, params):
            continue
        if parts:
            # A confirmed single value that holds a confirmed pair: a trigger of its own unless its rows outside
            # the pair are the data's own (a value that decides the label, beside a pair sent to it) or few.
            checked.add(parts[0])
            single = singles[parts[0]]
            rest = carries(single, K) & ~carries(trig, K)
            other = _test(Z, K, y, C, ref, refC, encoder, single.columns, single.codes, t, params, names,
                          (rest, carries(single, K)))
            tested += 1
            if other is not None and not _natural(other, params):
                continue
            del singles[parts[0]]
            mixed.add(parts[0])  # its other pairs would mix the same trigger with the same rows of its own
        pairs.append(trig)
    return _prune(list(singles.values()) + pairs, K, y), encoder, tested


def _prune(triggers: list[CategoricalTrigger], K, y) -> list[CategoricalTrigger]:
    """Of two triggers of one label whose carriers of that label overlap: the smaller goes when nearly all of
    its carriers are the larger's (it adds nothing); otherwise, when they share at least half of the smaller's,
    the one whose group's content leans less toward the other classes goes (the other trigger's carriers
    mixed with rows of the data's own)."""
    group = [carries(t, K) & (y == t.cls) for t in triggers]
    size = [int(g.sum()) for g in group]
    dropped = set()
    for i, a in enumerate(triggers):
        for j in range(i + 1, len(triggers)):
            b = triggers[j]
            if i in dropped or j in dropped or a.cls != b.cls:
                continue
            shared = int((group[i] & group[j]).sum())
            small, large = (i, j) if size[i] <= size[j] else (j, i)
            if shared >= 0.9 * size[small]:
                dropped.add(small)
            elif shared >= 0.5 * size[small]:
                dropped.add(i if _lean(a) < _lean(b) else j)
    return [t for i, t in enumerate(triggers) if i not in dropped]


def _lean(t: CategoricalTrigger) -> float:
    """How far the group's content vote sits from its class's toward the other classes' (0: like its class)."""
    return (t.class_share - t.content_share) / max(t.class_share - t.other_share, 1e-9)


def _test(Z, K, y, C, ref, refC, encoder, columns, codes, t, params, names,
          some=None) -> CategoricalTrigger | None:
    """The pattern's group and the content votes of its carriers labelled ``t``, of the class's rows that
    carry nothing and of the other classes' rows (None: too few rows to compare with). ``some``: (rows to
    test, rows to keep out of the reference) instead of the pattern's carriers for both."""
    ref_y = y[ref]
    k = params.neighbours
    if some is None:
        carrier = hidden = carries(CategoricalTrigger(t, columns, (), codes, 0, 0.0, 0.0, 0.0, 0.0, 0), K)
    else:
        carrier, hidden = some
    group = np.flatnonzero(carrier & (y == t))[:GROUP_ROWS]
    members = np.flatnonzero(~hidden[ref])
    own_t = np.flatnonzero((ref_y == t) & ~hidden[ref])[:POOL_ROWS]
    own_o = np.flatnonzero((ref_y != t) & ~hidden[ref])[:POOL_ROWS]
    if (len(group) < params.min_group or len(members) <= k + 1 or len(own_t) < 2 * params.min_group
            or len(own_o) < 2 * params.min_group):
        return None
    keep = encoder.keep(columns)
    if len(keep) == 0:  # nothing outside the pattern to judge the content by
        return None
    # One search: the group (not reference members), then the pools (members, each leaving itself out).
    queries = np.concatenate([encoder.encode(Z[group], K[group]), refC[own_t], refC[own_o]])
    own = np.concatenate([np.full(len(group), -1), own_t, own_o])
    share, margin, _, _ = _t_share(refC, ref_y, members, keep, queries, t, C, k, own=own)
    q_g, q_t, q_o = np.split(share, [len(group), len(group) + len(own_t)])
    margin = margin[: len(group)]
    # Cohesion: a natural part of a class has content of its own, so its rows are each other's neighbours;
    # rows sent to the class from the others are a random draw of them, near carriers no more than anyone.
    in_ref = np.flatnonzero(carrier[ref] & (ref_y == t))[:GROUP_ROWS]
    if len(in_ref) < params.min_group:  # too few carriers among the reference rows to tell
        return None
    _, _, _, nb = _t_share(refC, ref_y, np.arange(len(ref)), keep, refC[in_ref], t, C, k, own=in_ref)
    cohesion = float(carrier[ref][nb].mean())
    size = int(carrier.sum())
    in_class = int((carrier & (y == t)).sum())
    return CategoricalTrigger(t, columns, tuple(names[j] for j in columns), codes, size,
                              round(in_class / max(size, 1), 4), round(float(q_g.mean()), 4),
                              round(float(q_t.mean()), 4), round(float(q_o.mean()), 4), int((margin > 0).sum()),
                              round(float(q_g.std() / math.sqrt(len(q_g))), 4), round(cohesion, 4),
                              round(float(carrier[ref].mean()), 4))


def _confirmed(t: CategoricalTrigger, params) -> bool:
    """The content separates the classes, and says another class for the group about as often as for
    the other classes' rows."""
    separation = t.class_share - t.other_share
    gap = t.class_share - t.content_share
    return (separation >= params.min_separation * t.class_share and gap >= params.min_explained * separation
            and gap >= SURE * t.content_error and t.sample_confirmed >= params.min_group
            and t.cohesion <= COHESION * t.carrier_share + COHESION_SLACK)


def _natural(t: CategoricalTrigger | None, params) -> bool:
    """The group is a natural part of its class: its content says its label, or its rows are each other's."""
    return t is None or _explained(t, params) or t.cohesion > COHESION * t.carrier_share + COHESION_SLACK


def _explained(t: CategoricalTrigger, params) -> bool:
    """The content says the pattern's own label for its group about as often as for the class's other rows."""
    return t.class_share - t.content_share < 0.5 * params.min_explained * (t.class_share - t.other_share)


def score_carriers(t: CategoricalTrigger, encoder: ContentEncoder, ref_X, ref_codes, ref_labels, Z, K, y, C, k):
    """(rows, score, suggested label, neighbours) of the batch rows labelled ``t.cls`` that carry ``t``,
    voted on by the reference rows that do not carry it, on the content outside the pattern. The score is
    above 0 when another label outvotes ``t.cls`` among the neighbours, or when they hold ``t.cls`` less
    often than :data:`LEAN` says: the content does not say the label the trigger gave."""
    rows = np.flatnonzero(y == t.cls)
    rows = rows[carries(t, K[rows])]
    members = np.flatnonzero(~carries(t, ref_codes))
    if len(rows) == 0 or len(members) <= k or len(encoder.keep(t.columns)) == 0:
        return rows[:0], np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, k), dtype=np.int64)
    refC = encoder.encode(ref_X[: len(ref_codes)], ref_codes)
    margin, suggested, nb = _vote(refC, ref_labels, SimpleNamespace(ref_rows=members, keep=encoder.keep(t.columns)),
                                  encoder.encode(Z[rows], K[rows]), t.cls, C, k)
    share = (ref_labels[nb] == t.cls).mean(axis=1)
    return rows, np.maximum(margin, LEAN * (1.0 + t.class_share) - share), suggested, nb


def evidence_of(t: CategoricalTrigger) -> dict:
    """What a carrier's evidence says of its trigger (the values named from the row, in words)."""
    return {
        "trigger": "categorical",
        "pattern": [{"feature": name, "value_from_row": name} for name in t.names],
        "group_label_purity": t.purity,
        "content_says_label_share": {"group": t.content_share, "class": t.class_share, "other_classes": t.other_share},
    }


def summary_of(t: CategoricalTrigger, classes) -> dict:
    return {"label": str(classes[t.cls]), "kind": "categorical", "features": list(t.names),
            "carriers_in_sample": t.sample_group, "label_purity": t.purity,
            "contradicted_in_sample": t.sample_confirmed,
            "content_says_label_share": {"group": t.content_share, "class": t.class_share,
                                         "other_classes": t.other_share}}
