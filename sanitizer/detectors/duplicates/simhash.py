"""SimHash of numeric and embedding vectors, and the exact check of the candidate pairs its buckets offer.

**The hash** (:func:`simhash`): bit ``k`` is the sign of the vector's projection on a random direction
(``planes(dim, 64, seed)``, standard normal columns). Two vectors at angle ``theta`` disagree on each bit
with probability ``theta / pi``, independently across bits. Vectors are the standardised features or
embeddings the detectors read, so they are centred and the angle is taken about the data's centre.

Near copies, whose distance is far below the typical nearest-neighbour distance, sit at a tiny angle and
agree on nearly every bit: a vector ``x`` of norm ``|x|`` and a copy ``x + e`` are at an angle of about
``|e_perp| / |x|``; in 32 standardised dimensions (``|x|`` about 5.7) a copy at distance 0.05 disagrees on
64 * 0.05 / 5.7 / pi = 0.18 bits on average, while an unrelated vector disagrees on about 32. A vector near
the centre has no stable direction: its copies' hashes can differ a lot, and the exact-content stage or
the neighbour search must catch those.

**Band keys** (:func:`band_keys`, the same as for image hashes): ``bands`` chunks of the 64 bits, tagged with
their band index. A pair at angle ``theta`` shares at least one band with probability
``1 - prod_i (1 - (1 - theta / pi) ** width_i)`` (:func:`collision_probability`); :func:`bands_for_angle`
gives the fewest bands for which that is at least 0.99. With 4 bands (16 bits each) pairs up to
0.074 rad (4.2 degrees) collide with probability 0.99 or more; with 8 bands (8 bits), up to 0.31 rad.
Fewer bands make fewer chance candidates: an unrelated pair (``theta`` near ``pi / 2``) shares one of 4
bands with probability about ``4 * 2**-16``, one of 8 with ``8 * 2**-8``. On the standardised digits
(``bench/near_duplicate_signatures.py``), copies with noise 0.02 per feature all share a band with 4 bands,
at 3.9 candidates a row (116 with 8 bands: neighbours in a dense class agree on many bits).

**Checking candidates** (:func:`near_pairs`): the pairs of each candidate group within a radius, by exact
distance, in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sanitizer.detectors.duplicates.phash import band_keys, pack_bits

BITS = 64
SMALL_GROUP = 32
"""Groups up to this size are checked together, stacked by size; larger ones one at a time."""
_BLOCK = 1 << 20  # floats (float64) an array of distances or differences holds at once: 8 MiB

__all__ = ["band_keys", "bands_for_angle", "collision_probability", "near_pairs", "planes", "simhash"]


def planes(dim: int, n_bits: int = BITS, seed: int = 0) -> np.ndarray:
    """``(dim, n_bits)`` random directions (standard normal), drawn from ``seed``."""
    if dim < 1 or not 1 <= n_bits <= BITS:
        raise ValueError(f"dim must be >= 1 and n_bits in [1, {BITS}], got dim={dim}, n_bits={n_bits}")
    return np.random.default_rng(seed).standard_normal((dim, n_bits))


def simhash(X: np.ndarray, seed: int = 0, n_bits: int = BITS) -> np.ndarray:
    """``(n, d)`` finite floats -> ``(n,)`` uint64: bit ``k`` set when ``X @ planes[:, k] > 0``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be (n, d), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X must be finite: pass the imputed, standardised vectors the detectors read")
    return pack_bits(X @ planes(X.shape[1], n_bits, seed) > 0)


def collision_probability(angle: float | np.ndarray, bands: int, n_bits: int = BITS) -> float | np.ndarray:
    """The chance that two vectors at ``angle`` (radians) share at least one of ``bands`` band keys."""
    widths = np.diff(np.linspace(0, n_bits, bands + 1).round().astype(int))
    agree = 1.0 - np.asarray(angle, dtype=float)[..., None] / np.pi
    return 1.0 - np.prod(1.0 - agree ** widths, axis=-1)


def bands_for_angle(angle: float, target: float = 0.99, n_bits: int = BITS) -> int:
    """The fewest bands for which two vectors at ``angle`` share a band with probability at least ``target``."""
    for bands in range(1, n_bits + 1):
        if collision_probability(angle, bands, n_bits) >= target:
            return bands
    raise ValueError(f"no banding of {n_bits} bits reaches {target} at angle {angle}")


def _pairs_within(X: np.ndarray, left: np.ndarray, right: np.ndarray, radius: float) -> np.ndarray:
    """The ``(left[k], right[k])`` whose exact distance is at most ``radius``, checked in bounded chunks."""
    keep = []
    step = max(1, _BLOCK // max(X.shape[1], 1))
    for lo in range(0, len(left), step):
        a, b = left[lo:lo + step], right[lo:lo + step]
        diff = X[a] - X[b]
        near = np.einsum("ij,ij->i", diff, diff) <= radius * radius
        keep.append(np.stack([a[near], b[near]], axis=1))
    return np.concatenate(keep) if keep else np.zeros((0, 2), dtype=np.int64)


def _small_groups(X: np.ndarray, groups: list[np.ndarray], radius: float) -> list[np.ndarray]:
    """All pairs of the groups of one size at once: ``(groups, size)`` -> the upper triangle of each."""
    found = []
    by_size: dict[int, list[np.ndarray]] = {}
    for g in groups:
        by_size.setdefault(len(g), []).append(g)
    for size, members in sorted(by_size.items()):
        stacked = np.stack(members)
        i, j = np.triu_indices(size, 1)
        found.append(_pairs_within(X, stacked[:, i].ravel(), stacked[:, j].ravel(), radius))
    return found


def _large_group(X: np.ndarray, group: np.ndarray, radius: float) -> np.ndarray:
    """The pairs of one large group, swept along its widest coordinate in blocks of bounded size.

    Rows are sorted by their value on the coordinate of largest spread; two rows within ``radius`` differ
    by at most ``radius`` there, so a block of rows is compared only with the rows up to ``radius`` past
    it. Candidates come from Gram products (``|a|**2 + |b|**2 - 2 a.b``, with a little slack) and are
    confirmed by exact differences.
    """
    V = X[group]
    axis = int(np.argmax(V.max(axis=0) - V.min(axis=0)))
    order = np.argsort(V[:, axis], kind="stable")
    group, V = group[order], V[order]
    p, sq = V[:, axis], np.einsum("ij,ij->i", V, V)
    rows = max(1, int(np.sqrt(_BLOCK)))
    slack = radius * radius + 1e-9 * (1.0 + sq.max())
    found = []
    for lo in range(0, len(group), rows):
        hi = min(len(group), lo + rows)
        end = int(np.searchsorted(p, p[hi - 1] + radius, side="right"))
        width = max(1, _BLOCK // (hi - lo))
        for c0 in range(lo, end, width):
            c1 = min(end, c0 + width)
            d2 = sq[lo:hi, None] + sq[None, c0:c1] - 2.0 * (V[lo:hi] @ V[c0:c1].T)
            r, c = np.nonzero(d2 <= slack)
            r, c = r + lo, c + c0
            upper = c > r
            found.append(np.stack([group[r[upper]], group[c[upper]]], axis=1))
    pairs = np.concatenate(found)
    return _pairs_within(X, pairs[:, 0], pairs[:, 1], radius)


def near_pairs(X: np.ndarray, candidate_groups: Iterable[np.ndarray], radius: float) -> np.ndarray:
    """The pairs ``(i, j)``, ``i < j``, of rows of ``X`` that share a candidate group and lie within ``radius``.

    ``candidate_groups`` are arrays of row indices into ``X`` (the members of one bucket each). Returns a
    sorted ``(m, 2)`` int64 array without repeats (a pair found in several buckets appears once). Distances
    are exact (Euclidean, float64). Working memory stays at a few arrays of 8 MiB whatever the group
    sizes; the output itself holds every pair found, so exact copies are best collapsed first (one row per
    identical group), or a bucket of ``k`` identical rows yields ``k * (k - 1) / 2`` pairs.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be (n, d), got shape {X.shape}")
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    small, found = [], []
    for g in candidate_groups:
        g = np.unique(np.asarray(g, dtype=np.int64))
        if len(g) < 2:
            continue
        if len(g) <= SMALL_GROUP:
            small.append(g)
        else:
            found.append(_large_group(X, g, radius))
    found.extend(_small_groups(X, small, radius))
    pairs = np.concatenate(found).astype(np.int64) if found else np.zeros((0, 2), dtype=np.int64)
    code = np.unique(pairs.min(axis=1) * len(X) + pairs.max(axis=1))
    return np.stack([code // len(X), code % len(X)], axis=1) if len(X) else pairs
