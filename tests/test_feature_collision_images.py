"""``feature_collision`` with a backbone that takes images: it embeds an image column's pixels.

The victim here is a tiny TorchScript CNN on 16x16 RGB images whose fixed filters answer to horizontal
edges, vertical edges and brightness, pooled over the image: three classes of striped and plain images
sit apart in its 4-d feature space. Collision poisons are crafted against it by gradient descent on the
pixels of a base image of one class until its features sit on a target image of another class; they keep
their base class's label (clean-label) and are stored as uint8 pixels, as a PNG would hold them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sha256_file
from torch import nn

from sanitizer.data.batch import IMAGE, NUMERIC, Batch, mix64
from sanitizer.detectors.feature_collision import FeatureCollisionDetector
from sanitizer.detectors.feature_collision.detector import FeatureCollisionParams, FeatureCollisionState
from sanitizer.detectors.feature_collision.inputs import as_tensor_layout
from sanitizer.errors import ConfigError

SIZE = 16
PER_CLASS = 100
CLASSES = ("horizontal", "vertical", "plain")
SEED = 0


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models, and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyBackbone(nn.Module):
    """float32 (b, 3, 16, 16) in [0, 1] -> (b, 4): mean |horizontal edge|, |vertical edge|, |laplacian|, grey."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        sobel = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 12.0
        laplace = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 12.0
        with torch.no_grad():
            for out, kernel in enumerate((sobel, sobel.T, laplace, torch.full((3, 3), 1.0 / 27))):
                self.conv.weight[out] = kernel.expand(3, 3, 3)

    def forward(self, x):
        return self.conv(x).abs().mean(dim=(2, 3)) * 4.0


class MapBackbone(nn.Module):
    """Returns a feature map (b, 4, 16, 16), not one vector per image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def save(module: nn.Module, path) -> tuple[str, str]:
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return str(path), sha256_file(path)


def stripes(label: int, rng: np.random.Generator) -> np.ndarray:
    """One (16, 16, 3) float image in [0, 1]: horizontal or vertical stripes, or a plain field, in random
    colours, period, phase and noise."""
    fg, bg = rng.uniform(0.55, 1.0, 3), rng.uniform(0.0, 0.35, 3)
    period, phase = int(rng.integers(3, 6)), int(rng.integers(0, 6))
    on = (np.arange(SIZE) + phase) % period < period / 2
    mask = {0: np.repeat(on[:, None], SIZE, 1), 1: np.repeat(on[None, :], SIZE, 0),
            2: np.zeros((SIZE, SIZE), bool)}[label]
    image = np.where(mask[..., None], fg, bg) + rng.normal(0, 0.03, (SIZE, SIZE, 3))
    return np.clip(image, 0, 1)


def collide(module: nn.Module, base: np.ndarray, target: np.ndarray, steps: int = 150) -> np.ndarray:
    """``base`` moved by gradient descent on its pixels until its features sit on ``target``'s, as uint8."""
    goal = module(torch.from_numpy(as_tensor_layout(target))).detach()
    x = torch.from_numpy(as_tensor_layout(base)).clone().requires_grad_(True)
    for _ in range(steps):  # normalised gradient steps, kept in [0, 1]
        ((module(x) - goal) ** 2).sum().backward()
        with torch.no_grad():
            grad = x.grad / (x.grad.flatten(1).norm(dim=1)[:, None, None, None] + 1e-12)
            x.sub_(0.3 * grad).clamp_(0, 1)
            x.grad = None
    return np.round(x.detach().numpy().transpose(0, 2, 3, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images():
    """(pixels uint8 (n, 16, 16, 3), labels, poison mask, target class of each poison): 300 clean images and
    6 poisons, 3 on each of two targets, each labelled with its base class."""
    rng = np.random.default_rng(SEED)
    y = np.repeat(np.arange(3), PER_CLASS)
    clean = np.stack([stripes(int(c), rng) for c in y])
    module = TinyBackbone().eval()
    poisons, labels, toward = [], [], []
    for base_class, target_class in ((0, 1), (2, 0)):
        target = (stripes(target_class, rng) * 255).astype(np.uint8)[None]  # held out: not in the data
        rows = rng.choice(np.flatnonzero(y == base_class), size=3, replace=False)
        poisons.append(collide(module, (clean[rows] * 255).astype(np.uint8), np.repeat(target, 3, 0)))
        labels += [base_class] * 3
        toward += [CLASSES[target_class]] * 3
    pixels = np.concatenate([(clean * 255).astype(np.uint8), *poisons])
    labels = np.concatenate([y, labels])
    poison = np.arange(len(labels)) >= len(y)
    return pixels, labels, poison, np.array([None] * len(y) + toward, dtype=object)


def image_batch(pixels: np.ndarray, labels: np.ndarray, columns=("photo",), other: np.ndarray | None = None) -> Batch:
    """A batch as the pipeline hands it to a detector: numeric features (here noise the backbone must not
    read) and the decoded image columns, (n, k, S, S, 3) uint8."""
    n = len(labels)
    stacks = [pixels] if other is None else [other, pixels]
    X = np.random.default_rng(1).normal(size=(n, 2))
    return Batch(features={NUMERIC: X, IMAGE: np.stack(stacks, axis=1)},
                 labels=np.array([CLASSES[int(c)] for c in labels], dtype=object),
                 keys=mix64(np.arange(n, dtype=np.uint64) + np.uint64(777)),
                 ids=np.array([f"img-{i:04d}" for i in range(n)], dtype=object), feature_names=("a", "b"),
                 columns={IMAGE: columns})


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return save(TinyBackbone(), tmp_path_factory.mktemp("backbone") / "tiny.pt")


def fit_and_score(batch: Batch, backbone, **params):
    path, sha = backbone
    det = FeatureCollisionDetector()
    state = det.fit(batch, FeatureCollisionParams(embedding_model=path, embedding_model_sha256=sha, **params), SEED)
    assert isinstance(state, FeatureCollisionState), state
    return state, det.score(batch, state)


def test_collision_poisons_on_images_are_flagged_with_evidence_naming_the_column(images, backbone):
    pixels, labels, poison, toward = images
    state, scores = fit_and_score(image_batch(pixels, labels), backbone)
    assert scores.flagged[poison].all(), np.flatnonzero(poison & ~scores.flagged)
    assert scores.flagged[~poison].sum() <= 3  # 1% of the 300 clean images
    for row in np.flatnonzero(poison):
        evidence = scores.evidence[int(row)]
        assert evidence["image_column"] == "photo"
        assert evidence["toward_label"] == toward[row]
        assert "judged in the backbone's embedding of image column photo" in FeatureCollisionDetector().describe(
            evidence)
    embedding = state.summary["embedding"]
    assert embedding["image_column"] == "photo" and embedding["input_shape"] == [3, SIZE, SIZE]
    assert embedding["source"] == "torchscript" and embedding["dim"] == 4


def test_same_images_and_seed_give_identical_scores(images, backbone):
    pixels, labels, _, _ = images
    batch = image_batch(pixels, labels)
    first, second = fit_and_score(batch, backbone)[1], fit_and_score(batch, backbone)[1]
    np.testing.assert_array_equal(first.score, second.score)
    np.testing.assert_array_equal(first.flagged, second.flagged)


def test_the_named_image_column_is_the_one_embedded(images, backbone):
    """With two image columns, the poisons only in the second: named, they are found; by default (the
    first column, holding the clean base images) they are not."""
    pixels, labels, poison, _ = images
    bases = pixels.copy()
    for row in np.flatnonzero(poison):  # the first column holds a clean image of the poison's own class
        bases[row] = pixels[np.flatnonzero(~poison & (labels == labels[row]))[row % 7]]
    batch = image_batch(pixels, labels, columns=("thumb", "photo"), other=bases)
    _, named = fit_and_score(batch, backbone, embedding_image_column="photo")
    _, first = fit_and_score(batch, backbone)
    assert named.flagged[poison].all()
    assert {named.evidence[int(r)]["image_column"] for r in np.flatnonzero(poison)} == {"photo"}
    assert not first.flagged[poison].any()


def test_a_named_column_that_is_not_an_image_column_is_refused(images, backbone):
    pixels, labels, _, _ = images
    with pytest.raises(ConfigError, match="embedding_image_column is 'label'.*image columns: \\['photo'\\]"):
        fit_and_score(image_batch(pixels, labels), backbone, embedding_image_column="label")
    path, sha = backbone
    with pytest.raises(ConfigError, match="embedding_image_column is 'label'"):
        FeatureCollisionDetector().preflight(
            FeatureCollisionParams(embedding_model=path, embedding_model_sha256=sha, embedding_image_column="label"),
            0, image_columns=("photo",), image_size=SIZE)
    with pytest.raises(ConfigError, match="set embedding_model"):
        FeatureCollisionParams(embedding_image_column="photo").validate()


def test_a_backbone_whose_output_is_not_one_vector_per_image_is_refused(images, tmp_path):
    pixels, labels, _, _ = images
    path, sha = save(MapBackbone(), tmp_path / "map.pt")
    params = FeatureCollisionParams(embedding_model=path, embedding_model_sha256=sha)
    shape = f"returned \\(2, 4, {SIZE}, {SIZE}\\) for 2 rows; it must return a \\(batch, dim\\) tensor"
    with pytest.raises(ConfigError, match=shape + f".*image column 'photo' as float32 \\(batch, 3, {SIZE}, {SIZE}\\)"):
        FeatureCollisionDetector().preflight(params, 0, image_columns=("photo",), image_size=SIZE)
    with pytest.raises(ConfigError, match=shape):
        FeatureCollisionDetector().fit(image_batch(pixels, labels), params, SEED)


def test_preflight_tries_images_or_numbers_by_what_the_input_holds(backbone, tmp_path):
    """An image backbone passes on an input with an image column, and is refused on one without; not told
    which (n_features only), it passes if it maps either."""
    path, sha = backbone
    params = FeatureCollisionParams(embedding_model=path, embedding_model_sha256=sha)
    detector = FeatureCollisionDetector()
    detector.preflight(params, 3, image_columns=("photo",), image_size=SIZE)
    with pytest.raises(ConfigError, match=r"failed on a batch of shape \(2, 3\)"):
        detector.preflight(params, 3, image_columns=(), image_size=SIZE)
    detector.preflight(params, 3)  # a fully convolutional backbone maps the default 32x32 too
    numeric_path, numeric_sha = save(nn.Sequential(nn.Linear(3, 2)), tmp_path / "mlp.pt")
    numeric = FeatureCollisionParams(embedding_model=numeric_path, embedding_model_sha256=numeric_sha)
    detector.preflight(numeric, 3)
    with pytest.raises(ConfigError, match=r"failed on a batch of shape \(2, 3, 16, 16\)"):
        detector.preflight(numeric, 3, image_columns=("photo",), image_size=SIZE)
