"""Near copies: texts with a few words changed, images re-encoded, moved by a pixel or recoloured, vectors with a
little noise; found in linear time by band keys, confirmed pair by pair, grouped by union-find.

Three sources, each a signature per record and band keys that bring likely pairs into one bucket:

* **text** (each judged text column): MinHash of character 5-grams (:mod:`~.minhash`), LSH bands tuned to
  catch pairs from Jaccard 0.4 up (stricter as the data grows: :func:`text_bands`), a pair confirmed at an
  estimated Jaccard of ``text_jaccard`` or more, or when the two are a few words apart (:func:`text_confirmed`:
  in a short text a few edits weigh more). A text of fewer than ``TEXT_MIN_CHARS`` characters is not
  judged: short texts ("Great product!") repeat by chance;
* **image** (each image column): the DCT pHash and its eight one-pixel shifts (:mod:`~.phash`); a pair is
  confirmed when the smallest distance between one's shifts and the other's hash is ``image_bits`` or less
  and their pixels agree in shape and colour (:mod:`~.pixel_match`: luma correlation at half resolution,
  colour of 4x4-pixel blocks; JPEG re-encoding and a slight recolour pass, another scan or another font's
  glyph does not);
* **vector** (the numeric features, standardised on the sample, of records equal in every other content
  column): Euclidean LSH bands (:func:`vector_keys`), a pair confirmed when its distance is under ``vector_ratio`` times the data's median nearest-neighbour distance
  (cleanlab's near-duplicate rule), scaled from the sample to the run's size. Where that radius holds
  neighbours by chance (few intrinsic dimensions), or the vectors lie on a grid (integer codes), vectors
  are not judged and provenance says why.

Confirmed pairs make groups around their first record (:func:`leaders`, no chains); a group is decided as
exact copies are
(:func:`~sanitizer.detectors.duplicates.groups.decide_groups`): one kept, the others held as near copies of
it, labels that disagree with the group's held as conflicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sanitizer.data.batch import mix64
from sanitizer.detectors.duplicates import minhash, phash, pixel_match

_MASK56 = np.uint64((1 << 56) - 1)
TEXT, IMAGE, VECTOR = "text", "image", "vector"
TEXT_MIN_CHARS = 40
NUM_PERM = 128
IMAGE_BANDS = 4
VECTOR_BANDS = 8
VECTOR_PROJECTIONS = 8
VECTOR_WIDTH = 4.0
GRID = 0.5
"""Vectors whose sampled records have fewer distinct nearest-neighbour distances than this share of them lie
on a grid (integer codes, coarse measurements): near neighbours there are not near copies."""
NATURAL = 0.2
"""Where more than this share of the records have a near copy (vectors: estimated from the sample; texts and
images: counted over the run), near-equal records are part of the data, not an attack on it: that source
is not judged. Replicated poison
and copied records are a small share of a data set."""
SPREAD = 0.25
"""A copy with noise differs from its original in nearly every value; two records equal in all but a few
columns (a second room of one booking, a follow-up visit) are one fact apart, which the data's own process
makes often. A vector pair counts only when it differs in at least this share of the columns (and in 3,
or all of them when there are fewer)."""
QUERIES = 5000
"""Sampled records whose two nearest neighbours among all the sampled records calibrate the space: the
distances keep the whole sample's density, and the search costs a quarter of an all-pairs one on a
20,000-record sample. They are every k-th distinct vector in sorted order, the same on every run."""
MAX_RUN = 64
"""Records sharing one band key beyond this many are linked to the first of them only (a star, not every
pair): a template text or a blank image would otherwise make a number of pairs that grows as its square."""


@dataclass(frozen=True)
class VectorSpace:
    """How vectors are standardised and which distance makes two of them near copies."""

    centre: np.ndarray
    scale: np.ndarray
    radius: float  # in standardised units; 0 when vectors are not judged
    median_nn: float  # median distance to the nearest other sampled record
    intrinsic_dim: float
    chance_neighbours: float  # neighbours within the radius expected of any record by chance
    reason: str = ""

    @property
    def judged(self) -> bool:
        return self.radius > 0

    def standardise(self, X: np.ndarray) -> np.ndarray:
        """Centred and scaled; a value missing, or too far off to hold as a float, at the centre."""
        with np.errstate(over="ignore", invalid="ignore"):
            Z = np.asarray(X, dtype=np.float64) - self.centre
            Z /= self.scale
        return np.nan_to_num(Z, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    def describe(self) -> dict:
        out = {"radius": round(self.radius, 6), "median_nearest_neighbour": round(self.median_nn, 6),
               "intrinsic_dimension": round(self.intrinsic_dim, 2),
               "chance_neighbours_per_record": float(f"{self.chance_neighbours:.3g}")}
        if self.reason:
            out["not_judged"] = self.reason
        return out


def fit_vectors(X: np.ndarray, records: int, ratio: float, chance_max: float) -> VectorSpace:
    """The space vectors are judged in, from a sample ``X`` (rows: records; NaN: missing) of a run of
    ``records`` records, from the distances of :data:`QUERIES` sampled records to their nearest others in the
    whole sample. The intrinsic dimension comes from the ratio of each record's second to first
    nearest-neighbour distance (TwoNN, Facco et al. 2017, from the ratios' median, so near copies in the
    sample do not pull it down); the median neighbour distance shrinks with the
    data's size as ``(sample / records) ** (1 / dim)``."""
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float limits: their spread is inf
        centre = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
        q75, q25 = (np.nanpercentile(X, [75, 25], axis=0) if len(X) else (np.ones(X.shape[1]), np.zeros(X.shape[1])))
        scale = (q75 - q25) / 1.349
        spread = np.nanstd(X, axis=0) if len(X) else np.ones(X.shape[1])
    scale = np.where(np.isfinite(scale), scale, 0.0)
    spread = np.where(np.isfinite(spread), spread, 0.0)
    scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
    centre = np.where(np.isfinite(centre), centre, 0.0)
    space = VectorSpace(centre, scale, 0.0, 0.0, 0.0, 0.0)
    Z = np.unique(space.standardise(X), axis=0)  # exact copies are the other stage's; distances > 0 only
    if len(Z) < 20:
        return VectorSpace(centre, scale, 0.0, 0.0, 0.0, 0.0, "fewer than 20 distinct sampled vectors")
    queries = np.arange(0, len(Z), -(-len(Z) // QUERIES))
    dist, nearest = NearestNeighbors(n_neighbors=3).fit(Z).kneighbors(Z[queries])
    r1, r2 = dist[:, 1], dist[:, 2]
    distinct = len(np.unique(np.round(r1, 9)))
    if distinct < GRID * len(r1):
        return VectorSpace(centre, scale, 0.0, float(np.median(r1)), 0.0, 0.0,
                           f"the vectors lie on a grid ({distinct:,} distinct nearest-neighbour distances among "
                           f"{len(r1):,} sampled records): close neighbours there are the grid's, not copies")
    ok = (r1 > 0) & (r2 > 0) & np.isfinite(r2)  # a distance beyond the floats' range says nothing of dimension
    mu = np.log(r2[ok] / r1[ok])  # Pareto with index dim: its median is log(2) / dim
    dim = float(np.log(2.0) / max(np.median(mu), 1e-12)) if len(mu) else 0.0
    median_nn = float(np.median(r1[ok])) if ok.any() else 0.0
    if dim <= 0 or median_nn <= 0:
        return VectorSpace(centre, scale, 0.0, median_nn, dim, 0.0, "no neighbour distances to calibrate on")
    median_run = median_nn * (len(Z) / max(records, len(Z))) ** (1.0 / dim)
    close = (r1 <= ratio * median_nn) & spread_apart(Z[queries], Z[nearest[:, 1]])
    natural = float(np.mean(close)) * max(1.0, records / len(Z))
    if natural > NATURAL:
        return VectorSpace(centre, scale, 0.0, median_run, dim, natural,
                           f"{natural:.1%} of the records have a near copy by their vectors (from the sample): "
                           "near-equal records are how this data is (repeated measurements, group bookings), "
                           "not copies")
    chance = float(np.log(2.0) * ratio ** dim)  # neighbours within ratio x the median distance, locally uniform
    if chance > chance_max:
        return VectorSpace(centre, scale, 0.0, median_run, dim, chance,
                           f"with {dim:.1f} intrinsic dimensions, {chance:.2g} records per record are expected "
                           f"within {ratio:g} x the median neighbour distance by chance")
    return VectorSpace(centre, scale, ratio * median_run, median_run, dim, chance)


def text_signatures(texts, seed: int) -> np.ndarray:
    """(n, NUM_PERM + 1) uint64: each text's MinHash signature and, last, its number of distinct shingles
    (what :func:`confirm` weighs an edit against); texts shorter than TEXT_MIN_CHARS get none (a row of
    :data:`~.minhash.EMPTY`)."""
    texts = [t if isinstance(t, str) and len(t.strip()) >= TEXT_MIN_CHARS else None for t in texts]
    sig, sizes = minhash.signatures(texts, NUM_PERM, seed, unit="char", n=5, with_sizes=True)
    return np.hstack([sig, np.where(sig[:, :1] == minhash.EMPTY, minhash.EMPTY, sizes[:, None].astype(np.uint64))])


UNRELATED = 0.05
"""Jaccard similarity of two unrelated texts' character 5-grams (English reviews: 0.02 to 0.05)."""
TEXT_THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)
TEXT_CANDIDATES = 2.0
"""Candidate pairs per record that unrelated texts may make at the chosen LSH threshold."""
TEXT_EDIT = 100
"""A few words edited: a pair below ``text_jaccard`` is still confirmed when its estimated number of
differing shingles, ``(|A| + |B|) (1 - J) / (1 + J)``, is at most this (five words of average length
replaced: each takes its length plus four 5-grams from each side) and its Jaccard is at least
:data:`TEXT_FLOOR`. In a short text a few edits weigh more: a 110-character review with five words
replaced keeps a Jaccard of 0.4, a 1,000-character one of 0.9."""
TEXT_FLOOR = 0.3
"""... never below this Jaccard: unrelated reviews of modeldata's 5,000 reach 0.28 at most (their
templated closings: "arrived in a timely manner ... from this vendor")."""


def text_bands(records: int) -> tuple[int, int]:
    """(bands, rows) of the text LSH: the lowest threshold of :data:`TEXT_THRESHOLDS` (bands as datasketch
    picks them) at which unrelated texts make at most :data:`TEXT_CANDIDATES` candidates per record among
    ``records``: 0.4 for up to 10,000 texts, stricter as the data grows, so candidates grow linearly
    with the data."""
    for threshold in TEXT_THRESHOLDS:
        bands, rows = minhash.lsh_params(threshold, NUM_PERM)
        if records * float(minhash.collision_probability(UNRELATED, bands, rows)) <= TEXT_CANDIDATES:
            return bands, rows
    return minhash.lsh_params(TEXT_THRESHOLDS[-1], NUM_PERM)


def text_keys(signatures: np.ndarray, records: int = 0) -> np.ndarray:
    bands, rows = text_bands(records)
    return minhash.band_keys(signatures[:, :NUM_PERM], bands, rows)


def text_confirmed(similarity: np.ndarray, sizes_a: np.ndarray, sizes_b: np.ndarray,
                   threshold: float) -> np.ndarray:
    """(n,) bool: pairs of texts that are near copies, from their estimated Jaccard and shingle counts: at
    ``threshold`` or above, or a few words apart (:data:`TEXT_EDIT`, :data:`TEXT_FLOOR`)."""
    j = np.asarray(similarity, dtype=np.float64)
    differ = (np.asarray(sizes_a, dtype=np.float64) + sizes_b) * (1.0 - j) / (1.0 + j)
    return (j >= threshold) | ((j >= min(TEXT_FLOOR, threshold)) & (differ <= TEXT_EDIT))


def image_keys(payload: np.ndarray) -> np.ndarray:
    """(n, 9 * IMAGE_BANDS): band keys of every shift of each image (:func:`image_payload`)."""
    shifted = _image_hashes(payload)
    return np.concatenate([phash.band_keys(shifted[:, k], IMAGE_BANDS) for k in range(shifted.shape[1])], axis=1)


def vector_keys(Z: np.ndarray, seed: int, radius: float, rest: np.ndarray | None = None) -> np.ndarray:
    """Band keys of standardised vectors for Euclidean near copies (p-stable LSH, Datar et al. 2004): each
    of :data:`VECTOR_BANDS` bands hashes :data:`VECTOR_PROJECTIONS` random projections, each cut into slots
    ``VECTOR_WIDTH * radius`` wide. Two records half a radius apart share a band almost surely (0.99 over
    the bands), two at 0.9 radii about 0.85 of the time; two at a typical neighbour distance (about eight radii) rarely do, however the data clusters
    (angle hashes collide throughout a cluster far from the origin). ``rest``: a hash of each record's other
    content (text, categories), mixed in so that only records equal there meet."""
    rng = np.random.default_rng([seed, 0x5EC7])
    k = VECTOR_BANDS * VECTOR_PROJECTIONS
    width = VECTOR_WIDTH * max(float(radius), 1e-12)
    A = rng.normal(size=(Z.shape[1], k))
    offset = rng.uniform(0.0, width, size=k)
    # slots one unit wide, projected in single precision: a slot is about a radius wide, far coarser than
    # float32's rounding, and the projections are the stage's largest working arrays
    A, offset = (A / width).astype(np.float32), (offset / width).astype(np.float32)
    # a band's slots hashed as one multilinear sum with random odd multipliers (wrapping at 2**64), then mixed:
    # equal slots give equal keys, and two slot vectors that differ collide with odds of about 2**-56
    weights = rng.integers(0, 2**63, size=k, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    weights, offset = weights[:, None], offset[:, None]
    bands = np.arange(VECTOR_BANDS, dtype=np.uint64)[:, None]
    keys = np.empty((VECTOR_BANDS, len(Z)), dtype=np.uint64)
    for lo in range(0, len(Z), 65536):  # (k, rows) working copies a slice at a time, one projection a row
        with np.errstate(over="ignore", invalid="ignore"):  # a far-off value's slot is clipped, not wrapped
            slots = A.T @ Z[lo:lo + 65536].astype(np.float32).T
            slots += offset
            np.floor(slots, out=slots)
            if slots.size and not (slots.min() >= -2.0 ** 62 and slots.max() <= 2.0 ** 62):  # NaN or far off
                slots = np.nan_to_num(np.clip(slots, -2.0 ** 62, 2.0 ** 62))
        slots = slots.astype(np.int64).view(np.uint64)
        slots *= weights
        slots = slots.reshape(VECTOR_PROJECTIONS, VECTOR_BANDS, -1)
        sums = slots[0].copy()  # band b hashes projections b, b + BANDS, b + 2 BANDS, ...
        for p in range(1, VECTOR_PROJECTIONS):
            sums += slots[p]
        mixed = mix64(sums ^ (bands + np.uint64(0x9E3779B97F4A7C15))) & _MASK56
        keys[:, lo:lo + sums.shape[1]] = (bands << np.uint64(56)) | mixed
    keys = keys.T
    if rest is not None:
        keys ^= (np.asarray(rest, dtype=np.uint64) & _MASK56)[:, None]
    return keys


def pairs_from_keys(band_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(m, 2) uint64 record-key pairs sharing a band key (rows of ``band_keys`` flattened beside ``keys``).
    Within a run of one band key every record is paired with the run's first (its smallest key) and, for
    runs up to MAX_RUN, with every other."""
    valid = band_keys != minhash.NO_KEY
    band_keys, keys = band_keys[valid], keys[valid]
    if len(band_keys) < 2:
        return np.zeros((0, 2), dtype=np.uint64)
    order = np.lexsort((keys, band_keys))
    band_keys, keys = band_keys[order], keys[order]
    starts = np.flatnonzero(np.concatenate([[True], band_keys[1:] != band_keys[:-1]]))
    ends = np.append(starts[1:], len(band_keys))
    shared = ends - starts >= 2  # most keys are held by one record: only shared ones are looked at
    out = []
    for a, b in zip(starts[shared], ends[shared]):
        members = np.unique(keys[a:b])
        if len(members) < 2:
            continue
        if len(members) <= MAX_RUN:
            i, j = np.triu_indices(len(members), 1)
            out.append(np.stack([members[i], members[j]], axis=1))
        else:
            out.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.uint64)
    return np.unique(np.concatenate(out), axis=0)


def spread_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) bool: pairs of rows that differ in enough of their columns (:data:`SPREAD`) to be a copy with
    noise rather than records one fact apart."""
    d = a.shape[1]
    need = min(d, max(3, int(np.ceil(SPREAD * d))))
    differ = (np.abs(a - b) > 1e-9 * (1.0 + np.abs(a))).sum(axis=1)
    return differ >= need


def leaders(pairs: np.ndarray, rank: dict[int, int]) -> dict[int, int]:
    """Groups from confirmed pairs without chaining: records in ``rank`` order (the first read first) each
    join the earliest group head they are confirmed near to, or head a group of their own. Every member is
    near its group's head (and the head is the copy kept), so a chain of similar records never becomes one
    group. Returns record key -> its group head's key."""
    neighbours: dict[int, set[int]] = {}
    for a, b in pairs.tolist():
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    head: dict[int, int] = {}
    for k in sorted(neighbours, key=lambda k: (rank[k], k)):
        heads = [h for h in neighbours[k] if head.get(h) == h]
        head[k] = min(heads, key=lambda h: (rank[h], h)) if heads else k
    return head


def image_payload(pixels: np.ndarray, with_pixels: bool = True) -> np.ndarray:
    """(n, 72 + S*S*3) uint8: the nine shifted pHashes (their bytes) and the RGB pixels; the hashes alone
    (n, 72) without ``with_pixels`` (what band keys need)."""
    hashes = np.ascontiguousarray(phash.shifted_hashes(pixels)).view(np.uint8).reshape(len(pixels), 72)
    if not with_pixels:
        return hashes
    return np.hstack([hashes, np.asarray(pixels, dtype=np.uint8).reshape(len(pixels), -1)])


def _image_hashes(payload: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(payload[:, :72]).view(np.uint64).reshape(len(payload), 9)


def _image_parts(payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    side = int(round(np.sqrt((payload.shape[1] - 72) / 3)))
    return _image_hashes(payload), payload[:, 72:].reshape(len(payload), side, side, 3)


CHUNK = 8192
"""Candidate pairs confirmed at a time: a chunk's payloads (an image's pixels are 3 KiB) stay small."""


def confirm(kind: str, payload: np.ndarray, ia: np.ndarray, ib: np.ndarray,
            threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(confirmed, similarity) for the pairs of rows ``ia[i]``, ``ib[i]`` of ``payload``: text signatures
    (Jaccard estimate >= threshold), images (:func:`image_payload`: smallest hash distance over the shifts
    <= threshold bits, then the pixels), standardised vectors (distance <= threshold, spread over the
    columns). Pairs are taken :data:`CHUNK` at a time."""
    ok = np.zeros(len(ia), dtype=bool)
    value = np.zeros(len(ia))
    for lo in range(0, len(ia), CHUNK):
        a, b = ia[lo:lo + CHUNK], ib[lo:lo + CHUNK]
        ok[lo:lo + CHUNK], value[lo:lo + CHUNK] = _confirm_chunk(kind, payload, a, b, threshold)
    return ok, value


def _confirm_chunk(kind: str, payload: np.ndarray, ia: np.ndarray, ib: np.ndarray, threshold: float):
    if kind == TEXT:
        a, b = payload[ia], payload[ib]
        sim = np.atleast_1d(np.nan_to_num(minhash.jaccard(a[:, :NUM_PERM], b[:, :NUM_PERM]), nan=0.0))
        sized = a.shape[1] > NUM_PERM  # signatures alone: the threshold alone
        size_a, size_b = (a[:, NUM_PERM], b[:, NUM_PERM]) if sized else (np.full(len(a), np.inf),) * 2
        return text_confirmed(sim, size_a, size_b, threshold), sim
    if kind == IMAGE:
        ha, hb = _image_hashes(payload[ia]), _image_hashes(payload[ib])
        d = np.minimum(phash.hamming(ha, hb[:, 4:5]).min(axis=1), phash.hamming(ha[:, 4:5], hb).min(axis=1))
        ok = d <= threshold
        if ok.any():
            close = np.flatnonzero(ok)
            _, pa_ = _image_parts(payload[ia[close]])
            _, pb = _image_parts(payload[ib[close]])
            ok[close] = pixel_match.copies(pa_, pb)
        return ok, d.astype(np.float64)
    a, b = payload[ia], payload[ib]
    with np.errstate(over="ignore", invalid="ignore"):  # values far out of range: an infinite distance, no copy
        d = np.sqrt(((a - b) ** 2).sum(axis=1))
    return (d <= threshold) & spread_apart(a, b), d
