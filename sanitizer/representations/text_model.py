"""A text column's vectors from the user's text encoder, an ONNX model, instead of the built-in TF-IDF.

``media.text_model`` (``--text-model PATH``, any Beam filesystem) names an ONNX file that maps a string
tensor ``(batch,)``, each record's text (cut to ``media.text_chars`` characters; a missing text reads as
``""``), to float vectors ``(batch, dim)``. Its tokenizer lives in the graph: onnxruntime's standard build
runs ``StringNormalizer``, the ``com.microsoft`` ``Tokenizer`` (separators or a regular expression) and
``TfIdfVectorizer`` on strings, so a vocabulary with its weights and projection, or any encoder exported
with those operators in front, takes the texts as they are. A TorchScript file is refused: a text encoder
must take strings, and TorchScript's string handling has no tensor form to check.

Like every user model it runs only when pinned (``media.text_model_sha256``, ``--text-model-sha256``):
the file's bytes are hashed before onnxruntime parses them (:mod:`sanitizer.representations.embeddings`).
It is tried on two texts before anything runs, and its input and output are checked with the error
naming both (:mod:`sanitizer.representations.onnx_models`). It was trained elsewhere, so it is not
cross-fitted: every record is embedded by the one model. Its vectors are used as it gives them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.errors import ConfigError
from sanitizer.representations.embeddings import _read_bytes, check_pin
from sanitizer.representations.onnx_models import OnnxModel, is_onnx

WHAT, FLAG, KEY = "text model", "--text-model-sha256", "media.text_model_sha256"
BATCH_ROWS = 1024
TRIAL = ("", "a short text to try the model on")

_MODELS: dict[tuple[str, str], OnnxModel] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: str, pinned: str | None) -> tuple[str, OnnxModel]:
    data = _read_bytes(path)
    sha = check_pin(path, data, pinned, WHAT, FLAG, KEY)
    if not is_onnx(path, data):
        raise ConfigError(f"{WHAT} {path!r} is not an ONNX model; export the text encoder to ONNX with its tokenizer "
                          "in the graph, taking a string tensor (batch,)")
    model = OnnxModel.load(data, path, WHAT)
    with _MODELS_LOCK:
        _MODELS[(path, sha)] = model
    return sha, model


def _texts(values: np.ndarray) -> np.ndarray:
    return np.array([v if isinstance(v, str) else "" for v in values], dtype=object)


@dataclass(frozen=True)
class FittedTextModel:
    """The user's ONNX text encoder, identified by path and pinned sha256 (workers load the same bytes)."""

    path: str
    sha256: str
    dim: int
    model: tuple[tuple[str, Any], ...] = ()  # format, input and output (OnnxModel.details)

    def session(self) -> OnnxModel:
        """The model, loaded once per process; its bytes are checked against the pin again."""
        with _MODELS_LOCK:
            model = _MODELS.get((self.path, self.sha256))
        return model if model is not None else _load(self.path, self.sha256)[1]

    def embed(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32: the model's vectors of ``values`` (``None`` reads as ``""``); ``keys`` unused
        (the model is not cross-fitted)."""
        values = np.asarray(values, dtype=object)
        if values.ndim != 1 or len(values) != len(keys):
            raise ValueError(f"values and keys must be 1-d and of one length, got {values.shape} and {len(keys)}")
        model = self.session()
        out = [model.run(_texts(values[a : a + BATCH_ROWS])) for a in range(0, len(values), BATCH_ROWS)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        """Provenance's record: kind onnx, path, pinned sha256, width, input and output."""
        return {"kind": "onnx", "path": self.path, "sha256": self.sha256, "dim": self.dim, "cross_fitted": False,
                **dict(self.model)}


def load_text_model(path: str, sha256: str | None) -> FittedTextModel:
    """The user's text encoder at ``path``, refused unless its bytes have the pinned ``sha256`` and it is an
    ONNX model taking a string tensor ``(batch,)`` to float ``(batch, dim)`` (tried on two texts);
    ConfigError with the fix otherwise."""
    sha, model = _load(path, sha256)
    model.check_input("string", (len(TRIAL),), "a string tensor (batch,) of texts")
    try:
        out = model.run(np.array(TRIAL, dtype=object))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{WHAT} {path!r} failed on {len(TRIAL)} texts ({first}); it must map a string tensor "
                          "(batch,) to (batch, dim) vectors") from None
    if out.ndim != 2 or out.shape[0] != len(TRIAL) or out.shape[1] == 0:
        raise ConfigError(f"{WHAT} {path!r} returned {tuple(out.shape)} for {len(TRIAL)} texts; it must return "
                          "(batch, dim) vectors")
    return FittedTextModel(path, sha, int(out.shape[1]), model.details())
