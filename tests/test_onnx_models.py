"""The user's models as ONNX, run by onnxruntime: an image backbone, a feature_collision embedding model and a
text encoder, each exported or built here (torch.onnx.export, onnx.helper), loaded only under their sha256
pin, giving the vectors the equivalent torch or numpy computation gives, and refused with both shapes named
when they take something else. One ``sanitize run`` uses an ONNX image backbone and text encoder together."""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import load_json, run_cli
from PIL import Image

from sanitizer.errors import ConfigError
from sanitizer.representations import embeddings
from sanitizer.representations.embeddings import TorchScriptEmbedder
from sanitizer.representations.image_cnn import load_backbone
from sanitizer.representations.text_model import load_text_model

torch.set_num_threads(1)
VOCAB = ("cat", "dog", "fish", "the", "a", "sat", "mat", "ran")


def exported(module: torch.nn.Module, example: torch.Tensor, path, free_batch: bool = True) -> tuple[str, str]:
    """``module`` exported to ONNX at ``path`` (input 'x', output 'y'); (path, sha256)."""
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if free_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes=axes)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


class Backbone(torch.nn.Module):
    def __init__(self, channels: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def mlp(n_features: int) -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.ReLU(), torch.nn.Linear(16, 6))


def text_encoder(path, dim: int = 3, input_type=None) -> tuple[str, str, np.ndarray]:
    """An ONNX text encoder: lower-case, split on spaces, count the words of VOCAB, project to ``dim``;
    (path, sha256, the projection (len(VOCAB), dim))."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(2).normal(size=(len(VOCAB), dim)).astype(np.float32)
    nodes = [
        helper.make_node("StringNormalizer", ["text"], ["lower"], case_change_action="LOWER", locale="C.UTF-8"),
        helper.make_node("Tokenizer", ["lower"], ["words"], domain="com.microsoft", mark=0, pad_value="#",
                         separators=[" "], mincharnum=1),
        helper.make_node("TfIdfVectorizer", ["words"], ["counts"], mode="TF", min_gram_length=1, max_gram_length=1,
                         max_skip_count=0, ngram_counts=[0], ngram_indexes=list(range(len(VOCAB))),
                         pool_strings=list(VOCAB)),
        helper.make_node("MatMul", ["counts", "W"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "words", [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dim])],
                              [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest(), weights


def word_counts(texts: list) -> np.ndarray:
    return np.array([[(t or "").lower().split().count(w) for w in VOCAB] for t in texts], dtype=np.float32)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)


def test_an_onnx_image_backbone_runs_only_pinned_and_gives_the_torch_models_vectors(tmp_path, pixels):
    module = Backbone()
    path, sha = exported(module, torch.zeros(2, 3, 32, 32), tmp_path / "backbone.onnx")
    with pytest.raises(ConfigError, match=f"image model .* not pinned; its sha256 is {sha}: .* --image-model-sha256 {sha}"):
        load_backbone(path, None, 32)
    with pytest.raises(ConfigError, match=f"has sha256 {sha}, not the pinned 0+; it was not loaded"):
        load_backbone(path, "0" * 64, 32)
    backbone = load_backbone(path, sha, 32)
    assert backbone.describe() == {"kind": "onnx", "path": path, "sha256": sha, "dim": 8, "size": 32,
                                   "cross_fitted": False, "format": "onnx", "input": "x",
                                   "input_shape": "float32 (batch, 3, 32, 32)", "output": "y",
                                   "output_shape": "float32 (batch, 8)"}
    keys = np.arange(len(pixels), dtype=np.uint64)
    vectors = pickle.loads(pickle.dumps(backbone)).embed(pixels, keys)
    with torch.no_grad():
        expected = module(torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255)).numpy()
    assert vectors.shape == (40, 8) and vectors.dtype == np.float32 and np.allclose(vectors, expected, atol=1e-5)
    embeddings._CACHE.clear()  # a fresh process's load: the same bytes, re-checked, the same vectors
    again = backbone.embed(pixels, keys)
    assert np.array_equal(again, vectors)
    alone = np.concatenate([backbone.embed(pixels[i : i + 1], keys[i : i + 1]) for i in (0, 7, 39)])
    assert np.array_equal(alone, vectors[[0, 7, 39]])  # a row's vector does not depend on its batch


def test_an_onnx_embedding_model_is_told_by_its_bytes_and_gives_the_torch_models_vectors(tmp_path):
    module = mlp(5)
    path, sha = exported(module, torch.zeros(2, 5), tmp_path / "backbone.onnx")
    renamed = tmp_path / "backbone.bin"  # not named .onnx: its bytes say what it is
    renamed.write_bytes((tmp_path / "backbone.onnx").read_bytes())
    with pytest.raises(ConfigError, match=f"embedding model .* its sha256 is {sha}: .* --embedding-model-sha256 {sha}"):
        TorchScriptEmbedder.open(str(renamed), 5)
    embedder = TorchScriptEmbedder.open(str(renamed), 5, sha)
    assert embedder.describe() == {"source": "onnx", "path": str(renamed), "sha256": sha, "dim": 6, "format": "onnx",
                                   "input": "x", "input_shape": "float32 (batch, 5)", "output": "y",
                                   "output_shape": "float32 (batch, 6)"}
    X = np.random.default_rng(3).normal(size=(30, 5))
    vectors = pickle.loads(pickle.dumps(embedder)).embed(X)
    with torch.no_grad():
        expected = module(torch.from_numpy(X.astype(np.float32))).numpy()
    assert vectors.shape == (30, 6) and np.allclose(vectors, expected, atol=1e-5)
    embeddings._CACHE.clear()
    assert np.array_equal(embedder.embed(X), vectors)
    torchscript = tmp_path / "backbone.pt"  # the TorchScript path is unchanged beside it
    torch.jit.save(torch.jit.script(module), str(torchscript))
    ts = TorchScriptEmbedder.open(str(torchscript), 5, hashlib.sha256(torchscript.read_bytes()).hexdigest())
    assert ts.describe()["source"] == "torchscript" and np.allclose(ts.embed(X), vectors, atol=1e-5)


def test_an_onnx_model_that_takes_other_inputs_is_refused_naming_both(tmp_path):
    path, sha = exported(Backbone(channels=1), torch.zeros(2, 1, 28, 28), tmp_path / "mnist.onnx")
    with pytest.raises(ConfigError, match=r"image model '.*mnist.onnx' expects float32 \(batch, 3, 32, 32\) images in "
                                          r"\[0, 1\]; the model's input 'x' is float32 \(batch, 1, 28, 28\)$"):
        load_backbone(path, sha, 32)
    path, sha = exported(Backbone(), torch.zeros(4, 3, 32, 32), tmp_path / "fixed.onnx", free_batch=False)
    with pytest.raises(ConfigError, match=r"is float32 \(4, 3, 32, 32\), a fixed batch of 4: export it with a free "
                                          r"batch dimension"):
        load_backbone(path, sha, 32)
    path, sha = exported(mlp(4), torch.zeros(2, 4), tmp_path / "tabular.onnx")
    with pytest.raises(ConfigError, match=r"embedding model .* expects float32 \(batch, 5\) feature vectors; the "
                                          r"model's input 'x' is float32 \(batch, 4\)"):
        TorchScriptEmbedder.open(path, 5, sha)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x08 not a model at all")
    with pytest.raises(ConfigError, match="image model .*broken.onnx' is not a loadable ONNX model"):
        load_backbone(str(broken), hashlib.sha256(broken.read_bytes()).hexdigest(), 32)


def test_an_onnx_text_encoder_embeds_raw_strings_under_its_pin(tmp_path):
    path, sha, weights = text_encoder(tmp_path / "words.onnx")
    with pytest.raises(ConfigError, match=f"text model .* not pinned; its sha256 is {sha}: .* --text-model-sha256 {sha}"):
        load_text_model(path, None)
    encoder = load_text_model(path, sha)
    assert encoder.describe() == {"kind": "onnx", "path": path, "sha256": sha, "dim": 3, "cross_fitted": False,
                                  "format": "onnx", "input": "text", "input_shape": "string (batch)", "output": "y",
                                  "output_shape": "float32 (batch, 3)"}
    texts = np.array(["The cat sat", None, "a DOG ran a dog", "", "zebra", "the mat the mat"], dtype=object)
    vectors = pickle.loads(pickle.dumps(encoder)).embed(texts, np.arange(len(texts), dtype=np.uint64))
    assert vectors.dtype == np.float32 and np.allclose(vectors, word_counts(list(texts)) @ weights, atol=1e-5)
    assert not vectors[1].any() and not vectors[4].any() and vectors[0].any()  # missing, unknown words: zero
    torchscript = tmp_path / "tabular.pt"
    torch.jit.save(torch.jit.script(mlp(4)), str(torchscript))
    with pytest.raises(ConfigError, match="text model .*tabular.pt' is not an ONNX model"):
        load_text_model(str(torchscript), hashlib.sha256(torchscript.read_bytes()).hexdigest())
    path, sha = exported(mlp(4), torch.zeros(2, 4), tmp_path / "tabular.onnx")
    with pytest.raises(ConfigError, match=r"text model .* expects a string tensor \(batch,\) of texts; the model's "
                                          r"input 'x' is float32 \(batch, 4\)"):
        load_text_model(path, sha)


def test_text_model_flags_reach_the_media_section():
    from sanitizer.settings.options import add_run_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--input", "in", "--output", "out", "--label-column", "y",
                              "--text-model", "t.onnx", "--text-model-sha256", "cd"])
    media = config_from_args(args).media
    assert (media.text_model, media.text_model_sha256, media.image_model) == ("t.onnx", "cd", None)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_run_with_onnx_image_and_text_models_records_them(tmp_path):
    """160 tinted digits with a sentence each, through ``sanitize run`` with both models pinned."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    images, texts, labels = [], [], []
    for i in range(160):
        big = np.kron(digits.images[i] / 16.0, np.ones((4, 4)))
        images.append(png(np.rint(big[..., None] * rng.integers(80, 256, 3)).astype(np.uint8)))
        texts.append(" ".join(rng.choice(VOCAB, 8)))
        labels.append(str(digits.target[i]))
    pq.write_table(pa.table({"image": pa.array(images, pa.binary()), "note": texts, "label": labels}),
                   tmp_path / "digits.parquet")
    image_path, image_sha = exported(Backbone(), torch.zeros(2, 3, 32, 32), tmp_path / "backbone.onnx")
    text_path, text_sha, _ = text_encoder(tmp_path / "words.onnx")
    out = tmp_path / "out"
    assert run_cli("run", "--input", tmp_path / "digits.parquet", "--output", out, "--label-column", "label", "-q",
                   "--column-kind", "note=text", "--image-model", image_path, "--image-model-sha256", image_sha,
                   "--text-model", text_path, "--text-model-sha256", text_sha) == 0
    representations = load_json(out / "provenance.json")["sample"]["representations"]
    assert representations["image"]["kind"] == representations["image"]["format"] == "onnx"
    assert (representations["image"]["sha256"], representations["image"]["dim"]) == (image_sha, 8)
    assert (representations["note"]["kind"], representations["note"]["sha256"]) == ("onnx", text_sha)
    assert representations["note"]["input"] == "text" and representations["note"]["dim"] == 3
