"""Fit and scoring cost of single detectors per million rows, optionally against another source tree.

    python bench/detector_cost.py [--detectors label_flip,backdoor] [--rows 1000000] [--cols 32]
                                  [--sample 100000] [--flip-rate 0.05] [--repeat 3]
                                  [--compare-with /path/to/older/checkout]

The data are like ``bench/throughput.py``'s (10 Gaussian classes, float32), with
``--flip-rate`` of the labels moved to another class so that label_flip has
work to do. Each measurement runs in a fresh subprocess: the detector is fitted
on the first ``--sample`` rows (the default ``sample.size``; each detector
bounds what it uses itself, e.g. label_flip's ``fit_rows``) with its default
parameters, then scores all ``--rows`` rows in batches of 65,536
(``scoring.batch_rows``) in one process - the work one Beam worker does, with
no Beam around it. The libraries the detectors use (scikit-learn, faiss) are
imported before the clock starts, as a worker imports them once.

With ``--compare-with DIR`` (a checkout of another commit, e.g. made with
``git worktree add /tmp/old COMMIT``), every repeat measures that tree and this
one back to back, alternating which goes first, and prints the ratio this/that
per detector on the medians. A detector the other tree does not have is
reported as missing there. The machines are shared and noisy: read the ratio,
not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH_ROWS = 65_536


def child(detector: str, rows: int, cols: int, sample: int, flip_rate: float) -> dict:
    import time

    import numpy as np

    from sanitizer.detectors import REGISTRY, Batch

    if detector not in REGISTRY:
        return {"missing": True}
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=rows)
    centers = rng.normal(0, 3, size=(10, cols)).astype(np.float32)
    X = centers[labels] + rng.normal(0, 1, size=(rows, cols)).astype(np.float32)
    flips = rng.random(rows) < flip_rate
    labels = np.where(flips, (labels + rng.integers(1, 10, size=rows)) % 10, labels)
    names = tuple(f"f{j:02d}" for j in range(cols))
    keys = (np.arange(rows, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(0x5DEECE66D)
    ids = np.array([f"r{i}" for i in range(rows)], dtype=object)
    y = np.array([str(v) for v in labels], dtype=object)

    def batch(a: int, b: int) -> Batch:
        return Batch(X[a:b].astype(np.float64), y[a:b], keys[a:b], ids[a:b], names)

    # Import what the detectors use before the clock starts: a worker imports them once for every detector
    # and every bundle, so an import inside the first fit is not part of the detector's cost.
    import faiss  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.neighbors  # noqa: F401

    cls = REGISTRY[detector]
    det = cls()
    started = time.perf_counter()
    state = det.fit(batch(0, min(sample, rows)), cls.Params(), 0)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    flagged = 0
    for a in range(0, rows, BATCH_ROWS):
        scores = det.score(batch(a, min(a + BATCH_ROWS, rows)), state)
        flagged += int(scores.flagged.sum())
    score_s = time.perf_counter() - started
    return {"fit_s": fit_s, "score_s": score_s, "flagged": flagged, "skipped": type(state).__name__ == "Skipped"}


def measure(tree: str, detector: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", detector, "--rows", str(args.rows),
           "--cols", str(args.cols), "--sample", str(args.sample), "--flip-rate", str(args.flip_rate)]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{detector} in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectors", default="label_flip,backdoor")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--sample", type=int, default=100_000)
    ap.add_argument("--flip-rate", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare-with", help="another source tree (a checkout) to measure alternately")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.cols, args.sample, args.flip_rate)))
        return
    trees = {"this": ROOT}
    if args.compare_with:
        other = os.path.abspath(args.compare_with)
        if not os.path.isdir(os.path.join(other, "sanitizer")):
            raise SystemExit(f"--compare-with {other}: no sanitizer/ package there; point it at a checkout")
        trees["other"] = other
    per_million = 1_000_000 / args.rows
    print(f"{args.rows:,} rows x {args.cols} float32, 10 classes, {args.flip_rate:.0%} labels flipped; "
          f"fit on {min(args.sample, args.rows):,} rows; {args.repeat} repeat(s); seconds per 1M rows scored")
    if args.compare_with:
        print(f"this = {ROOT}, other = {trees['other']}")
    for detector in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for r in range(args.repeat):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in order:
                results[name].append(measure(trees[name], detector, args))
        line = f"{detector:<18}"
        totals = {}
        for name, runs in results.items():
            if runs[0].get("missing"):
                line += f"  {name}: not in that tree"
                continue
            fit = statistics.median(x["fit_s"] for x in runs)
            score = statistics.median(x["score_s"] for x in runs) * per_million
            totals[name] = fit + score
            line += (f"  {name}: fit {fit:6.1f} s  score {score:6.1f} s/1M  total {fit + score:6.1f} s"
                     f"  (flagged {runs[0]['flagged']:,}{', skipped' if runs[0]['skipped'] else ''})")
        if len(totals) == 2:
            line += f"  ratio this/other {totals['this'] / totals['other']:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
