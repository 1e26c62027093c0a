"""Image vectors: a small CNN trained on the run's sample (cross-fitted), or the user's TorchScript backbone.

**The built-in CNN** (:func:`fit_images`) learns the sample's own labels, offline, on the CPU:

    conv 3x3 (3 -> 16), ReLU, max-pool 2 -> conv 3x3 (16 -> 32), ReLU, max-pool 2
    -> conv 3x3 (32 -> 64), ReLU, max-pool 2 -> conv 3x3 (64 -> dim), ReLU, global max pool
    -> L2 normalisation = the embedding (dim = 64); linear (dim -> classes) = the training head

each convolution followed by batch normalisation (its running statistics fixed once trained).

Pixels are scaled to [0, 1] and standardised per channel by the training rows' mean and std; training
shifts each image by up to 2 pixels (edge pixels repeated), draws from the seed, and runs Adam for a fixed
number of epochs on at most ``max_rows`` rows per model (chosen by a salted hash of the record keys, so
any part of the data is equally likely to be kept), which bounds its time: about 40 s of one core per
model trained on 10,000 32x32 images. It is **cross-fitted** (:mod:`sanitizer.representations.media`): model
``f`` trains on the sample rows of the other folds and embeds every record of fold ``f``, so no record is
embedded, or given class probabilities, by a model that saw it. Its honest quality figure is therefore
``held_out_accuracy``: each model's accuracy on the fold it did not train on.

The embedding is the max-pooled last layer (each feature's strongest response anywhere in the image),
**L2-normalised**: the two fold models learn features of different scales, and on the unit sphere their
vectors share one scale; and it is the direction, which features fire together, that sets a blank,
noisy or off-domain image apart (on digits, black, grey, white and noise images lay 1.05 to 1.9 times
the digits' 99th-percentile neighbour distance from them; unnormalised, a mid-grey image fell inside).
Average pooling learnt digits worse (the weaker fold model held out 0.92 against 0.98, 10 epochs). An image
that fires no feature at all embeds as the zero vector, distance 1 from every normalised one.

**Each fold model has its own coordinates**: one image embedded by the two models of a fit lies about
0.7 apart, twice the digits' 99th-percentile neighbour distance, so a record's nearest neighbours are
records of its own fold. Compare a record with records of its fold (:func:`media.fold_of`), or fit a
detector per fold; a statistic over all records at once (a covariance, a forest) sees the folds apart.

Fitting and embedding are deterministic: the same pixels, labels, keys and seed give bit-identical
vectors (one CPU thread and deterministic algorithms while fitting; the caller's torch settings and
global random state are restored afterwards). The fitted state is plain numpy (picklable, a Beam side
input); each worker process rebuilds the torch modules once and caches them.

Its limits: it knows only the sample's labels (poison included) and a few epochs of it, so it is a
fallback for a real backbone, not a substitute. **The user's backbone** (:func:`load_backbone`) is a
TorchScript (or ONNX) module mapping float32 ``(batch, 3, size, size)`` in [0, 1] to ``(batch, d)``; it is
code, so it runs only when its sha256 is pinned (as :mod:`sanitizer.representations.embeddings` explains).
It was trained elsewhere, so it is not cross-fitted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.data.batch import salted
from sanitizer.representations import media
from sanitizer.representations.embeddings import TorchScriptEmbedder, _Adam, model_format, open_pinned

EPOCHS = 6
"""Training epochs of each fold's model."""
MAX_ROWS = 10_000
"""At most this many sample rows train each fold's model."""
MIN_SIZE, MAX_SIZE = 16, 128
BATCH_ROWS = 1024
TRAIN_BATCH = 32
SHIFT = 2
LEARNING_RATE, WEIGHT_DECAY = 3e-3, 1e-4
WIDTHS = (16, 32, 64)
ROWS_SALT = "cnn-rows"

_MODULES: dict[str, list] = {}
_MODULES_LOCK = threading.Lock()
_CACHED = 4


def _check_pixels(pixels: np.ndarray, size: int | None = None) -> int:
    """The side of ``pixels``, an ``(n, S, S, 3)`` uint8 array; ValueError naming what was received."""
    shape = getattr(pixels, "shape", None)
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 4
            or pixels.shape[3] != 3 or pixels.shape[1] != pixels.shape[2]):
        raise ValueError(f"pixels must be a uint8 array (n, size, size, 3), got {getattr(pixels, 'dtype', '?')} {shape}")
    side = int(pixels.shape[1])
    if size is None and not MIN_SIZE <= side <= MAX_SIZE:
        raise ValueError(f"image size must be in [{MIN_SIZE}, {MAX_SIZE}], got {side}")
    if size is not None and side != size:
        raise ValueError(f"images must be {size}x{size}, as the representation was fitted on, got {side}x{side}")
    return side


def _network(dim: int, classes: int):
    import torch
    from torch import nn

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            a, b, c = WIDTHS
            self.body = nn.Sequential(
                nn.Conv2d(3, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(b, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(c, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            )
            self.head = nn.Linear(dim, classes)

        def pooled(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).amax(dim=(2, 3))

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            pooled = self.pooled(x)
            return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.pooled(x))

    return Cnn()


def _inputs(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray):
    """uint8 (n, S, S, 3) -> standardised float32 tensor (n, 3, S, S), stored channels last (the layout
    torch's CPU convolutions run fastest on: training 1.3x, embedding 1.6x)."""
    import torch

    x = pixels.astype(np.float32) / np.float32(255.0)
    x = (x - mean.astype(np.float32)) / std.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)


def _shifted(x, generator):
    """Each image moved by up to SHIFT pixels in each direction, the edge pixels repeated."""
    import torch
    from torch.nn import functional as F

    side = x.shape[2]
    padded = F.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT), mode="replicate")
    offsets = torch.randint(0, 2 * SHIFT + 1, (len(x), 2), generator=generator)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    for code in torch.unique(offsets[:, 0] * (2 * SHIFT + 1) + offsets[:, 1]).tolist():
        dy, dx = divmod(code, 2 * SHIFT + 1)
        rows = torch.nonzero((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).flatten()
        out[rows] = padded[rows, :, dy : dy + side, dx : dx + side]
    return out


def _batched(module_fn, x) -> np.ndarray:
    """``module_fn`` over ``x`` in chunks of BATCH_ROWS. A lone row runs beside a copy of itself: torch's CPU
    convolution takes another path for a batch of one, and a row's vector must not depend on its batch."""
    import torch

    out = []
    with torch.no_grad():
        for a in range(0, max(len(x), 1), BATCH_ROWS):
            chunk = x[a : a + BATCH_ROWS]
            out.append(module_fn(torch.cat([chunk, chunk]) if len(chunk) == 1 else chunk)[: len(chunk)].numpy())
    return np.concatenate(out)


def _predicted(model, pixels: np.ndarray, rows: np.ndarray, mean, std) -> np.ndarray:
    """The classes ``model`` gives ``pixels[rows]``, a few batches at a time, so a large fold never turns to
    float32 all at once."""
    step = 4 * BATCH_ROWS
    return np.concatenate([_batched(model, _inputs(pixels[rows[a : a + step]], mean, std)).argmax(axis=1)
                           for a in range(0, len(rows), step)])


def training_rows(keys: np.ndarray, fold: int, folds: int, max_rows: int, seed: int,
                  labelled: np.ndarray | None = None) -> np.ndarray:
    """Indices of the rows that train fold ``fold``'s model: labelled rows of the other folds, at most
    ``max_rows`` of them (those with the smallest salted hash of their key), in their original order."""
    keys = np.asarray(keys, dtype=np.uint64)
    rows = np.flatnonzero(media.fold_of(keys, folds) != fold)
    if labelled is not None:
        rows = rows[labelled[rows]]
    if len(rows) > max_rows:
        rank = salted(keys[rows], f"{ROWS_SALT}-{seed}-{fold}")
        rows = np.sort(rows[np.argsort(rank, kind="stable")[:max_rows]])
    return rows


def _train(pixels, codes, n_classes, dim, seed, epochs):
    """One fold's model: (channel mean, channel std, weights, training accuracy, module)."""
    import torch
    from torch import nn

    scaled = pixels.reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = scaled.mean(axis=0), np.maximum(scaled.std(axis=0), 1e-3)
    x = _inputs(pixels, mean, std)
    target = torch.from_numpy(codes.astype(np.int64))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = _network(dim, n_classes).to(memory_format=torch.channels_last)
    optimiser = _Adam(list(model.parameters()), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for a in range(0, len(x), TRAIN_BATCH):
            idx = order[a : a + TRAIN_BATCH]
            loss_fn(model(_shifted(x[idx], generator)), target[idx]).backward()
            optimiser.step()
    model.eval()
    accuracy = float(np.mean(_batched(model, x).argmax(axis=1) == codes))
    weights = tuple((name, value.detach().numpy().copy()) for name, value in model.state_dict().items())
    return mean.astype(np.float32), std.astype(np.float32), weights, accuracy, model


def fit_images(pixels: np.ndarray, labels: np.ndarray, keys: np.ndarray, seed: int, dim: int = 64,
               folds: int = media.FOLDS, epochs: int = EPOCHS, max_rows: int = MAX_ROWS) -> "FittedCnn":
    """The built-in CNN, cross-fitted on the sample: ``pixels`` uint8 ``(n, S, S, 3)`` (S in [16, 128]),
    ``labels`` their classes (rows labelled ``None`` train nothing but are embedded), ``keys`` their
    record keys (uint64), ``seed`` every random choice."""
    import torch

    side = _check_pixels(pixels)
    labels, keys = np.asarray(labels, dtype=object), np.asarray(keys, dtype=np.uint64)
    if not len(labels) == len(keys) == len(pixels):
        raise ValueError(f"pixels, labels and keys must have one row each, got {len(pixels)}, {len(labels)}, {len(keys)}")
    for name, value, low in (("dim", dim, 1), ("folds", folds, 2), ("epochs", epochs, 1), ("max_rows", max_rows, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    labelled = np.array([v is not None for v in labels], dtype=bool)
    classes, codes = np.unique(labels[labelled].astype(str), return_inverse=True)
    all_codes = np.full(len(labels), -1, dtype=np.int64)
    all_codes[labelled] = codes
    fold = media.fold_of(keys, folds)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    models: list[tuple] = []
    trained: list[np.ndarray] = []
    held_out: list[float] = []
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=[]):
            for f in range(folds):
                rows = training_rows(keys, f, folds, max_rows, seed, labelled)
                if len(rows) == 0:
                    raise ValueError(f"fold {f}'s model has no labelled rows to train on; give a larger sample")
                *state, model = _train(pixels[rows], all_codes[rows], len(classes), dim, seed + f, epochs)
                models.append(tuple(state))
                trained.append(keys[rows])
                test = np.flatnonzero((fold == f) & labelled)
                mean, std = state[0], state[1]
                predicted = _predicted(model, pixels, test, mean, std) if len(test) else []
                held_out.append(float(np.mean(predicted == all_codes[test])) if len(test) else float("nan"))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    digest = hashlib.sha256(np.int64([side, dim, len(classes)]).tobytes())
    for mean, std, weights, _ in models:
        for array in (mean, std, *(value for _, value in weights)):
            digest.update(np.ascontiguousarray(array).tobytes())
    fitted = FittedCnn(
        dim=dim, size=side, classes=tuple(str(c) for c in classes), seed=seed, epochs=epochs,
        means=tuple(m[0] for m in models), stds=tuple(m[1] for m in models),
        weights=tuple(m[2] for m in models), train_accuracy=tuple(m[3] for m in models),
        held_out_accuracy=tuple(held_out), trained_keys=tuple(trained), weights_sha256=digest.hexdigest(),
    )
    anchor = pixels[media.anchors(keys)]
    try:  # building the modules draws torch's initial weights: never from the caller's generator
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            rotations = media.fold_rotations(fitted.embed_with, folds, anchor)
    finally:
        torch.set_num_threads(threads)
    return dataclasses.replace(fitted, rotations=rotations)


@dataclass(frozen=True, eq=False)
class FittedCnn:
    """The fitted built-in CNN: one model per fold, as numpy arrays (see the module docstring)."""

    dim: int
    size: int
    classes: tuple[str, ...]
    seed: int
    epochs: int
    means: tuple[np.ndarray, ...]  # per fold: channel mean of its training rows, in [0, 1] units
    stds: tuple[np.ndarray, ...]
    weights: tuple[tuple[np.ndarray, ...], ...]  # per fold: the network's parameters, in order
    train_accuracy: tuple[float, ...]
    held_out_accuracy: tuple[float, ...]  # per fold: its model's accuracy on this fold (never trained on)
    trained_keys: tuple[np.ndarray, ...]  # per fold: the keys of the rows its model trained on
    weights_sha256: str
    rotations: tuple[np.ndarray, ...] = ()  # per fold: onto model 0's features (media.fold_rotations)

    @property
    def folds(self) -> int:
        return len(self.weights)

    def modules(self) -> list:
        """The fold models as torch modules, built once per process."""
        with _MODULES_LOCK:
            if self.weights_sha256 in _MODULES:
                return _MODULES[self.weights_sha256]
        import torch

        built = []
        for weights in self.weights:
            module = _network(self.dim, len(self.classes))
            module.load_state_dict({name: torch.from_numpy(value) for name, value in weights})
            built.append(module.to(memory_format=torch.channels_last).eval())
        with _MODULES_LOCK:
            while len(_MODULES) >= _CACHED:
                _MODULES.pop(next(iter(_MODULES)))
            _MODULES[self.weights_sha256] = built
        return built

    def _by_fold(self, pixels: np.ndarray, keys: np.ndarray, width: int, output) -> np.ndarray:
        _check_pixels(pixels, self.size)
        if len(keys) != len(pixels):
            raise ValueError(f"pixels and keys must have one row each, got {len(pixels)} and {len(keys)}")
        indexed = list(enumerate(self.modules()))

        def one(item, values):
            f, module = item
            return _batched(lambda x: output(module, x), _inputs(values, self.means[f], self.stds[f]))

        return media.embed_by_fold(indexed, np.asarray(keys, dtype=np.uint64), pixels, width, one)

    def embed(self, pixels: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32: each image's pooled features from the model that did not train on its fold."""
        out = self._by_fold(pixels, keys, self.dim, lambda module, x: module.embed(x))
        if self.rotations:
            fold = media.fold_of(np.asarray(keys, dtype=np.uint64), self.folds)
            for f, rotation in enumerate(self.rotations):
                rows = fold == f
                out[rows] = media.rotate(out[rows], rotation)
        return out

    def embed_with(self, fold: int, pixels: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32 from fold ``fold``'s model, whatever the rows' own folds (for inspection)."""
        _check_pixels(pixels, self.size)
        module = self.modules()[fold]
        return _batched(module.embed, _inputs(pixels, self.means[fold], self.stds[fold])).astype(np.float32)

    def predict_proba(self, pixels: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, len(classes))`` float32 class probabilities, cross-fitted like :meth:`embed`."""
        import torch

        return self._by_fold(pixels, keys, len(self.classes), lambda module, x: torch.softmax(module(x), dim=1))

    def describe(self) -> dict[str, Any]:
        """Provenance's record: kind, width, folds, seed, epochs, rows and accuracies of each fold's model."""
        a, b, c = WIDTHS
        return {
            "kind": "cnn", "dim": self.dim, "folds": self.folds, "seed": self.seed, "epochs": self.epochs,
            "size": self.size, "classes": len(self.classes),
            "architecture": f"conv3x3+BN+ReLU 3->{a}, pool, ->{b}, pool, ->{c}, pool, ->{self.dim}, "
                            "global max pool, L2-normalised",
            "rows_per_fold": [len(k) for k in self.trained_keys],
            "train_accuracy": [round(v, 4) for v in self.train_accuracy],
            "held_out_accuracy": [round(v, 4) for v in self.held_out_accuracy],
            "weights_sha256": self.weights_sha256,
        }


@dataclass(frozen=True)
class FittedBackbone:
    """The user's TorchScript (or ONNX) image backbone, identified by path and pinned sha256; not cross-fitted."""

    path: str
    sha256: str
    dim: int
    size: int
    model: tuple[tuple[str, Any], ...] = ()  # an ONNX model's format, input and output (embeddings.model_format)

    def embed(self, pixels: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32 from the backbone, the images given as float32 in [0, 1], channels first."""
        import torch

        _check_pixels(pixels, self.size)
        module = TorchScriptEmbedder(self.path, self.sha256, self.dim).module()
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0)
        return _batched(module, x).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"kind": "onnx" if self.model else "torchscript", "path": self.path, "sha256": self.sha256,
                "dim": self.dim, "size": self.size, "cross_fitted": False, **dict(self.model)}


def load_backbone(path: str, sha256: str | None, size: int) -> FittedBackbone:
    """The user's backbone at ``path`` (any Beam filesystem), refused unless its bytes have the pinned
    ``sha256``, then tried on a batch of zeros ``(2, 3, size, size)``; ConfigError with the fix otherwise."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    sha, dim = open_pinned(path, sha256, (2, 3, size, size), f"float32 (batch, 3, {size}, {size}) images in [0, 1]",
                           what="image model", flag="--image-model-sha256", key="media.image_model_sha256")
    return FittedBackbone(path, sha, dim, size, model_format(path, sha))
