"""Example training step: train only from shards named in a sanitize manifest.

    python pipelines/train_example.py --manifest OUT/manifest.json [--metrics OUT/model-metrics.json]
                                      [--manifest-sha256 HEX]
    python -m pipelines.train_example ...

Loads the clean shards through the manifest (every shard's sha256 and row count
verified, on the very bytes that are parsed, before a row is used), trains a scikit-learn LogisticRegression on a
stratified split and writes accuracy and provenance to ``--metrics`` (default:
``model-metrics.json`` beside the manifest). Exit status 0 trained, 2 the
manifest or a shard did not verify (nothing trained).

``--manifest-sha256`` pins the manifest: the sha256 of the manifest a check approved
(the Airflow DAG's quarantine circuit breaker passes it on). A manifest whose bytes
hash differently, say one a later run wrote over the checked one, is refused, so a
run cannot train on a manifest that changed after it was checked.

The loader is ``sanitizer.training.load_manifest`` when the installed sanitizer
has it; otherwise a small built-in reader that does the same checks.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: keep pipelines/ (and its airflow/ folder) off the import path
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.append(str(_here.parent))


class ManifestError(Exception):
    """The manifest or one of its shards does not verify."""


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _read_bytes(uri: str) -> bytes:
    with _fs().open(uri) as fh:
        return fh.read()


def _join(root: str, rel: str) -> str:
    return rel if "://" in rel or rel.startswith("/") else f"{root.rstrip('/')}/{rel}"


def check_manifest_bytes(manifest_uri: str, raw: bytes, expected_sha256: str | None) -> str:
    """The sha256 of the manifest's bytes; :class:`ManifestError` when it is not ``expected_sha256``."""
    actual = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256.strip().lower():
        raise ManifestError(f"manifest {manifest_uri} is not the manifest that was checked: expected sha256 "
                            f"{expected_sha256}, but its bytes' sha256 is {actual}")
    return actual


def load_clean_fallback(manifest_uri: str, manifest: dict):
    """Clean rows as a pandas DataFrame, after checking every clean shard's sha256 and row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    tables = []
    for shard in manifest["clean"]["shards"]:
        uri = _join(root, shard["path"])
        data = _read_bytes(uri)
        digest = hashlib.sha256(data).hexdigest()
        if digest != shard["sha256"]:
            raise ManifestError(f"{uri}: sha256 {digest} does not match the manifest's {shard['sha256']}")
        table = pq.ParquetFile(io.BytesIO(data)).read()  # not pq.read_table, which can abort at exit under load
        if table.num_rows != shard["rows"]:
            raise ManifestError(f"{uri}: {table.num_rows} rows, the manifest says {shard['rows']}")
        tables.append(table)
    if not tables:
        raise ManifestError(f"{manifest_uri} lists no clean shards")
    table = pa.concat_tables(tables)
    if table.num_rows != manifest["clean"]["rows"]:
        raise ManifestError(f"{table.num_rows} clean rows read, the manifest says {manifest['clean']['rows']}")
    return table.to_pandas()


def load_clean(manifest_uri: str, expected_sha256: str | None = None):
    """(DataFrame of clean rows, manifest, sha256 of the manifest's bytes, loader name).

    The manifest is read once, hashed (and checked against ``expected_sha256``) and parsed from
    those bytes, so what is trained on is what was checked.
    """
    try:
        from sanitizer.training import load_manifest
    except ImportError:
        raw = _read_bytes(manifest_uri)
        sha = check_manifest_bytes(manifest_uri, raw, expected_sha256)
        manifest = json.loads(raw)
        return load_clean_fallback(manifest_uri, manifest), manifest, sha, "builtin"
    data = load_manifest(manifest_uri, expected_sha256=expected_sha256)
    return data.to_pandas(), data.manifest, data.manifest_sha256, "sanitizer.training"


def feature_matrix(df, columns: list[str]):
    """Float matrix from scalar columns and fixed-length list columns (image pixels, embeddings)."""
    import numpy as np

    parts = []
    for col in columns:
        values = df[col].to_numpy()
        if len(values) and isinstance(values[0], (list, tuple, np.ndarray)):
            parts.append(np.stack([np.asarray(v, dtype=np.float64) for v in values]))
        else:
            parts.append(np.asarray(values, dtype=np.float64).reshape(-1, 1))
    return np.hstack(parts)


def train(manifest_uri: str, metrics_uri: str, seed: int = 0, manifest_sha256: str | None = None) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    df, manifest, sha, loader = load_clean(manifest_uri, manifest_sha256)
    label = manifest["label_column"]
    features = manifest["feature_columns"]
    X = feature_matrix(df, features)
    y = df[label].to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ManifestError(f"the clean rows hold {len(classes)} class(es); need at least 2 to train")
    stratify = y if counts.min() >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=stratify)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_train, y_train)
    metrics = {
        "model": "sklearn.linear_model.LogisticRegression",
        "manifest": manifest_uri,
        "manifest_sha256": sha,
        "manifest_sha256_checked": manifest_sha256 is not None,  # matched the hash a check approved
        "run_id": manifest.get("run_id"),
        "loader": loader,
        "label_column": label,
        "feature_columns": features,
        "n_features": int(X.shape[1]),
        "clean_rows": int(len(df)),
        "train_rows": int(len(y_train)),
        "test_rows": int(len(y_test)),
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "train_accuracy": float(model.score(X_train, y_train)),
        "test_accuracy": float(model.score(X_test, y_test)),
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    with _fs().create(metrics_uri) as fh:
        fh.write(json.dumps(metrics, indent=2, default=str).encode("utf-8"))
    return metrics


def _sha256_arg(value: str) -> str:
    """``--manifest-sha256``: 64 hexadecimal digits (an empty one is refused, never read as "no check")."""
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise argparse.ArgumentTypeError(f"{value!r} is not a sha256: pass 64 hexadecimal digits "
                                         "(sha256sum OUT/manifest.json)")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train_example", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="OUT/manifest.json of a sanitize run (local or gs://)")
    parser.add_argument("--metrics", help="where to write the metrics JSON (default: beside the manifest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--manifest-sha256", type=_sha256_arg, default=None,
                        help="sha256 of the manifest that was checked; refuse any other manifest")
    args = parser.parse_args(argv)
    metrics_uri = args.metrics or args.manifest.rsplit("/", 1)[0] + "/model-metrics.json"
    try:
        metrics = train(args.manifest, metrics_uri, args.seed, args.manifest_sha256)
    except (ManifestError, FileNotFoundError) as exc:
        print(f"train_example: error: {exc} (nothing trained)", file=sys.stderr)
        return 2
    except Exception as exc:  # sanitizer.training's own verification errors
        if type(exc).__module__.startswith("sanitizer"):
            print(f"train_example: error: {exc} (nothing trained)", file=sys.stderr)
            return 2
        raise
    print(f"trained on {metrics['train_rows']:,} clean rows ({metrics['loader']} loader): "
          f"test accuracy {metrics['test_accuracy']:.3f}; metrics: {metrics_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
