"""Embeddings for detectors that judge records in a model's feature space.

Three sources, in order of preference:

1. **The training job's own backbone**, saved as TorchScript
   (``torch.jit.save(torch.jit.script(model), "backbone.pt")``) and passed with
   ``--embedding-model PATH`` (or ``detectors.feature_collision.embedding_model``).
   This is the realistic case: feature-collision poisons are crafted against
   the feature extractor the victim trains or fine-tunes on, so that is the
   space to look in. The module must map a float32 tensor of shape
   ``(batch, n_features)`` - the record's feature vector, flattened in column
   order - to ``(batch, embedding_dim)``. It is read through Beam's
   filesystems (``gs://`` works) and loaded once per worker process. A model
   exported to ONNX (``backbone.onnx``) runs the same way, through onnxruntime
   (:mod:`sanitizer.representations.onnx_models`).

   **The model is code.** A TorchScript graph may call any operator torch
   has, file-writing ones included (``torch.from_file(path, shared=True)``
   maps a file for writing), and runs with the rights of the process that
   loads it. So a model runs only when its sha256 is pinned
   (``--embedding-model-sha256`` or
   ``detectors.feature_collision.embedding_model_sha256``): the bytes are
   hashed before ``torch.jit.load`` sees them (loading can run a scripted
   class's ``__setstate__``), and a missing or different pin is refused
   naming the file's actual sha256. Every worker checks the same pin again.
2. **A precomputed embedding column** (a fixed-size list of floats), via
   ``detectors.feature_collision.embedding_column``.
3. **A built-in default**: a small MLP (features -> 64 -> 32) trained for a
   few epochs on the bounded sample, whose 32-d hidden layer is the embedding.
   Its limits: it is trained on the data being checked (poison included), not
   on the victim's training run, so it only approximates the space an attack
   was crafted in; it sees only the tabular features; it is retrained every
   run. Use it as a fallback, not as a substitute for the real backbone.

Everything runs on the CPU, in batches, under ``torch.no_grad()``.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sanitizer.errors import ConfigError
from sanitizer.representations.onnx_models import OnnxModel, is_onnx
from sanitizer.representations.scaling import standardise, standardiser

_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()
BATCH_ROWS = 8192


def _read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as fh:
            return fh.read()
    except Exception as exc:
        raise ConfigError(f"embedding model {path!r} cannot be read ({exc}); check the path") from None


def _load_module(data: bytes, path: str, what: str = "embedding model"):
    if is_onnx(path, data):  # sanitizer.representations.onnx_models: called like a TorchScript module
        return OnnxModel.load(data, path, what)
    import torch

    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"embedding model {path!r} is not a loadable TorchScript file ({first}); "
            "save it with torch.jit.save(torch.jit.script(model), PATH)"
        ) from None
    module.eval()
    return module


SHA256_KEY = "detectors.feature_collision.embedding_model_sha256"


def check_pin(path: str, data: bytes, pinned: str | None, what: str = "embedding model",
              flag: str = "--embedding-model-sha256", key: str = SHA256_KEY) -> str:
    """The sha256 of a model's bytes, when it is the one the user pinned; ConfigError otherwise, naming
    the ``flag`` and config ``key`` that pin it.

    Called before the bytes are loaded: a model is code that runs with the user's rights, so only a file
    the user has vouched for, byte for byte, is ever executed.
    """
    sha = hashlib.sha256(data).hexdigest()
    if not pinned:
        raise ConfigError(
            f"{what} {path!r} is code that runs with your rights, and its sha256 is not pinned; "
            f"its sha256 is {sha}: once you trust this file, pass {flag} {sha} (or set {key})"
        )
    if sha != pinned.strip().lower():
        raise ConfigError(
            f"{what} {path!r} has sha256 {sha}, not the pinned {pinned}; it was not loaded. "
            f"Check the file, then pin the sha256 of the one you trust with {flag} (or {key})"
        )
    return sha


def open_pinned(path: str, pinned: str | None, trial_shape: tuple[int, ...], inputs: str,
                what: str = "embedding model", flag: str = "--embedding-model-sha256",
                key: str = SHA256_KEY) -> tuple[str, int]:
    """(sha256, output width) of the TorchScript model at ``path``: read, refused unless pinned (:func:`check_pin`),
    loaded, tried on float32 zeros of ``trial_shape`` (``inputs`` says what it must map, for the error) and
    cached for this process; ConfigError with the fix if anything fails.

    The trial runs in this process, with its rights: a pinned model is the user's trusted code (see the
    module docstring), and the fit runs it on the sample right after anyway."""
    import torch

    data = _read_bytes(path)
    sha = check_pin(path, data, pinned, what, flag, key)
    module = _load_module(data, path, what)
    if isinstance(module, OnnxModel):
        module.check_input("float32", trial_shape, inputs)
    shape = ", ".join(str(d) for d in trial_shape)
    try:
        with torch.no_grad():
            out = module(torch.zeros(trial_shape, dtype=torch.float32))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{what} {path!r} failed on a batch of shape ({shape}) ({first}); it must map {inputs} "
                          "to (batch, dim) embeddings") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != trial_shape[0] or out.shape[1] == 0:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{what} {path!r} returned {got} for {trial_shape[0]} rows; it must return a (batch, dim) "
                          "tensor")
    with _CACHE_LOCK:
        _CACHE[(path, sha)] = module
    return sha, int(out.shape[1])


def model_format(path: str, sha256: str) -> tuple[tuple[str, Any], ...]:
    """What provenance says of the model :func:`open_pinned` opened: ONNX's format, input and output
    (:meth:`OnnxModel.details`); () for TorchScript."""
    with _CACHE_LOCK:
        module = _CACHE.get((path, sha256))
    return module.details() if isinstance(module, OnnxModel) else ()


@dataclass(frozen=True)
class TorchScriptEmbedder:
    """A user's TorchScript (or ONNX) backbone, identified by path and its pinned sha256 (so workers load the same
    bytes)."""

    path: str
    sha256: str
    dim: int
    model: tuple[tuple[str, Any], ...] = ()  # an ONNX model's format, input and output (model_format)

    @staticmethod
    def open(path: str, n_features: int, sha256: str | None = None) -> "TorchScriptEmbedder":
        """Read the model, refuse it unless its sha256 is ``sha256`` (the user's pin), then load it and try it
        on a batch of zeros; raise ConfigError with the fix if anything fails.

        The trial runs in this process, with its rights: a pinned model is the user's trusted code (see
        the module docstring), and the fit runs it on the sample right after anyway."""
        sha, dim = open_pinned(path, sha256, (2, n_features), f"float32 (batch, {n_features}) feature vectors")
        return TorchScriptEmbedder(path, sha, dim, model_format(path, sha))

    def module(self):
        key = (self.path, self.sha256)
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        data = _read_bytes(self.path)
        sha = hashlib.sha256(data).hexdigest()
        if sha != self.sha256:
            raise ConfigError(
                f"embedding model {self.path!r} changed while the run was going (sha256 {sha[:12]}, "
                f"expected {self.sha256[:12]}); rerun once it is stable"
            )
        module = _load_module(data, self.path)
        with _CACHE_LOCK:
            _CACHE[key] = module
        return module

    def embed(self, X: np.ndarray) -> np.ndarray:
        return _run(self.module(), X)

    def describe(self) -> dict[str, Any]:
        """Provenance's record of the model: its path, its sha256 (the one the user pinned) and width (and an ONNX
        model's input and output)."""
        described = {"source": "torchscript", "path": self.path, "sha256": self.sha256, "dim": self.dim}
        return {**described, "source": "onnx", **dict(self.model)} if self.model else described


class _Adam:
    """Adam with L2 weight decay, as ``torch.optim.Adam`` computes it on the CPU (its single-tensor path).

    Written out because creating any ``torch.optim`` optimiser imports ``torch._dynamo``
    (about 2 s of CPU, once per worker process, on the fit's critical path)."""

    def __init__(self, params, lr: float, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8):
        import torch

        self.params, self.lr, self.weight_decay, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.steps = 0

    def step(self) -> None:
        """One update from the parameters' gradients, which it then clears."""
        import torch

        self.steps += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1 ** self.steps
        root_correction2 = (1 - beta2 ** self.steps) ** 0.5
        with torch.no_grad():
            for param, (mean, square) in zip(self.params, self.moments):
                grad = param.grad.add(param, alpha=self.weight_decay)
                mean.lerp_(grad, 1 - beta1)
                square.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
                denom = (square.sqrt() / root_correction2).add_(self.eps)
                param.addcdiv_(mean, denom, value=-self.lr / correction1)
                param.grad = None


@dataclass(frozen=True)
class BuiltinEmbedder:
    """The fallback: a small MLP trained on the sample; its hidden layer is the embedding."""

    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]  # W1, b1, W2, b2 of the two hidden layers
    epochs: int
    train_accuracy: float

    HIDDEN: ClassVar[tuple[int, int]] = (64, 32)

    @staticmethod
    def train(X: np.ndarray, y: np.ndarray, seed: int, epochs: int = 30) -> "BuiltinEmbedder":
        import torch
        from torch import nn

        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)

        mean, scale = standardiser(X)  # robust to a few huge values; never inf/NaN
        Z = torch.tensor(standardise(X, mean, scale), dtype=torch.float32)
        classes, codes = np.unique(y, return_inverse=True)
        target = torch.tensor(codes, dtype=torch.long)
        h1, h2 = BuiltinEmbedder.HIDDEN
        body = nn.Sequential(nn.Linear(X.shape[1], h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        head = nn.Linear(h2, len(classes))
        model = nn.Sequential(body, head)
        optimiser = _Adam(list(model.parameters()), lr=3e-3, weight_decay=1e-4)
        loss_fn = nn.CrossEntropyLoss()
        n = len(Z)
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for a in range(0, n, 256):
                idx = order[a : a + 256]
                loss_fn(model(Z[idx]), target[idx]).backward()
                optimiser.step()
        with torch.no_grad():
            accuracy = float((model(Z).argmax(dim=1) == target).float().mean())
        weights = tuple(p.detach().numpy().copy() for p in body.parameters())
        return BuiltinEmbedder(mean, scale, weights, epochs, accuracy)

    def embed(self, X: np.ndarray) -> np.ndarray:
        W1, b1, W2, b2 = self.weights

        Z = standardise(X, self.mean, self.scale).astype(np.float32)
        hidden = np.maximum(Z @ W1.T + b1, 0.0)
        return np.maximum(hidden @ W2.T + b2, 0.0).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "source": "builtin",
            "architecture": f"MLP features -> {self.HIDDEN[0]} -> {self.HIDDEN[1]} (ReLU), trained on the sample",
            "epochs": self.epochs,
            "train_accuracy": round(self.train_accuracy, 4),
            "dim": self.HIDDEN[1],
        }


def _run(module, X: np.ndarray) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for a in range(0, len(X), BATCH_ROWS):
            chunk = torch.from_numpy(np.ascontiguousarray(X[a : a + BATCH_ROWS], dtype=np.float32))
            out.append(module(chunk).numpy().astype(np.float64))
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)
