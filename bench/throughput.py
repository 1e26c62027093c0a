"""Throughput of ``sanitize run`` (the default configuration) against a Beam batched passthrough.

    python bench/throughput.py [--rows 1000000] [--cols 32] [--repeat 1] [--detectors a,b] [-- BEAM OPTIONS]

Writes N rows x C float32 columns (+ an int label, 10 classes, 0.5% planted
outliers) to bench/_data/, then times, each in a fresh subprocess:

* passthrough: ReadFromParquetBatched -> WriteToParquetBatched (DirectRunner), the
  floor any Beam job on this file pays;
* sanitize: the full pipeline (read twice, sample, fit, score, split, write,
  hash, accounting, report, manifest) as a user gets it: every detector the
  default config enables, unless ``--detectors`` names a subset.

Prints wall seconds, rows/s, each run's own peak memory (the run's process
tree, RSS summed over its processes and sampled every 50 ms from outside it),
the ratio sanitize / passthrough, and where the sanitize run's time went (from
its provenance: fit seconds per detector, scoring seconds per detector and
part, summed over batches and threads). The machines are shared and noisy:
trust the ratio (measured in the same run) more than the absolute seconds.
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


def gaussian_classes(rows: int, cols: int, rng):
    """(X float32, labels 0-9, planted outlier rows): 10 Gaussian classes, 0.5% of rows pushed off them."""
    import numpy as np

    labels = rng.integers(0, 10, size=rows)
    centers = rng.normal(0, 3, size=(10, cols)).astype(np.float32)
    X = centers[labels] + rng.normal(0, 1, size=(rows, cols)).astype(np.float32)
    planted = rng.choice(rows, size=rows // 200, replace=False)
    X[planted] += rng.normal(0, 8, size=(len(planted), cols)).astype(np.float32)
    return X, labels, planted


def make_data(rows: int, cols: int, path: str, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.exists(path):
        meta = pq.read_metadata(path)
        if meta.num_rows == rows and meta.num_columns == cols + 1:
            return
    X, labels, _ = gaussian_classes(rows, cols, np.random.default_rng(seed))
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
    from sanitizer.settings.config import build_config
    from sanitizer.detectors import REGISTRY
    from sanitizer.beam.job import run

    raw = {"input": path, "output": out, "label_column": "label", "overwrite": True}
    if detectors != "default":
        wanted = set(detectors.split(","))
        unknown = wanted - set(REGISTRY)
        if unknown:
            raise SystemExit(f"unknown detector(s) {sorted(unknown)}; choose from {sorted(REGISTRY)}")
        raw["detectors"] = {name: {"enabled": name in wanted} for name in REGISTRY}
    config = build_config(raw)
    prov = run(config, beam_args)
    return {"quarantined": prov["counts"]["quarantined"], "timings": prov["timings"],
            "detectors": config.enabled_detectors()}


def child(stage: str, path: str, out: str, beam_args: list[str], detectors: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    if stage == "passthrough":
        extra = stage_passthrough(path, out, beam_args)
    else:
        extra = stage_sanitize(path, out, beam_args, detectors)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "extra": extra or {}}))


def tree_rss_bytes(root: int) -> int:
    """RSS summed over ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1] is the parent pid
        rss[pid] = int(fields[21]) * page  # resident pages
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measure(stage: str, path: str, beam_args: list[str], detectors: str) -> dict:
    """Run one stage in a fresh process; its own peak memory is sampled from here while it runs."""
    out = os.path.join(DATA, f"out-{stage}")
    cmd = [sys.executable, __file__, "--child", stage, "--path", path, "--out", out, "--detectors", detectors, "--"]
    cmd += beam_args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"{stage} failed")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mib"] = peak / 2**20
    return result


def print_breakdown(timings: dict) -> None:
    """Where the sanitize run's time went, from its provenance."""
    print(f"  plan {timings.get('plan_s', 0):.2f} s, pipeline {timings.get('pipeline_s', 0):.2f} s, "
          f"publish {timings.get('finalize_s', 0):.2f} s")
    fit = timings.get("fit_s") or {}
    if fit:
        print("  fit (on the sample, detectors side by side): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(fit.items(), key=lambda kv: -kv[1])))
    scoring = timings.get("scoring_s") or {}
    if scoring:
        print(f"  scoring, summed over batches and threads ({sum(scoring.values()):.1f} s in all): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(scoring.items(), key=lambda kv: -kv[1])))


def split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the bench's own arguments, the Beam pipeline options after a ``--``)."""
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def main() -> None:
    argv, beam_args = split_beam_args(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--detectors", default="default",
                    help="comma-separated detectors to enable (default: those the default config enables)")
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
    print(f"ratio sanitize / passthrough: {best['sanitize']['wall_s'] / best['passthrough']['wall_s']:.2f}   "
          f"(detectors: {', '.join(s['detectors'])}; quarantined {s['quarantined']:,})")
    print_breakdown(s.get("timings") or {})


if __name__ == "__main__":
    main()
