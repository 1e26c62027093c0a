"""Throughput of ``sanitize run`` against a Beam batched passthrough of the same file.

    python bench/throughput.py [--rows 1000000] [--cols 32] [--repeat 1] [-- BEAM OPTIONS]

Writes N rows x C float32 columns (+ an int label, 10 classes, 0.5% planted
outliers) to bench/_data/, then times, each in a fresh subprocess:

* passthrough: ReadFromParquetBatched -> WriteToParquetBatched (DirectRunner), the
  floor any Beam job on this file pays;
* sanitize: the full pipeline (read twice, sample, fit, score, split, write,
  accounting, manifest) with the detectors named by ``--detectors`` (default:
  ``outlier``; ``outlier,label_flip`` for the default run).

Prints wall seconds, rows/s, peak RSS and the ratio sanitize / passthrough. The
machines are shared and noisy: trust the ratio (measured in the same run) more
than the absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "_data")


def make_data(rows: int, cols: int, path: str, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.exists(path):
        meta = pq.read_metadata(path)
        if meta.num_rows == rows and meta.num_columns == cols + 1:
            return
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=rows)
    centers = rng.normal(0, 3, size=(10, cols)).astype(np.float32)
    X = centers[labels] + rng.normal(0, 1, size=(rows, cols)).astype(np.float32)
    planted = rng.choice(rows, size=rows // 200, replace=False)
    X[planted] += rng.normal(0, 8, size=(len(planted), cols)).astype(np.float32)
    table = pa.table({**{f"f{j:02d}": X[:, j] for j in range(cols)}, "label": labels.astype(np.int64)})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)


def stage_passthrough(path: str, out: str, beam_args: list[str]) -> None:
    import apache_beam as beam
    import pyarrow.parquet as pq
    from apache_beam.io.parquetio import ReadFromParquetBatched, WriteToParquetBatched
    from apache_beam.options.pipeline_options import PipelineOptions

    schema = pq.read_schema(path)
    with beam.Pipeline(options=PipelineOptions(beam_args or ["--runner=DirectRunner"])) as p:
        (
            p
            | "Read" >> ReadFromParquetBatched(path)
            | "Write" >> WriteToParquetBatched(os.path.join(out, "part"), schema=schema, file_name_suffix=".parquet")
        )


def stage_sanitize(path: str, out: str, beam_args: list[str], detectors: str) -> dict:
    from sanitizer.config import build_config
    from sanitizer.detectors import REGISTRY
    from sanitizer.job import run

    wanted = set(detectors.split(","))
    config = build_config(
        {
            "input": path,
            "output": out,
            "label_column": "label",
            "overwrite": True,
            "detectors": {name: {"enabled": name in wanted} for name in REGISTRY},
        }
    )
    prov = run(config, beam_args)
    return {"quarantined": prov["counts"]["quarantined"], "timings": prov["timings"]}


def child(stage: str, path: str, out: str, beam_args: list[str], detectors: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    if stage == "passthrough":
        extra = stage_passthrough(path, out, beam_args)
    else:
        extra = stage_sanitize(path, out, beam_args, detectors)
    wall = time.perf_counter() - t0
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(json.dumps({"wall_s": wall, "peak_mib": peak_kib / 1024, "extra": extra or {}}))


def measure(stage: str, path: str, beam_args: list[str], detectors: str) -> dict:
    out = os.path.join(DATA, f"out-{stage}")
    cmd = [sys.executable, __file__, "--child", stage, "--path", path, "--out", out, "--detectors", detectors, "--"]
    cmd += beam_args
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"{stage} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    argv = sys.argv[1:]
    beam_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--detectors", default="outlier", help="comma-separated detectors to enable (default: outlier)")
    ap.add_argument("--child")
    ap.add_argument("--path")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.path, args.out, beam_args, args.detectors)
        return

    path = os.path.join(DATA, f"bench-{args.rows}x{args.cols}.parquet")
    make_data(args.rows, args.cols, path)
    size_mb = os.path.getsize(path) / 1e6
    print(f"data: {args.rows:,} rows x {args.cols} float32 columns + label ({size_mb:.0f} MB Parquet), "
          f"{os.cpu_count()} cores, detectors: {args.detectors}, "
          f"beam options: {beam_args or ['(DirectRunner default)']}")
    results = {"passthrough": [], "sanitize": []}
    for _ in range(args.repeat):
        for stage in ("passthrough", "sanitize"):
            results[stage].append(measure(stage, path, beam_args, args.detectors))
    best = {stage: min(runs, key=lambda r: r["wall_s"]) for stage, runs in results.items()}
    for stage in ("passthrough", "sanitize"):
        r = best[stage]
        print(f"{stage:<12} {r['wall_s']:7.2f} s  {args.rows / r['wall_s']:>12,.0f} rows/s  peak {r['peak_mib']:7.0f} MiB")
    s = best["sanitize"]["extra"]
    print(f"sanitize stages: {s.get('timings')}  quarantined: {s.get('quarantined'):,}")
    print(f"ratio sanitize / passthrough: {best['sanitize']['wall_s'] / best['passthrough']['wall_s']:.2f}")


if __name__ == "__main__":
    main()
