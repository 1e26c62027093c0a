"""The user's models saved as ONNX, run by onnxruntime on the CPU.

A model passed with ``--embedding-model``, ``--image-model`` or ``--text-model`` is read as ONNX when its
file name ends in ``.onnx`` or its bytes open as an ONNX model does (the protobuf's ``ir_version`` field);
otherwise as TorchScript. Export one from torch with a dynamic batch dimension::

    torch.onnx.export(model, (example,), "backbone.onnx", input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})

The pin rules are those of TorchScript (:mod:`sanitizer.representations.embeddings`): the file's bytes
are hashed before onnxruntime parses them, and a model runs only when that sha256 is the one pinned. An
ONNX graph runs onnxruntime's operators, not arbitrary code, but the parser reads untrusted bytes and the
model decides every vector the detectors judge, so it is vouched for the same way.

A model has **one input and one output**. Before it runs on any record, its declared input is checked
against what the sanitizer feeds it (element type, rank, every fixed dimension, a free batch dimension)
and a mismatch is refused naming both, e.g. ``expects float32 (batch, 3, 32, 32) images in [0, 1]; the
model's input 'x' is float32 (batch, 1, 28, 28)``. The output must be float vectors ``(batch, dim)``.
Weights stored beside the model (ONNX external data) are not read: the pin covers one file, so save the
model as one file.

Sessions run on the CPU with one thread, sequentially, with onnxruntime's deterministic kernels: the same
model and input give the same vectors, and a row's vector does not depend on the rows batched with it.
Each process loads a model once (the callers cache it by path and sha256).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sanitizer.errors import ConfigError

ELEMENT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "string": "string",
                 "int64": "int64", "int32": "int32", "uint8": "uint8", "bool": "bool"}
"""onnxruntime's element type names -> the names errors and provenance give them."""
FLOAT_OUTPUTS = ("float32", "float64", "float16")


def is_onnx(path: str, data: bytes) -> bool:
    """Whether the model file at ``path`` with these bytes is ONNX: named ``*.onnx``, or opening as an ONNX
    model's protobuf does (field 1, ``ir_version``, a small number; a TorchScript file is a zip archive)."""
    return path.lower().endswith(".onnx") or (len(data) > 1 and data[0] == 0x08 and 0 < data[1] < 0x80)


def _element(type_name: str) -> str:
    inner = type_name[len("tensor("):-1] if type_name.startswith("tensor(") else type_name
    return ELEMENT_TYPES.get(inner, inner)


def _shape(shape) -> tuple:
    """A declared shape, its free dimensions named (``batch`` where the exporter left no name)."""
    return tuple(d if isinstance(d, int) else (d or "?") for d in shape)


def shape_text(element: str, shape: tuple) -> str:
    """``float32 (batch, 3, 32, 32)``: a declared input or output for messages, a free first dimension as batch."""
    dims = [("batch" if i == 0 else str(d)) if not isinstance(d, int) else str(d) for i, d in enumerate(shape)]
    return f"{element} ({', '.join(dims)})"


class OnnxModel:
    """A loaded ONNX model, called like a torch module: a tensor of inputs in, a tensor of outputs out."""

    def __init__(self, session, path: str, what: str):
        self.session, self.path, self.what = session, path, what
        (node_in,), (node_out,) = session.get_inputs(), session.get_outputs()
        self.input, self.output = node_in.name, node_out.name
        self.input_element, self.input_shape = _element(node_in.type), _shape(node_in.shape or ())
        self.output_element, self.output_shape = _element(node_out.type), _shape(node_out.shape or ())

    @staticmethod
    def load(data: bytes, path: str, what: str = "embedding model") -> "OnnxModel":
        """The model in ``data`` (the bytes of ``path``, already pinned), in a deterministic one-thread CPU
        session; ConfigError naming ``what`` and the file when onnxruntime cannot load it or it does not have
        one input and one float output."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.use_deterministic_compute = True
        options.log_severity_level = 3  # errors only: each is raised as a ConfigError below
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{what} {path!r} is not a loadable ONNX model ({first}); export it as one file "
                              "with torch.onnx.export (or save a TorchScript file under another name)") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ConfigError(f"{what} {path!r} has inputs {[i.name for i in inputs]} and outputs "
                              f"{[o.name for o in outputs]}; it must have one input and one output")
        model = OnnxModel(session, path, what)
        if model.output_element not in FLOAT_OUTPUTS:
            raise ConfigError(f"{what} {path!r}: its output {model.output!r} is "
                              f"{shape_text(model.output_element, model.output_shape)}; it must be float32 "
                              "(batch, dim) vectors")
        return model

    def check_input(self, element: str, trial_shape: tuple[int, ...], inputs: str) -> None:
        """Refuse (ConfigError) a model whose declared input cannot take ``element`` arrays shaped like
        ``trial_shape`` (its first dimension the batch); ``inputs`` says what the sanitizer feeds it."""
        declared = shape_text(self.input_element, self.input_shape)
        said = f"{self.what} {self.path!r} expects {inputs}; the model's input {self.input!r} is {declared}"
        if self.input_element != element or len(self.input_shape) != len(trial_shape):
            raise ConfigError(said)
        if isinstance(self.input_shape[0], int):
            raise ConfigError(f"{said}, a fixed batch of {self.input_shape[0]}: export it with a free batch "
                              f"dimension (torch.onnx.export(..., dynamic_axes={{{self.input!r}: {{0: 'batch'}}}}))")
        if any(isinstance(d, int) and d != want for d, want in zip(self.input_shape[1:], trial_shape[1:])):
            raise ConfigError(said)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's output for the array ``x``."""
        return np.asarray(self.session.run([self.output], {self.input: x})[0])

    def __call__(self, x):
        """Torch tensor in, torch tensor out, as a TorchScript module is called."""
        import torch

        return torch.from_numpy(self.run(np.ascontiguousarray(x.detach().numpy())))

    def eval(self) -> "OnnxModel":
        return self

    def details(self) -> tuple[tuple[str, Any], ...]:
        """What provenance records of the model besides its path and sha256: format, input and output."""
        return (("format", "onnx"), ("input", self.input),
                ("input_shape", shape_text(self.input_element, self.input_shape)),
                ("output", self.output), ("output_shape", shape_text(self.output_element, self.output_shape)))
