"""The demo: scikit-learn's bundled digits with planted poison, sanitized on the DirectRunner.

Writes ``WORKDIR/input/digits.parquet`` (8x8 images as a 64-float list column,
a label and an image id) after planting label flips and injected outliers, with
the truth in ``WORKDIR/input/planted.json``; runs the pipeline into
``WORKDIR/out`` and prints what was caught.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sanitizer.beam.job import run
from sanitizer.cli.summary import summary_lines
from sanitizer.settings.config import build_config
from sanitizer.simulate import flip_labels, inject_outliers

OUTLIER_RATE = 0.03
FLIP_RATE = 0.05


def make_demo_data(path: str, seed: int = 0) -> dict[str, list[str]]:
    """Write the poisoned digits Parquet file; return the planted record ids per kind."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, outliers = inject_outliers(X, OUTLIER_RATE, seed=seed, kind="uniform")
    y, flips = flip_labels(y, FLIP_RATE, seed=seed + 1)
    ids = np.array([f"digit-{i:05d}" for i in range(len(y))])
    table = pa.table(
        {
            "image_id": ids,
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 64),
            "label": y.astype(np.int64),
        }
    )
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pq.write_table(table, path)
    flips = np.setdiff1d(flips, outliers)
    return {"outlier": ids[outliers].tolist(), "label_flip": ids[flips].tolist()}


def main(workdir: str = "demo", seed: int = 0, beam_args: list[str] | None = None,
         expectations: str | None = None) -> int:
    data = os.path.join(workdir, "input", "digits.parquet")
    out = os.path.join(workdir, "out")
    planted = make_demo_data(data, seed)
    with open(os.path.join(workdir, "input", "planted.json"), "w") as fh:
        json.dump(planted, fh, indent=1)
    print(
        f"demo data: {data} (scikit-learn digits, 1,797 images; planted {len(planted['outlier'])} outliers "
        f"and {len(planted['label_flip'])} label flips, seed {seed})"
    )
    config = build_config(
        {
            "input": data,
            "output": out,
            "label_column": "label",
            "id_column": "image_id",
            "seed": seed,
            "overwrite": True,
            "validation": {"expectations": expectations},
        }
    )
    provenance = run(config, beam_args or [])
    print("\n".join(summary_lines(provenance, out)))
    if provenance.get("validation"):
        checks = provenance["validation"]["checks"]
        print(f"  expectations: {sum(c['success'] for c in checks)} of {len(checks)} data-set checks passed "
              f"({expectations}; results in {out}/validation/)")

    quarantined = set()
    for shard in sorted(glob.glob(os.path.join(glob.escape(out), "quarantine", "*.parquet"))):
        # ParquetFile.read, not pq.read_table: see sanitizer.io.fs.read_parquet
        quarantined.update(pq.ParquetFile(shard).read(columns=["image_id"]).column(0).to_pylist())
    print("planted poison caught:")
    for kind, ids in planted.items():
        caught = sum(1 for i in ids if i in quarantined)
        print(f"    {kind:<12} {caught:>4} of {len(ids):<4} ({caught / max(len(ids), 1):.0%})")
    planted_all = set(planted["outlier"]) | set(planted["label_flip"])
    false_alarms = len(quarantined - planted_all)
    clean_total = provenance["counts"]["rows_in"] - len(planted_all)
    print(f"    clean rows quarantined: {false_alarms} of {clean_total} ({false_alarms / clean_total:.1%})")
    return 0
