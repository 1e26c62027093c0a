"""MinHash signatures of texts, and the LSH band keys that bring their near copies together.

Two texts are near copies when their sets of shingles overlap: Jaccard ``J = |A & B| / |A | B|``. A MinHash
signature keeps, for each of ``num_perm`` random permutations of the shingle hashes, the smallest permuted
value; two signatures agree at a position with probability ``J``, so the share of agreeing positions
(:func:`jaccard`) estimates it. Cutting the signature into ``bands`` bands of ``rows`` positions and hashing
each band (:func:`band_keys`) gives keys that two texts share with probability ``1 - (1 - J**rows)**bands``:
grouping records by band key (a Beam ``GroupByKey``) finds the candidate pairs in linear time, without an
index of the whole data.

**Shingles** (:func:`shingles`). A text is lowercased and cut into tokens of letters and digits
(punctuation, underscores and runs of whitespace are dropped). Then, for the whole column:

- ``unit="char"`` (the default): character 5-grams of the tokens joined by single spaces;
- ``unit="word"``: word 5-grams of the tokens.

A text shorter than ``n`` units is one shingle (all of it), so a three-word text still gets a signature. A
text with no letter or digit, ``None`` or anything that is not a ``str`` gets none: its signature row is all
:data:`EMPTY` and its band keys are all :data:`NO_KEY`, which callers drop before grouping.

Characters are the default because they forgive edits. On modeldata's product reviews (10 to 864 words,
median 51) with 5 words replaced by random words, the median exact Jaccard of a review and its edited copy is
0.73 over character 5-grams and 0.46 over word 5-grams (one edit removes ``len(word) + 4`` character
shingles but 5 word shingles out of far fewer); unrelated reviews stay far apart either way (99th percentile
0.065 over characters, 0.0 over words). Word 5-grams are what web-scale deduplication runs on long documents:
one shingle per word instead of one per character (about 5x cheaper) and stricter. The unit is a choice for a
column, never per text: a copy on the other side of a length cut would share no shingle with its original.

**Thresholds.** Replacing 5 words of a review is a large change for a set measure (Jaccard 0.44 at the 5th
percentile over characters), so the LSH threshold must sit below the usual 0.8 to see such copies: over
characters, :func:`lsh_params` at 0.8 (9 bands of 13 rows) makes 27 % of them candidates, at 0.4 (32 bands
of 4 rows) 95 % at 0.22 candidates a row, at 0.3 (37 x 3) 98.5 % at 4 a row, on the 4,180 reviews of
``bench/near_duplicate_signatures.py``. The estimate :func:`jaccard` (128 permutations) is within 0.03 of the
exact value on average, 0.15 at worst.

**Hashing.** Units (Unicode code points, or tokens hashed with pandas' stable SipHash) are folded into a
64-bit shingle hash by ``n`` rounds of the splitmix64 finaliser, all in numpy over the batch; its top 32 bits
``x`` enter the permutations ``(a * x + b) mod (2**61 - 1)`` (universal hashing, as datasketch does), with
``1 <= a < 2**61 - 1`` and ``0 <= b < 2**61 - 1`` drawn from ``seed``. The 93-bit product is reduced
exactly from two 64-bit halves (datasketch lets it wrap at 64 bits); ``a`` must be that large, or
``a * x`` would wrap the modulus too few times for the permutations to differ. Signature values are
below ``2**61``. Same texts, ``num_perm`` and ``seed`` give the same signatures on any machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from sanitizer.data.batch import mix64

MERSENNE = np.uint64((1 << 61) - 1)
EMPTY = np.uint64((1 << 64) - 1)
"""Every value of the signature row of a text with no shingle (a real value is below ``2**61``)."""
NO_KEY = np.uint64((1 << 64) - 1)
"""The band key of a record without a signature; never equal to a real band key."""
UNITS = ("char", "word")
MAX_BANDS = 255
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW29 = np.uint64((1 << 29) - 1)
_BAND_TAG = 56
_MASK56 = np.uint64((1 << _BAND_TAG) - 1)
_BAND_SALT = np.uint64(0x6D696E6861736862)
_CHARS = 1 << 20
_CHUNK = 1 << 16  # permuted values (uint64) held at once: 512 KiB, so the passes stay in cache
_TOKEN = re.compile(r"[^\W_]+")


def _tokens(text: object) -> list[str]:
    return _TOKEN.findall(text.lower()) if isinstance(text, str) else []


def _units(texts: Sequence[object], unit: str) -> tuple[np.ndarray, np.ndarray]:
    """The batch's units laid end to end (uint64) and each text's number of units."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "char":
        joined = [" ".join(_tokens(t)) for t in texts]
        lengths = np.fromiter(map(len, joined), dtype=np.int64, count=len(joined))
        units = np.frombuffer("".join(joined).encode("utf-32-le"), dtype="<u4").astype(np.uint64)
        return units, lengths
    per_text = [_tokens(t) for t in texts]
    lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
    flat = np.array([w for words in per_text for w in words], dtype=object)
    units = pd.util.hash_array(flat, categorize=False).astype(np.uint64) if len(flat) else np.zeros(0, np.uint64)
    return units, lengths


def _shingle_hashes(units: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each shingle's 64-bit hash and the text it belongs to (texts in order)."""
    counts = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    text_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    shingle_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    first = text_start[owner] + np.arange(len(owner), dtype=np.int64) - shingle_start[owner]
    window = np.minimum(lengths, n)[owner]
    h = np.zeros(len(owner), dtype=np.uint64)
    last = max(len(units) - 1, 0)
    for k in range(n):
        step = mix64(h ^ units[np.minimum(first + k, last)]) if len(units) else h
        h = np.where(k < window, step, h)
    return h, owner


def _distinct(texts: Sequence[object], unit: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's distinct 32-bit shingle values ``x`` and their owners, sorted by owner."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    h, owner = _shingle_hashes(*_units(texts, unit), n)
    keys = np.sort((owner.astype(np.uint64) << np.uint64(32)) | (h >> np.uint64(32)))
    keys = keys[np.concatenate([keys[:1] == keys[:1], keys[1:] != keys[:-1]])]
    return keys & np.uint64(0xFFFFFFFF), (keys >> np.uint64(32)).astype(np.int64)


def shingles(text: str | None, unit: str = "char", n: int = 5) -> np.ndarray:
    """The distinct hashed shingles of one text (sorted uint64 below ``2**32``; empty for no text)."""
    return _distinct([text], unit, n)[0]


def shingle_jaccard(a: str | None, b: str | None, unit: str = "char", n: int = 5) -> float:
    """The exact Jaccard similarity of two texts' shingle sets (NaN when either has none)."""
    sa, sb = shingles(a, unit, n), shingles(b, unit, n)
    if not len(sa) or not len(sb):
        return float("nan")
    inter = len(np.intersect1d(sa, sb, assume_unique=True))
    return inter / (len(sa) + len(sb) - inter)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` of each permutation ``(a * x + b) mod (2**61 - 1)``, drawn from ``seed``."""
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(MERSENNE), size=num_perm, dtype=np.uint64)
    b = rng.integers(0, int(MERSENNE), size=num_perm, dtype=np.uint64)
    return a, b


def signatures(texts: Sequence[str | None], num_perm: int = 128, seed: int = 0,
               unit: str = "char", n: int = 5, with_sizes: bool = False):
    """MinHash signatures ``(len(texts), num_perm)`` uint64; a text without shingles gets a row of :data:`EMPTY`.
    With ``with_sizes``, also each text's number of distinct shingles (``int64``), from the same pass.

    Vectorised over the batch, about a million characters of text at a time: their distinct shingles are
    permuted together, 65,536 values at a time (small enough to stay in cache), and each text's minima are
    taken with ``np.minimum.reduceat``. Working memory stays at tens of MiB whatever the batch size.
    The cost grows with ``num_perm`` times the number of distinct shingles: see
    ``bench/near_duplicate_signatures.py`` for texts a second.
    """
    a, b = permutations(num_perm, seed)
    texts = list(texts)
    sizes = np.fromiter((len(t) if isinstance(t, str) else 0 for t in texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = np.empty((len(texts), num_perm), dtype=np.uint64)
    counts = np.zeros(len(texts), dtype=np.int64)
    lo = 0
    while lo < len(texts):  # a million characters at a time: the shingle arrays stay tens of MiB
        hi = int(np.searchsorted(bounds, bounds[lo] + _CHARS, side="right")) - 1
        hi = min(len(texts), max(lo + 1, hi))
        x, owner = _distinct(texts[lo:hi], unit, n)
        out[lo:hi] = _minima(x, owner, hi - lo, a, b)
        counts[lo:hi] = np.bincount(owner, minlength=hi - lo)
        lo = hi
    return (out, counts) if with_sizes else out


def _minima(x: np.ndarray, owner: np.ndarray, count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(count, num_perm)``: each text's smallest permuted shingle value (:data:`EMPTY` without shingles)."""
    out = np.full((len(a), count), EMPTY, dtype=np.uint64)  # permutation-major: contiguous minima
    a_low, a_high, b = (a & _LOW32)[:, None], (a >> np.uint64(32))[:, None], b[:, None]
    step = max(1, _CHUNK // len(a))
    for lo in range(0, len(x), step):
        xs, own = x[lo:lo + step], owner[lo:lo + step]
        starts = np.flatnonzero(np.concatenate([[True], own[1:] != own[:-1]]))
        rows = own[starts]
        out[:, rows] = np.minimum(out[:, rows], np.minimum.reduceat(_permute(xs, a_low, a_high, b), starts, axis=1))
    return out.T


def _permute(x: np.ndarray, a_low: np.ndarray, a_high: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * x + b) mod (2**61 - 1)`` exactly, for ``x < 2**32`` and ``a = a_high * 2**32 + a_low < 2**61``.

    The 93-bit product is taken in two 64-bit halves: ``a_low * x < 2**64`` folds as ``2**61 = 1``, and
    ``a_high * x = u < 2**61`` times ``2**32`` is ``(u >> 29) * 2**61 + (u mod 2**29) * 2**32``, which folds
    to ``(u >> 29) + ((u mod 2**29) << 32)``.
    """
    v = a_low * x[None, :]
    s = v >> np.uint64(61)
    v &= MERSENNE
    s += v
    u = a_high * x[None, :]
    v = u >> np.uint64(29)
    s += v
    u &= _LOW29
    u <<= np.uint64(32)
    s += u
    s += b  # < 2**63
    v = s >> np.uint64(61)
    s &= MERSENNE
    s += v  # <= 2**61 + 2, congruent mod p
    np.subtract(s, MERSENNE, out=s, where=s >= MERSENNE)
    return s


def has_signature(sig: np.ndarray) -> np.ndarray:
    """Which rows of a signature matrix belong to a text with shingles."""
    return np.asarray(sig)[:, 0] != EMPTY


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """LSH keys ``(n, bands)`` uint64: band ``i`` hashes signature columns ``i*rows .. (i+1)*rows - 1``.

    A key carries its band index in the top 8 bits (``i << 56``) over 56 bits of the band's hash, so keys of
    different bands never collide and all of them can be grouped in one ``GroupByKey``. Two texts share
    band ``i``'s key when their rows agree there (or, with chance about ``2**-56`` per pair, by a hash
    collision). Rows without a signature get :data:`NO_KEY` in every band.
    """
    sig = np.asarray(sig, dtype=np.uint64)
    if not 1 <= bands <= MAX_BANDS:
        raise ValueError(f"bands must be in [1, {MAX_BANDS}], got {bands}")
    if rows < 1 or bands * rows > sig.shape[1]:
        raise ValueError(f"bands * rows must be in [1, {sig.shape[1]}] (the signature length), "
                         f"got {bands} * {rows}")
    band = np.arange(bands, dtype=np.uint64)
    h = np.broadcast_to(mix64(band ^ _BAND_SALT), (len(sig), bands)).copy()
    cut = sig[:, :bands * rows].reshape(len(sig), bands, rows)
    for r in range(rows):
        h = mix64(h ^ cut[:, :, r])
    keys = (band << np.uint64(_BAND_TAG)) | (h & _MASK56)
    keys[~has_signature(sig)] = NO_KEY
    return keys


def jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float | np.ndarray:
    """Estimated Jaccard similarity: the share of positions where two signatures agree (NaN without one).

    Takes two rows (returns a float) or two ``(n, num_perm)`` matrices, row by row (returns ``(n,)``).
    """
    a, b = np.asarray(sig_a, dtype=np.uint64), np.asarray(sig_b, dtype=np.uint64)
    agree = (a == b).mean(axis=-1)
    missing = (a[..., 0] == EMPTY) | (b[..., 0] == EMPTY)
    estimate = np.where(missing, np.nan, agree)
    return float(estimate) if estimate.ndim == 0 else estimate


def collision_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """The chance that two texts of Jaccard ``similarity`` share at least one of ``bands`` band keys."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


@lru_cache(maxsize=64)
def lsh_params(threshold: float = 0.8, num_perm: int = 128,
               weights: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
    """``(bands, rows)`` for a Jaccard ``threshold``, chosen as datasketch's ``MinHashLSH`` chooses them.

    Of all ``bands * rows <= num_perm``, the one minimising ``weights[0] * FP + weights[1] * FN``, where FP is
    the area under the collision curve below the threshold and FN the area above it that the curve misses
    (first minimum in the order bands = 1, 2, ...; rows = 1, 2, ...).
    """
    from scipy.integrate import quad

    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = quad(lambda s: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)[0]
            fn = quad(lambda s: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)[0]
            error = fp * weights[0] + fn * weights[1]
            if error < best:
                best, opt = error, (b, r)
    return opt
