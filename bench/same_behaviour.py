"""Do two checkouts of sanitizer behave the same? The demo and the quality benches, run with each.

    python bench/same_behaviour.py BEFORE_TREE [AFTER_TREE] [--only demo,outlier_quality,...]

BEFORE_TREE and AFTER_TREE are source trees of the project (AFTER_TREE defaults to this one), e.g. a
``git worktree add /tmp/before <commit>``. Each runs in a fresh process with its own tree first on
``PYTHONPATH``:

* ``demo``: ``sanitize demo`` (scikit-learn digits, planted outliers and flips, the bundled suite);
  compared by the quarantined rows (every column but the pixels), the sha256 of every clean and
  quarantine shard, and provenance.json with timings, run ids, paths and modification times left out;
* ``outlier_quality``, ``label_flip_quality``, ``backdoor_quality``, ``feature_collision_quality``:
  each bench's printed figures, line by line, with seconds and paths left out.

Prints "same" or the differences per part; exits 1 when any part differs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
BENCHES = ("outlier_quality", "label_flip_quality", "backdoor_quality", "feature_collision_quality")
PARTS = ("demo", *BENCHES)
VOLATILE_KEYS = re.compile(r"time|second|_s$|started|finished|duration|run_id|host|pid|uri|path|modified")
VOLATILE_TEXT = [
    (re.compile(r"\d{8}T\d{6}Z-[0-9a-f]+"), "RUN"),
    (re.compile(r"(/[\w.+-]+)+/"), "DIR/"),
    (re.compile(r"\b\d+(\.\d+)?\s*s\b|\(\d+ s\)"), "S"),
]


def run_in(tree: Path, args: list[str], log: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with open(log, "w") as fh:
        return subprocess.run([sys.executable, *args], cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode


def masked(value):
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items() if not VOLATILE_KEYS.search(k)}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        for pattern, replacement in VOLATILE_TEXT:
            value = pattern.sub(replacement, value)
    return value


def differences(a, b, where: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        out = [f"{where}/{k}: only on one side" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:60]!r} vs {str(b)[:60]!r}"]


def demo_facts(out: Path) -> dict:
    import pyarrow.parquet as pq

    quarantine = pq.read_table(sorted(glob.glob(f"{out}/quarantine/*.parquet")))
    rows = sorted(quarantine.drop_columns(["pixels"]).to_pylist(), key=lambda r: str(r.get("image_id")))
    provenance = json.loads((out / "provenance.json").read_text())
    shards = {side: [s["sha256"] for s in provenance["outputs"][side]] for side in ("clean", "quarantine")}
    return {"quarantined": rows, "shards": shards, "provenance": masked(provenance)}


def bench_lines(log: Path) -> list[str]:
    return [masked(line) for line in log.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path, nargs="?", default=HERE)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    args = ap.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    work = Path(tempfile.mkdtemp(prefix="same-behaviour-"))
    differing = 0
    for part in parts:
        facts = []
        for side, tree in (("before", args.before.resolve()), ("after", args.after.resolve())):
            log = work / f"{part}-{side}.log"
            if part == "demo":
                out = work / f"demo-{side}"
                code = run_in(tree, ["-m", "sanitizer.cli", "demo", "--workdir", str(out), "--expectations",
                                     "validations/digits_demo.json"], log)
                facts.append(demo_facts(out / "out") if code == 0 else {"exit": code})
            else:
                code = run_in(tree, [f"bench/{part}.py"], log)
                facts.append({"exit": code, "lines": bench_lines(log)})
        found = differences(*facts)
        differing += bool(found)
        print(f"{part:26s} {'same' if not found else f'{len(found)} difference(s)'}", flush=True)
        for line in found[:20]:
            print(f"    {line}")
    print(f"logs and outputs in {work}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
