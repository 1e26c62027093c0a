"""Speed of ``sanitize run`` (default configuration) against cleanlab's Datalab on the same data.

    python bench/vs_cleanlab.py [--rows 100000] [--cols 32] [--flip 0.05]

Needs the benchmark extra (``pip install -e '.[bench]'``: cleanlab).

The data is bench/throughput.py's (10 Gaussian classes, 0.5% planted outliers),
with ``--flip`` of the labels changed to another class (planted label errors),
written once as Parquet. Both contenders see the same rows and are timed from
the Parquet file to their answer, each in a fresh process (imports included):

* sanitize: ``sanitize run`` as a user gets it (DirectRunner, every detector
  the default config enables: outlier, label_flip, feature_collision, backdoor),
  through the published manifest;
* cleanlab: what a cleanlab user runs to screen the same three kinds of issue -
  out-of-fold ``pred_probs`` from 5-fold logistic regression (scikit-learn's
  ``cross_val_predict``) and ``Datalab.find_issues`` with the label, outlier and
  near_duplicate issue types on the features.

Prints each one's wall seconds and rows/s, the ratio (sanitize rows/s divided by
cleanlab's, measured in the same run), and as a check that neither answer is
empty, each one's recall and false-positive rate on the planted label errors and
outliers (rows flagged by any check; a flag counts as a catch for either kind).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "_data")


def make_data(rows: int, cols: int, flip: float, path: str, seed: int = 0) -> None:
    """throughput.py's data, ``flip`` of its labels moved to another class; the planted rows are saved beside it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.exists(path) and os.path.exists(path + ".planted.json"):
        return
    from throughput import gaussian_classes  # bench/ is the script's directory

    rng = np.random.default_rng(seed)
    X, labels, outliers = gaussian_classes(rows, cols, rng)
    flipped = rng.choice(np.setdiff1d(np.arange(rows), outliers), size=int(rows * flip), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    table = pa.table({**{f"f{j:02d}": X[:, j] for j in range(cols)}, "label": noisy.astype(np.int64),
                      "rid": np.arange(rows, dtype=np.int64)})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)
    with open(path + ".planted.json", "w") as fh:
        json.dump({"outliers": sorted(map(int, outliers)), "flipped": sorted(map(int, flipped))}, fh)


def run_sanitize(path: str) -> list[int]:
    import pyarrow.parquet as pq

    from sanitizer.beam.job import run

    out = os.path.join(DATA, "out-vs-cleanlab")
    shutil.rmtree(out, ignore_errors=True)
    run({"input": path, "output": out, "label_column": "label", "id_column": "rid", "overwrite": True},
        ["--runner=DirectRunner"])
    ids = []
    for name in sorted(os.listdir(os.path.join(out, "quarantine"))):
        ids += pq.ParquetFile(os.path.join(out, "quarantine", name)).read(columns=["rid"]).column(0).to_pylist()
    return ids


def run_cleanlab(path: str) -> list[int]:
    import numpy as np
    import pyarrow.parquet as pq
    from cleanlab import Datalab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.preprocessing import StandardScaler

    table = pq.ParquetFile(path).read()
    frame = table.to_pandas()
    features = [c for c in frame.columns if c.startswith("f")]
    X = StandardScaler().fit_transform(frame[features].to_numpy(dtype=np.float64))
    y = frame["label"].to_numpy()
    pred_probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=5, method="predict_proba")
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    lab.find_issues(pred_probs=pred_probs, features=X,
                    issue_types={"label": {}, "outlier": {}, "near_duplicate": {}})
    issues = lab.get_issues()
    flagged = issues[[c for c in issues.columns if c.startswith("is_") and c.endswith("_issue")]].any(axis=1)
    return [int(r) for r in frame["rid"].to_numpy()[flagged.to_numpy()]]


def child(which: str, path: str) -> None:
    t0 = time.perf_counter()
    flagged = run_sanitize(path) if which == "sanitize" else run_cleanlab(path)
    print(json.dumps({"wall_s": time.perf_counter() - t0, "flagged": flagged}))


def measure(which: str, path: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", which, "--path", path], capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"{which} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--child")
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path)
        return
    path = os.path.join(DATA, f"vs-cleanlab-{args.rows}x{args.cols}-flip{args.flip}.parquet")
    make_data(args.rows, args.cols, args.flip, path)
    with open(path + ".planted.json") as fh:
        planted = json.load(fh)
    poisoned = set(planted["outliers"]) | set(planted["flipped"])
    print(f"data: {args.rows:,} rows x {args.cols} float32 + label; planted {len(planted['flipped']):,} label errors "
          f"({args.flip:.0%}) and {len(planted['outliers']):,} outliers; {os.cpu_count()} cores")
    results = {which: measure(which, path) for which in ("sanitize", "cleanlab")}
    for which, r in results.items():
        flagged = set(r["flagged"])
        caught = len(flagged & poisoned)
        fpr = len(flagged - poisoned) / max(args.rows - len(poisoned), 1)
        flips = len(flagged & set(planted["flipped"])) / max(len(planted["flipped"]), 1)
        outs = len(flagged & set(planted["outliers"])) / max(len(planted["outliers"]), 1)
        print(f"{which:<9} {r['wall_s']:7.1f} s  {args.rows / r['wall_s']:>9,.0f} rows/s   flagged {len(flagged):,}: "
              f"recall {caught / len(poisoned):.3f} (label errors {flips:.3f}, outliers {outs:.3f}), FPR {fpr:.4f}")
    ratio = results["cleanlab"]["wall_s"] / results["sanitize"]["wall_s"]
    print(f"sanitize is {ratio:.1f}x cleanlab Datalab's speed (rows/s, same data, same run)")


if __name__ == "__main__":
    main()
