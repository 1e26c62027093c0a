"""Shared fixtures and helpers for the sanitizer test suite.

Data is kept small: scikit-learn's bundled digits (1,797 8x8 images) or a few
hundred synthetic rows. Anything that is expensive to build (a poisoned data
set, a finished pipeline run) is built once per module or session.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.detectors import Batch
from sanitizer.data.batch import mix64

DIGIT_FEATURES = tuple(f"px{i}" for i in range(64))


def _one_thread_per_library_call() -> None:
    """BLAS, OpenMP and faiss single-threaded in the test processes, as in the pipeline's workers
    (sanitizer/beam/threads.py): pytest-xdist already runs one process per core, and a detector fitted
    directly by a test would otherwise start a thread per core in each (digits' label_flip fit: 4.3 s with
    two BLAS threads per process on two cores, 0.6 s with one). Subprocesses a test starts are not affected."""
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    faiss.omp_set_num_threads(1)


_one_thread_per_library_call()


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def digits():
    """(X float64 (1797, 64), y int64 (1797,)) from scikit-learn's bundled digits."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


def digit_ids(n: int) -> np.ndarray:
    return np.array([f"digit-{i:05d}" for i in range(n)], dtype=object)


def detector_batch(X: np.ndarray, y: np.ndarray, ids=None, feature_names=DIGIT_FEATURES) -> Batch:
    """A detector Batch the way the pipeline builds one: labels as strings, keys hashed from the row."""
    n = len(y)
    ids = digit_ids(n) if ids is None else np.asarray(ids, dtype=object)
    keys = mix64(np.arange(n, dtype=np.uint64) + np.uint64(12345))
    labels = np.array([str(v) for v in y], dtype=object)
    return Batch(np.ascontiguousarray(X, dtype=np.float64), labels, keys, ids, tuple(feature_names))


def pixels_array(X: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(X, dtype=np.float32).ravel()), X.shape[1])


def write_digits_parquet(path, X, y, ids=None, row_group_size=None) -> Path:
    """Digits as Parquet: ``pixels`` (fixed-size list of 64 floats), ``label`` and optionally ``image_id``."""
    cols = {}
    if ids is not None:
        cols["image_id"] = pa.array(list(ids), type=pa.string())
    cols["pixels"] = pixels_array(X)
    cols["label"] = pa.array([None if v is None else int(v) for v in y], type=pa.int64())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return path


def synthetic_rows(n: int = 300, seed: int = 0):
    """A small, well-behaved 3-class data set: (rid, a, b, c, label)."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 3
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    X = centers[label] + rng.normal(size=(n, 3))
    return np.arange(n, dtype=np.int64), X, label.astype(np.int64)


# --------------------------------------------------------------------------- outputs


def read_dir(directory) -> pa.Table:
    """Concatenate every Parquet shard of an output folder (clean/ or quarantine/)."""
    files = sorted(Path(directory).glob("*.parquet"))
    assert files, f"no Parquet shards in {directory}"
    return pa.concat_tables([pq.read_table(f) for f in files])


def column_values(directory, column: str) -> list:
    return read_dir(directory).column(column).to_pylist()


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())


def provenance_for(out, run_id: str, clean: list[dict]) -> str:
    """Write a minimal succeeded ``provenance.json`` naming ``clean`` (shard dicts with absolute paths, as
    ``prov.describe_shards`` gives them) into ``out``, for a hand-built manifest; its sha256."""
    root = str(out).rstrip("/") + "/"
    shards = [{**s, "path": str(s["path"]).removeprefix(root)} for s in clean]
    path = Path(out) / "provenance.json"
    path.write_text(json.dumps({"run_id": run_id, "status": "succeeded", "outputs": {"clean": shards,
                                                                                    "quarantine": []}}))
    return sha256_file(path)


def reasons_of(quarantine: pa.Table, id_column: str) -> dict:
    """Record id -> list of reason codes, from a quarantine table."""
    ids = quarantine.column(id_column).to_pylist()
    codes = quarantine.column("sanitizer_reason_codes").to_pylist()
    return dict(zip(ids, codes))


POISONED_ON_PURPOSE = ("--max-quarantine-share", "1", "--max-class-quarantine-share", "1")
"""For a fixture that plants more poison than a real data set holds (to fill a report with suspects):
the run-level guard (at most 10% of rows, 30% of a class) would rightly stop it from publishing."""


def run_cli(*args: str) -> int:
    from sanitizer.cli import main as cli

    return cli.main([str(a) for a in args])


def write_rows(path, n: int = 240, seed: int = 0, outliers: int = 5) -> Path:
    """A small 3-class Parquet file (rid, a, b, c, label) with a few obvious outliers to quarantine."""
    rid, X, y = synthetic_rows(n, seed)
    X = X.copy()
    X[:outliers] += 60.0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"rid": rid, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y}), path)
    return path


def sanitize_quiet(inp, out, *extra) -> int:
    """`sanitize run -q` on a file written by write_rows; the exit code."""
    return run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "-q", *extra)


def sanitize_script() -> Path:
    """The installed ``sanitize`` console script of the interpreter running the tests."""
    import sys

    return Path(sys.executable).parent / ("sanitize.exe" if os.name == "nt" else "sanitize")
