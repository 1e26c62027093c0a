"""The built-in image CNN and the user's image backbone, on scikit-learn's digits upscaled to 32x32 and tinted:
each fold's model learns digits it is then judged on without having seen them, no record is embedded by a
model that trained on it, vectors are bit-identical from the same seed and independent of the batch, blank
and noise images land far from the digits, the fitted state survives pickling, and a backbone runs only
when its sha256 is pinned."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sanitizer.data.batch import mix64
from sanitizer.errors import ConfigError
from sanitizer.representations import image_cnn, media
from sanitizer.representations.image_cnn import fit_images, load_backbone, training_rows

torch.set_num_threads(1)


def coloured_digits(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels uint8 (1797, size, size, 3), labels, keys): each digit upscaled and drawn in a random bright
    colour on a random dark one."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    fg, bg = rng.uniform(0.55, 1.0, (len(X), 1, 1, 3)), rng.uniform(0.0, 0.35, (len(X), 1, 1, 3))
    grey = np.stack([np.asarray(Image.fromarray((row.reshape(8, 8) * (255 / 16)).astype(np.uint8))
                                .resize((size, size), Image.BILINEAR), dtype=np.float64) / 255 for row in X])
    pixels = np.round(255 * (bg + (fg - bg) * grey[..., None])).astype(np.uint8)
    keys = mix64(np.arange(len(X), dtype=np.uint64) + np.uint64(1000))
    return pixels, np.array([str(v) for v in y], dtype=object), keys


@pytest.fixture(scope="module")
def digits32():
    return coloured_digits(32, seed=11)


@pytest.fixture(scope="module")
def fitted(digits32):
    pixels, labels, keys = digits32
    return fit_images(pixels, labels, keys, seed=11, epochs=8)


def _nearest(a: np.ndarray, b: np.ndarray, same: bool = False) -> np.ndarray:
    d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0))
    if same:
        np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def test_each_fold_model_recognises_digits_it_never_trained_on(fitted, digits32):
    pixels, labels, keys = digits32
    info = fitted.describe()
    assert info["kind"] == "cnn" and info["dim"] == 64 and info["folds"] == 2 and info["seed"] == 11
    assert sum(info["rows_per_fold"]) == len(labels)  # each row trains the one model that does not embed it
    assert min(info["held_out_accuracy"]) >= 0.9, info
    # the held-out figure is what the cross-fitted class probabilities score on the sample
    predicted = np.array(fitted.classes)[fitted.predict_proba(pixels, keys).argmax(axis=1)]
    fold = media.fold_of(keys)
    for f in range(2):
        assert np.mean(predicted[fold == f] == labels[fold == f]) == pytest.approx(fitted.held_out_accuracy[f])


def test_no_record_is_embedded_by_a_model_that_trained_on_it(fitted, digits32):
    pixels, _, keys = digits32
    fold = media.fold_of(keys)
    embedded = fitted.embed(pixels, keys)
    assert embedded.shape == (len(keys), 64) and embedded.dtype == np.float32
    for f in range(2):
        own = np.flatnonzero(fold == f)
        assert len(own) and not set(fitted.trained_keys[f].tolist()) & set(keys[own].tolist())
        rotation = fitted.rotations[f]  # onto model 0's features
        assert np.array_equal(embedded[own], media.rotate(fitted.embed_with(f, pixels[own]), rotation))
        assert not np.array_equal(embedded[own], media.rotate(fitted.embed_with(1 - f, pixels[own]), rotation))


def test_the_folds_models_share_one_space(fitted, digits32):
    """Model 1's vectors are rotated onto model 0's: one image lies closer to itself across the folds than to
    its nearest other digit, so a detector comparing records does not see the folds."""
    pixels, _, keys = digits32
    a = fitted.embed_with(0, pixels)
    b = media.rotate(fitted.embed_with(1, pixels), fitted.rotations[1])
    raw = np.linalg.norm(a - fitted.embed_with(1, pixels), axis=1)
    across = np.linalg.norm(a - b, axis=1)
    assert np.median(across) < 0.5 * np.median(raw)


def test_a_models_rows_are_capped_by_a_salted_hash_not_taken_first(digits32):
    _, _, keys = digits32
    rows = training_rows(keys, fold=0, folds=2, max_rows=100, seed=1)
    assert len(rows) == 100 and np.all(media.fold_of(keys[rows]) == 1)
    assert rows.max() > len(keys) * 0.8  # spread over the data, not its first rows
    assert not np.array_equal(rows, training_rows(keys, fold=0, folds=2, max_rows=100, seed=2))


def test_same_inputs_and_seed_give_bit_identical_vectors():
    pixels, labels, keys = (a[:400] for a in coloured_digits(16, seed=3))
    state = torch.random.get_rng_state()
    torch.set_num_threads(2)
    try:
        first = fit_images(pixels, labels, keys, seed=4, epochs=2, max_rows=120)
        assert torch.get_num_threads() == 2  # the caller's settings are restored
    finally:
        torch.set_num_threads(1)
    assert torch.equal(torch.random.get_rng_state(), state) and not torch.are_deterministic_algorithms_enabled()
    again = fit_images(pixels, labels, keys, seed=4, epochs=2, max_rows=120)
    other = fit_images(pixels, labels, keys, seed=5, epochs=2, max_rows=120)
    assert first.describe()["rows_per_fold"] == [120, 120]
    assert first.weights_sha256 == again.weights_sha256 != other.weights_sha256
    assert np.array_equal(first.embed(pixels, keys), again.embed(pixels, keys))
    assert not np.array_equal(first.embed(pixels, keys), other.embed(pixels, keys))


def test_a_rows_vector_does_not_depend_on_its_batch(fitted, digits32):
    pixels, _, keys = digits32
    together = fitted.embed(pixels[:20], keys[:20])
    alone = np.concatenate([fitted.embed(pixels[i : i + 1], keys[i : i + 1]) for i in range(20)])
    assert np.array_equal(alone, together)
    assert fitted.embed(pixels[:0], keys[:0]).shape == (0, 64)


def test_blank_and_noise_images_land_far_from_the_digits(fitted, digits32):
    pixels, _, keys = digits32
    digits = fitted.embed(pixels, keys)
    ordinary = np.percentile(_nearest(digits, digits, same=True), 99)
    noise = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    odd = np.concatenate([np.full((1, 32, 32, 3), v, dtype=np.uint8) for v in (0, 128, 255)] + [noise])
    odd_keys = mix64(np.arange(len(odd), dtype=np.uint64) + np.uint64(77))
    distances = _nearest(fitted.embed(odd, odd_keys), digits)
    assert np.all(distances > ordinary), (distances, ordinary)


def test_pickled_state_gives_identical_vectors_in_a_fresh_process_cache(fitted, digits32):
    pixels, _, keys = digits32
    before, proba = fitted.embed(pixels[:300], keys[:300]), fitted.predict_proba(pixels[:300], keys[:300])
    copy = pickle.loads(pickle.dumps(fitted))
    image_cnn._MODULES.clear()  # as in a worker that has never built the modules
    assert np.array_equal(copy.embed(pixels[:300], keys[:300]), before)
    assert np.array_equal(copy.predict_proba(pixels[:300], keys[:300]), proba)
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 32, 32, 3), dtype=np.float32), "uint8"),
    (np.zeros((2, 32, 32), dtype=np.uint8), "uint8"),
    (np.zeros((2, 8, 8, 3), dtype=np.uint8), r"\[16, 128\], got 8"),
])
def test_pixels_of_the_wrong_shape_or_type_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        fit_images(bad, np.array(["a", "b"], dtype=object), np.arange(2, dtype=np.uint64), seed=0)


def test_embedding_images_of_another_size_or_without_a_key_each_is_refused(fitted):
    with pytest.raises(ValueError, match="must be 32x32"):
        fitted.embed(np.zeros((1, 16, 16, 3), dtype=np.uint8), np.zeros(1, dtype=np.uint64))
    with pytest.raises(ValueError, match="one row each, got 2 and 3"):
        fitted.embed(np.zeros((2, 32, 32, 3), dtype=np.uint8), np.zeros(3, dtype=np.uint64))


class _Backbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def _saved(module: torch.nn.Module, path) -> tuple[str, str]:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(module), str(path))
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_backbone_runs_only_when_its_sha256_is_pinned(tmp_path, digits32):
    path, sha = _saved(_Backbone(), tmp_path / "backbone.pt")
    with pytest.raises(ConfigError, match=f"image model .* not pinned; its sha256 is {sha}: .* --image-model-sha256 {sha}"):
        load_backbone(path, None, 32)
    with pytest.raises(ConfigError, match="not the pinned"):
        load_backbone(path, "0" * 64, 32)
    backbone = load_backbone(path, sha, 32)
    assert backbone.describe() == {"kind": "torchscript", "path": path, "sha256": sha, "dim": 8, "size": 32,
                                   "cross_fitted": False}
    pixels, _, keys = digits32
    vectors = pickle.loads(pickle.dumps(backbone)).embed(pixels[:50], keys[:50])
    module = torch.jit.load(path)
    with torch.no_grad():
        expected = module(torch.from_numpy(pixels[:50].transpose(0, 3, 1, 2).astype(np.float32) / 255)).numpy()
    assert vectors.shape == (50, 8) and np.allclose(vectors, expected, atol=1e-6)


def test_a_backbone_that_cannot_take_images_is_refused(tmp_path):
    path, sha = _saved(torch.nn.Linear(10, 4), tmp_path / "tabular.pt")
    with pytest.raises(ConfigError, match=r"failed on a batch of shape \(2, 3, 32, 32\)"):
        load_backbone(path, sha, 32)
