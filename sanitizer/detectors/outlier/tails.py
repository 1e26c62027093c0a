"""``outlier``'s tail model: per-feature reference distributions as two-sided ``-log p`` (empirical
inside the body, exponential beyond it), evaluated for a whole block by a binned step-function lookup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

MAX_NATS = 1e4
"""Per-feature -log p is capped here (a constant feature that changes would otherwise be inf)."""


def _compact(positions: np.ndarray) -> np.ndarray:
    """Positions as int32 when they fit (halves the state every worker receives)."""
    return positions.astype(np.int32 if positions.size == 0 or positions.max() < 2**31 - 1 else np.int64)


@dataclass(frozen=True)
class StepTable:
    """Many step functions (one per feature), evaluated for a whole (n, d) block in a few passes.

    Feature j's function is given by sorted breakpoints ``b_j`` and values
    ``v_j`` (``len(b_j) + 1`` of them): ``f_j(x) = v_j[searchsorted(b_j, x, "right")]``.
    A branchy binary search per value is slow and, run feature by feature,
    holds the GIL for many small calls. Instead each feature's breakpoint range
    is cut into equal-width bins; ``lut`` says how many breakpoints lie in
    earlier bins, and at most ``steps`` breakpoints share a bin, so the count for
    x is one lookup plus ``steps`` vectorised compare-and-step passes over the
    whole block. Exact: the bin of x is monotone in x, so a breakpoint in an
    earlier bin is always below x and one in a later bin always above. Features
    whose breakpoints are too clumped for a small table use ``searchsorted``.
    """

    lo: np.ndarray  # (d,)
    inv_width: np.ndarray  # (d,)
    bins: np.ndarray  # (d,)
    lut_offset: np.ndarray  # (d,) where feature j's lut starts
    lut: np.ndarray  # flat; entries are positions in ``padded``
    padded: np.ndarray  # flat; each feature's breakpoints followed by one NaN (NaN <= x is never true)
    value_shift: np.ndarray  # (d,) value index = padded position + shift
    values: np.ndarray  # flat; each feature's len(b_j) + 1 values
    steps: int
    fallback: tuple[int, ...]  # features looked up with searchsorted

    MAX_STEPS: ClassVar[int] = 4

    @staticmethod
    def build(breaks: list[np.ndarray], values: list[np.ndarray]) -> "StepTable":
        d = len(breaks)
        lo, inv_width, bins = np.zeros(d), np.zeros(d), np.zeros(d, dtype=np.int64)
        luts, padded, shifts, fallback = [], [], np.zeros(d, dtype=np.int64), []
        lut_offset = np.zeros(d, dtype=np.int64)
        position = lut_pos = value_pos = 0
        steps = 0
        for j, (b, v) in enumerate(zip(breaks, values)):
            lo[j] = b[0]
            lut_offset[j] = lut_pos
            shifts[j] = value_pos - position
            chosen = None
            for factor in (4, 32):
                n_bins = int(min(max(factor * len(b), 16), 1 << 16))
                with np.errstate(over="ignore", divide="ignore"):
                    w = n_bins / (b[-1] - b[0]) if b[-1] > b[0] else 0.0
                if not np.isfinite(w):  # a range of a few ulps: one bin, stepped through
                    w = 0.0
                kb = StepTable._bins(b, b[0], w, n_bins)
                runs = np.diff(np.flatnonzero(np.r_[True, kb[1:] != kb[:-1], True]))
                extra = int(runs.max()) if len(runs) else 0
                if extra <= StepTable.MAX_STEPS:
                    chosen = (n_bins, w, kb, extra)
                    break
            if chosen is None:
                fallback.append(j)
                chosen = (0, 0.0, np.zeros(len(b), dtype=np.int64), 0)
            n_bins, w, kb, extra = chosen
            bins[j], inv_width[j] = n_bins, w
            steps = max(steps, extra)
            luts.append(np.searchsorted(kb, np.arange(-1, n_bins + 1), side="left") + position)
            padded.append(np.append(b, np.nan))
            lut_pos += n_bins + 2
            position += len(b) + 1
            value_pos += len(v)
        return StepTable(
            lo, inv_width, bins, lut_offset, _compact(np.concatenate(luts)), np.concatenate(padded), shifts,
            np.concatenate(values), steps, tuple(fallback),
        )

    @staticmethod
    def _bins(x, lo, inv_width, bins):
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.floor((x - lo) * inv_width)
        if not np.isfinite(k).all():  # only an infinite x (never a valid row) gets here
            k = np.nan_to_num(k, nan=0.0, posinf=np.iinfo(np.int32).max, neginf=-1.0)
        return np.clip(k, -1, bins).astype(np.int64)

    def lookup(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of f_j(X[:, j])."""
        idx = self.lut[self._bins(X, self.lo, self.inv_width, self.bins) + 1 + self.lut_offset]
        for _ in range(self.steps):
            idx += self.padded[idx] <= X
        out = self.values[idx + self.value_shift]
        for j in self.fallback:
            start = self.lut[self.lut_offset[j]]  # the feature's first breakpoint in ``padded``
            b = self.padded[start : start + np.flatnonzero(np.isnan(self.padded[start:]))[0]]
            out[:, j] = self.values[np.searchsorted(b, X[:, j], side="right") + start + self.value_shift[j]]
        return out


@dataclass(frozen=True)
class TailReference:
    """Per-feature reference distributions, evaluated as two-sided ``-log p``.

    Inside the observed body, ``-log p(x)`` is the two-sided empirical tail
    probability of x among the reference values (smoothed so p >= 1/(n+1)),
    piecewise constant: one value exactly at each reference value, another
    between two neighbouring ones, stored as sorted breakpoints and a value table
    and evaluated for all features at once by a :class:`StepTable`. Beyond the
    ``m``-th most extreme value of a side (``m`` = ``tail_fraction`` of the rows,
    at least 5) the tail is exponential, fitted to those m values (scale ``beta``
    from the mean excess of all but their most extreme few, which a few planted
    extremes barely move), so the score keeps growing linearly with the distance.
    """

    steps: StepTable  # per feature: 2u sorted breakpoints and 2u+1 values of -log p
    low: np.ndarray  # (d,) 1st percentile, for evidence
    high: np.ndarray  # (d,) 99th percentile, for evidence
    upper_start: np.ndarray  # (d,) where the upper exponential tail starts
    upper_beta: np.ndarray  # (d,) its scale
    lower_start: np.ndarray  # (d,)
    lower_beta: np.ndarray  # (d,)
    upper_nats: np.ndarray  # (d,) -log of the two-sided probability where the upper exponential tail starts
    lower_nats: np.ndarray  # (d,) ... and where the lower one starts
    sd: np.ndarray  # (d,) spread of the reference (std; a quantile estimate for class references)

    @staticmethod
    def build(X: np.ndarray, grid_size: int, tail_fraction: float, floor: np.ndarray | None = None) -> "TailReference":
        """Reference from rows X (at least 2). ``floor`` bounds each tail's scale from below (a class
        reference borrows a share of the whole sample's spread, so a feature that is nearly constant
        within a class does not make every small deviation infinitely improbable)."""
        n, d = X.shape
        full = np.sort(X, axis=0)
        m = int(min(max(5, np.ceil(tail_fraction * n)), n - 1))
        upper_start, lower_start = full[n - 1 - m].copy(), full[m].copy()
        # The scale is the mean excess over the tail's start of the TRIMMED tail (its most extreme
        # TRIM share left out, rescaled to be exact for an exponential): the plain mean would let a
        # few planted extremes in the sample stretch the very tail that should expose them.
        upper_beta = _trimmed_scale(full[n - m:] - upper_start)
        lower_beta = _trimmed_scale(lower_start - full[:m])
        # ... and never wider than EDGE_WIDTHS times what the edge of the body says (the quantile step from
        # 10% to 5% into the tail, ln 2 scales for an exponential): a value copied into 1% of the rows fills
        # a fifth of the tail, and would otherwise stretch the very scale that should expose it.
        q = full[[n - 1 - 2 * m, n - 1 - m, m, 2 * m]] if 2 * m < n else None
        if q is not None:  # (a body edge with no width, zeros on both quantiles, says nothing: left alone)
            edge_up, edge_down = EDGE_WIDTHS * (q[1] - q[0]) / np.log(2.0), EDGE_WIDTHS * (q[3] - q[2]) / np.log(2.0)
            upper_beta = np.where(edge_up > 0, np.minimum(upper_beta, edge_up), upper_beta)
            lower_beta = np.where(edge_down > 0, np.minimum(lower_beta, edge_down), lower_beta)
        median = full[n // 2]
        if floor is None:
            sd = X.std(axis=0)
            least = np.maximum(0.05 * sd, 1e-6 * np.maximum(np.abs(median), 1.0))
        else:  # a class reference: its floor (a share of the global spread) is what bounds the scale
            sd = (full[int(0.84 * (n - 1))] - full[int(0.16 * (n - 1))]) / 2.0  # quantile spread: no second pass
            least = np.maximum(np.maximum(0.05 * sd, floor), 1e-6 * np.maximum(np.abs(median), 1.0))
        upper_beta, lower_beta = np.maximum(upper_beta, least), np.maximum(lower_beta, least)
        tail_nats = float(np.log(n / m) - np.log(2.0))
        upper_nats, lower_nats = np.full(d, tail_nats), np.full(d, tail_nats)
        _spiked_tails(full, m, upper_start, upper_beta, upper_nats, lower_start, lower_beta, lower_nats, least)
        # A discrete column (counts, codes, booleans: few distinct whole numbers) has no tail to extrapolate inside
        # its observed run of values: a value the reference holds within that run is as probable as its share
        # says (a 10% minority value is not an outlier, nor a count of 2 where most rows hold 0). The
        # exponential starts where the run ends - the last value reached from the body across gaps of at most
        # GAP_STEPS times the run's typical gap so far - and each step past it costs two nats, so a value far
        # past the rest (10 in a 0/1 column, 10x the largest count) scores as far out as it is, even when
        # the reference holds a few such values itself.
        for j in np.flatnonzero(_discrete(full)) if n >= DISCRETE_MIN_ROWS else ():
            values, counts = np.unique(full[:, j], return_counts=True)
            if len(values) < 2:
                continue
            gaps = np.diff(values)
            step = float(gaps.min())
            top = int(np.searchsorted(values, upper_start[j]))
            bottom = int(np.searchsorted(values, lower_start[j]))
            top, bottom = _extend_run(gaps, top, bottom)
            above = counts[top:].sum()
            below = counts[: bottom + 1].sum()
            upper_start[j], lower_start[j] = values[top], values[bottom]
            upper_nats[j] = -np.log(min(2.0 * (above + 1.0) / (n + 1.0), 1.0))
            lower_nats[j] = -np.log(min(2.0 * (below + 1.0) / (n + 1.0), 1.0))
            upper_beta[j] = max(0.5 * step, least[j])  # each unseen step past the run costs up to two nats
            lower_beta[j] = max(0.5 * step, least[j])
        srt = full
        if n > grid_size:
            srt = full[((np.arange(grid_size) + 0.5) * n / grid_size).astype(np.int64)]
        m_total = srt.shape[0]
        breaks, tables = [], []
        for j in range(d):
            col = srt[:, j]
            first = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])  # column is sorted: runs of equal values
            u = col[first]
            counts = np.diff(np.r_[first, len(col)])
            le = np.cumsum(counts)  # reference count <= u_i
            lt = le - counts  # reference count < u_i
            at = np.minimum(le, m_total - lt)  # tail count exactly at u_i
            between = np.minimum(le, m_total - le)  # tail count strictly between u_i and u_{i+1}
            tail = np.empty(2 * len(u) + 1)
            tail[0] = 0  # below the smallest reference value
            tail[1::2] = at
            tail[2::2] = between
            p = np.minimum(2.0 * (tail + 1.0), m_total + 1.0) / (m_total + 1.0)
            b = np.empty(2 * len(u))
            b[0::2] = u
            b[1::2] = np.nextafter(u, np.inf)
            breaks.append(b)
            tables.append(-np.log(p))
        q = full[np.clip(np.round(np.array([0.01, 0.99]) * (n - 1)).astype(int), 0, None)]
        return TailReference(
            StepTable.build(breaks, tables), q[0], q[1], upper_start, upper_beta, lower_start, lower_beta,
            upper_nats, lower_nats, sd,
        )

    def neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of two-sided -log p per feature, capped at MAX_NATS."""
        out = self.steps.lookup(X)
        with np.errstate(over="ignore", invalid="ignore"):  # only past a tail's start (inside: the empirical p)
            up = np.where(X > self.upper_start, self.upper_nats + (X - self.upper_start) / self.upper_beta, 0.0)
            down = np.where(X < self.lower_start, self.lower_nats + (self.lower_start - X) / self.lower_beta, 0.0)
        np.maximum(out, np.maximum(up, down), out=out)
        return np.minimum(out, MAX_NATS, out=out)


DISCRETE_VALUES = 32
"""An integer-valued reference column with at most this many distinct values is discrete (see
TailReference.build)."""
DISCRETE_MIN_ROWS = 200
"""A smaller reference (a class's rows in a small sample) shows too few of a column's values to tell its run
of values from chance gaps; it keeps the continuous treatment."""
GAP_STEPS = 4.0
"""A discrete column's observed run of values continues across gaps of at most this many times the run's
median gap so far."""
EDGE_WIDTHS = 3.0
"""A tail's scale is at most this many times the one the body's edge implies (see TailReference.build)."""


def _discrete(sorted_columns: np.ndarray) -> np.ndarray:
    """(d,) bool: integer-valued columns (sorted, as rows x features: counts, codes, booleans) with at most
    DISCRETE_VALUES distinct values."""
    changes = (sorted_columns[1:] != sorted_columns[:-1]).sum(axis=0)
    with np.errstate(invalid="ignore"):
        whole = np.all(sorted_columns == np.round(sorted_columns), axis=0)
    return whole & (changes + 1 <= DISCRETE_VALUES)


def _extend_run(gaps: np.ndarray, top: int, bottom: int) -> tuple[int, int]:
    """Grow the run of distinct values ``values[bottom..top]`` (``gaps`` between consecutive ones) up and down
    while the next gap is at most GAP_STEPS times the run's median gap (the first gap out of a single value
    is always taken)."""
    while True:
        inside = gaps[bottom:top]
        limit = GAP_STEPS * float(np.median(inside)) if len(inside) else np.inf
        if top < len(gaps) and gaps[top] <= limit:
            top += 1
        elif bottom > 0 and gaps[bottom - 1] <= limit:
            bottom -= 1
        else:
            return top, bottom


def _spiked_tails(full, m, upper_start, upper_beta, upper_nats, lower_start, lower_beta, lower_nats, least) -> None:
    """Refit, in place, each tail whose start is a spike: a value repeated so often (the zeros of a
    zero-inflated fee) that at most a SPIKE_SHARE-th of the m tail values lie past it. The mean excess of the
    m most extreme values, most of them copies of the spike, would make every value past it look impossible;
    the tail instead starts at the spike with the share of values past it, and its scale comes from those
    values alone (the smaller of their trimmed mean and median excess, so copies of one planted value among
    them do not stretch it)."""
    n = full.shape[0]
    with np.errstate(invalid="ignore"):
        above, below = (full > upper_start).sum(axis=0), (full < lower_start).sum(axis=0)
    for past, excess_of, beta, nats in (
        (above, lambda j: full[n - above[j]:, j] - upper_start[j], upper_beta, upper_nats),
        (below, lambda j: lower_start[j] - full[: below[j], j], lower_beta, lower_nats),
    ):
        for j in np.flatnonzero((past >= SPIKE_MIN_PAST) & (SPIKE_SHARE * past <= m)):
            excess = excess_of(j)
            if len(np.unique(excess)) < SPIKE_MIN_PAST:
                continue
            beta[j] = max(min(float(_trimmed_scale(excess)), float(np.median(excess)) / np.log(2.0)), least[j])
            nats[j] = -np.log(min(2.0 * (past[j] + 1.0) / (n + 1.0), 1.0))


SPIKE_SHARE = 4
"""A tail whose m values are mostly copies of its start (all but a SPIKE_SHARE-th of them) is refitted past the
spike (see _spiked_tails); a few ties at a discrete column's tail start are not a spike."""
SPIKE_MIN_PAST = 5
"""... when at least this many distinct values lie past the spike: fewer, or copies of one value (a planted
value replicated), say nothing about a scale and would set it to their own distance."""
TRIM = 0.05
"""Share of each fitted tail's most extreme values left out of its scale (none below 20 values)."""


def _trimmed_scale(excess: np.ndarray) -> np.ndarray:
    """Exponential scale per column from the non-negative excesses, the largest TRIM share left
    out; the trimmed mean is rescaled by the mean of an Exp(1) variable below the same
    quantile, so it is exact for an exponential tail."""
    m = len(excess)
    drop = min(int(TRIM * m), m - 1) if m > 1 else 0
    if drop == 0:
        return excess.mean(axis=0)
    t = drop / m
    below = (1.0 - t * (1.0 - np.log(t))) / (1.0 - t)
    return np.sort(excess, axis=0)[: m - drop].mean(axis=0) / below
