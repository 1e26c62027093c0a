"""Memory and time of the default ``sanitize run`` on a mixed table at 250k and 1M rows.

    python bench/mixed_scale.py [--rows 250000,1000000] [--repeat 1] [--seed 0]
    python bench/mixed_scale.py --numeric-before /tmp/before [--numeric-rows 250000] [--repeat 3]

Writes a generated table to bench/_data/ as Parquet: 16 float32 columns (10 Gaussian classes, 0.5%
of rows pushed off them, as ``bench/throughput.py``), 8 string columns with 5 to 500 levels whose
shares fall off like Zipf's law (share of the k-th level ~ 1/k^1.1), and an integer label. The
smaller sizes are the first rows of the largest. For each size, each in a fresh subprocess on the
DirectRunner:

* passthrough: ReadFromParquetBatched -> WriteToParquetBatched (``bench/throughput.py``'s);
* sanitize: ``sanitize run --input FILE --output DIR --label-column label``, the default configuration.

Prints each run's wall seconds (the whole subprocess, interpreter start included, for both) and its
peak memory (RSS summed over the process and its children, sampled every 50 ms from outside), the
ratio sanitize / passthrough per size, where the sanitize run's time went (from its provenance), and
the peak ratio of the largest size to the smallest.

With ``--numeric-before TREE`` (a checkout of an older commit, e.g. ``git worktree add /tmp/before
HEAD~5``) it instead times the default run on a numeric-only table (``bench/throughput.py``'s data,
``--numeric-rows`` x 32 float32 columns) with that tree's package and with this one, alternately,
``--repeat`` times each, and prints the ratio of the medians this / before. The machines are shared
and noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "_data")
NUMERIC = 16
LEVELS = (5, 10, 20, 50, 100, 200, 350, 500)
ZIPF = 1.1
CLI = "import sys; from sanitizer.cli.main import main; sys.exit(main(sys.argv[1:]))"


def make_mixed(rows: int, path: str, seed: int) -> None:
    """The mixed table (see the module docstring); kept when a file with that many rows is there."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from throughput import gaussian_classes

    if os.path.exists(path) and pq.read_metadata(path).num_rows == rows:
        return
    rng = np.random.default_rng(seed)
    X, labels, _ = gaussian_classes(rows, NUMERIC, rng)
    columns = {f"x{j:02d}": X[:, j] for j in range(NUMERIC)}
    for j, levels in enumerate(LEVELS):
        shares = 1.0 / np.arange(1, levels + 1) ** ZIPF
        codes = rng.choice(levels, size=rows, p=shares / shares.sum())
        names = pa.array([f"c{j}_level{k:03d}" for k in range(levels)])
        columns[f"c{j}"] = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), names).cast(pa.string())
    columns["label"] = labels.astype(np.int64)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=65_536)


def run_measured(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Wall seconds and peak RSS (MiB) of a subprocess and its children; its exit code."""
    from throughput import tree_rss_bytes

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.05)
    _, stderr = proc.communicate()
    wall = time.perf_counter() - started
    return {"wall_s": wall, "peak_mib": peak / 2**20, "rc": proc.returncode, "stderr": stderr}


def passthrough(path: str) -> dict:
    out = os.path.join(DATA, "out-mixed-passthrough")
    shutil.rmtree(out, ignore_errors=True)
    return run_measured([sys.executable, os.path.join(HERE, "throughput.py"), "--child", "passthrough",
                         "--path", path, "--out", out, "--"])


def sanitize(path: str, tree: str | None = None) -> dict:
    out = os.path.join(DATA, "out-mixed-sanitize")
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=tree) if tree else None
    r = run_measured([sys.executable, "-c", CLI, "run", "--input", path, "--output", out, "--label-column", "label",
                      "-q"], env=env, cwd=tree)
    prov_path = os.path.join(out, "provenance.json")
    if os.path.exists(prov_path):
        with open(prov_path) as fh:
            prov = json.load(fh)
        r["counts"], r["timings"] = prov.get("counts", {}), prov.get("timings", {})
    return r


def mixed(sizes: list[int], repeat: int, seed: int) -> None:
    from throughput import print_breakdown

    largest = max(sizes)
    full = os.path.join(DATA, f"mixed-{largest}.parquet")
    make_mixed(largest, full, seed)
    print(f"data: {NUMERIC} float32 + {len(LEVELS)} string columns ({', '.join(map(str, LEVELS))} levels, Zipf "
          f"{ZIPF}) + label; {os.cpu_count()} cores; DirectRunner; best of {repeat}")
    print(f"{'rows':>9}  {'passthrough s':>13} {'peak MiB':>8}  {'sanitize s':>10} {'peak MiB':>8}  {'ratio':>5}  "
          "rc, quarantined")
    peaks = {}
    for rows in sorted(sizes):
        path = full
        if rows != largest:
            import pyarrow.parquet as pq

            path = os.path.join(DATA, f"mixed-{largest}-first-{rows}.parquet")
            if not os.path.exists(path) or pq.read_metadata(path).num_rows != rows:
                pq.write_table(pq.read_table(full).slice(0, rows), path, row_group_size=65_536)
        runs = [(passthrough(path), sanitize(path)) for _ in range(repeat)]
        p = min((r[0] for r in runs), key=lambda r: r["wall_s"])
        s = min((r[1] for r in runs), key=lambda r: r["wall_s"])
        peaks[rows] = max(r[1]["peak_mib"] for r in runs)
        held = (s.get("counts") or {}).get("quarantined")
        print(f"{rows:>9,}  {p['wall_s']:>13.1f} {p['peak_mib']:>8.0f}  {s['wall_s']:>10.1f} {s['peak_mib']:>8.0f}  "
              f"{s['wall_s'] / p['wall_s']:>5.2f}  rc {s['rc']}, {'?' if held is None else f'{held:,}'} held",
              flush=True)
        if s["rc"] != 0:
            print("  " + "\n  ".join(s["stderr"].strip().splitlines()[-5:]))
        print_breakdown(s.get("timings") or {})
    small, big = min(peaks), max(peaks)
    if small != big:
        print(f"peak memory {big:,} / {small:,} rows: {peaks[big] / peaks[small]:.2f} (sanitize's peak, worst of "
              f"the repeats)")


def numeric_before(before: str, rows: int, repeat: int) -> None:
    from throughput import make_data

    before = os.path.abspath(before)
    if not os.path.isdir(os.path.join(before, "sanitizer")):
        raise SystemExit(f"--numeric-before {before}: no sanitizer/ package there; point it at a checkout")
    path = os.path.join(DATA, f"bench-{rows}x32.parquet")
    make_data(rows, 32, path)
    times: dict[str, list[float]] = {"before": [], "this": []}
    for i in range(repeat):
        order = (("before", before), ("this", ROOT)) if i % 2 == 0 else (("this", ROOT), ("before", before))
        for side, tree in order:
            r = sanitize(path, tree)
            if r["rc"] != 0:
                sys.stderr.write(r["stderr"][-4000:])
                raise SystemExit(f"the {side} tree's run failed (exit {r['rc']})")
            times[side].append(r["wall_s"])
            print(f"{side:<6} {r['wall_s']:7.1f} s  peak {r['peak_mib']:6.0f} MiB", flush=True)
    b, t = statistics.median(times["before"]), statistics.median(times["this"])
    print(f"numeric-only default run, {rows:,} x 32: this {t:.1f} s / before {b:.1f} s = {t / b:.2f} "
          f"(medians of {repeat})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="250000,1000000", help="comma-separated sizes")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--numeric-before", help="an older checkout: time the numeric-only default run there and here")
    ap.add_argument("--numeric-rows", type=int, default=250_000)
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    if args.numeric_before:
        numeric_before(args.numeric_before, args.numeric_rows, args.repeat)
    else:
        mixed([int(r) for r in args.rows.split(",") if r], args.repeat, args.seed)


if __name__ == "__main__":
    main()
