"""Two ``sanitize run --overwrite`` at once on one output folder, round after round: is every manifest that
survives consistent, and does the loader refuse anything else?

    python bench/concurrent_runs.py [--rounds 20] [--rows 800] [--workdir bench/_data/concurrent]

Writes two inputs that differ only in a text column ``note`` (``AAAA`` in one,
``CCCC`` in the other), then in each round starts one run on each, into the same
``OUT``, the second 0 to 30 seconds after the first (so most rounds overlap and
some may run one after the other). After both have ended it reads what is in ``OUT`` and
judges it:

* every run ended with exit 0 (published) or exit 2 with one line naming the
  lock's holder (``holds the lock ... pid N on host H``); anything else is a
  failure;
* if ``OUT`` has a manifest: the provenance it names (sha256), every clean and
  quarantine shard's ``note`` values and the input named in provenance all belong
  to one run (all ``AAAA`` and input A, or all ``CCCC`` and input C);
* ``sanitizer.training.load_manifest`` accepts exactly the consistent outputs: a
  mixed one it accepted would be a failure (and so would a consistent one it
  refused).

Prints one line per round ("overlapping" when the second run started while the first
was still running) and a final tally; exits 1 if any round failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NOTES = {"A": "AAAA", "C": "CCCC"}


def write_inputs(workdir: str, rows: int) -> dict[str, str]:
    """Two Parquet files with the same rows (3 Gaussian classes, 5 planted outliers), ``note`` AAAA / CCCC."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    label = np.arange(rows) % 3
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    X = centers[label] + rng.normal(size=(rows, 3))
    X[:5] += 60.0
    paths = {}
    for key, note in NOTES.items():
        folder = os.path.join(workdir, f"input-{key}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "data.parquet")
        pq.write_table(pa.table({"rid": np.arange(rows), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2],
                                 "note": [note] * rows, "label": label}), path)
        paths[key] = path
    return paths


def command(inp: str, out: str) -> list[str]:
    return [sys.executable, "-m", "sanitizer.cli", "run", "--input", inp, "--output", out, "--label-column", "label",
            "--overwrite", "-q"]


def notes_in(out: str, entries: list[dict]) -> set:
    import pyarrow.parquet as pq

    found = set()
    for entry in entries:
        found.update(pq.ParquetFile(os.path.join(out, entry["path"])).read(columns=["note"]).column(0).to_pylist())
    return found


def judge_output(out: str, inputs: dict[str, str]) -> tuple[str | None, str]:
    """(the run whose output ``out`` consistently is: "A" or "C", or None; why) from the files alone."""
    manifest_path = os.path.join(out, "manifest.json")
    if not os.path.exists(manifest_path):
        return None, "no manifest"
    with open(manifest_path, "rb") as fh:
        manifest = json.loads(fh.read())
    with open(os.path.join(out, "provenance.json"), "rb") as fh:
        raw = fh.read()
    if hashlib.sha256(raw).hexdigest() != manifest["provenance"]["sha256"]:
        return None, "provenance.json is not the one the manifest names"
    record = json.loads(raw)
    named = [k for k, path in inputs.items() if [i["uri"] for i in record["inputs"]] == [path]]
    if len(named) != 1:
        return None, f"provenance names inputs {[i['uri'] for i in record['inputs']]}"
    run = named[0]
    if record["run_id"] != manifest["run_id"] or record["status"] != "succeeded":
        return None, f"provenance run {record['run_id']} ({record['status']}), manifest run {manifest['run_id']}"
    for part in ("clean", "quarantine"):
        listed = sorted((s["path"], s["sha256"]) for s in manifest[part]["shards"])
        written = sorted((s["path"], s["sha256"]) for s in record["outputs"][part])
        if listed != written:
            return None, f"{part} shards of the manifest are not the ones provenance records"
        for path, sha in listed:
            with open(os.path.join(out, path), "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() != sha:
                    return None, f"{path} is not the shard the manifest names"
        notes = notes_in(out, manifest[part]["shards"])
        if notes - {NOTES[run]}:
            return None, f"{part} shards hold notes {sorted(notes)} but provenance names input {run}"
    on_disk = sorted(f"clean/{n}" for n in os.listdir(os.path.join(out, "clean")) if n.endswith(".parquet"))
    if on_disk != sorted(s["path"] for s in manifest["clean"]["shards"]):
        return None, "clean/ holds shards the manifest does not list"
    return run, f"consistent: run {run}"


def loader_accepts(out: str) -> tuple[bool, str]:
    from sanitizer.training import ManifestError, load_manifest

    try:
        data = load_manifest(out)
    except ManifestError as exc:
        return False, str(exc)[:160]
    return True, f"{data.rows} rows"


def refusal_ok(stderr: str) -> bool:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("sanitize: error:")]
    return (len(lines) == 1 and "holds the lock" in lines[0] and "(pid " in lines[0] and " on host " in lines[0]
            and "Traceback" not in stderr)


def one_round(out: str, inputs: dict[str, str], delay: float, first: str) -> tuple[bool, str]:
    second = "C" if first == "A" else "A"
    procs = {first: subprocess.Popen(command(inputs[first], out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)}
    time.sleep(delay)
    overlapped = procs[first].poll() is None  # the second starts while the first still runs
    procs[second] = subprocess.Popen(command(inputs[second], out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
    results = {k: (p.wait(), p.communicate()[1]) for k, p in procs.items()}
    problems, codes = [], []
    for key, (rc, err) in results.items():
        codes.append(f"{key}:{rc}")
        if rc == 2 and refusal_ok(err):
            continue
        if rc != 0:
            problems.append(f"run {key} exit {rc}: {err.strip().splitlines()[-1][:200] if err.strip() else ''}")
    winner, why = judge_output(out, inputs)
    accepted, said = loader_accepts(out)
    if winner is None and accepted:
        problems.append(f"the loader accepted an inconsistent output ({why})")
    if winner is not None and not accepted:
        problems.append(f"the loader refused a consistent output: {said}")
    published = [k for k, (rc, _) in results.items() if rc == 0]
    if not published and winner is None:
        problems.append("neither run published")
    if len(published) == 1 and winner is not None and winner != published[0]:
        problems.append(f"run {published[0]} published but the output is run {winner}'s")
    summary = f"{' '.join(codes)}  delay {delay:.1f}s{' (overlapping)' if overlapped else ''}  output: {why}; loader: {'accepts ' + said if accepted else 'refuses'}"
    rcs = sorted(rc for rc, _ in results.values())
    outcome = {(0, 0): "both published", (0, 2): "one exited 2"}.get(tuple(rcs), "other exits")
    return not problems, outcome, summary + ("" if not problems else "  FAILED: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--workdir", default=os.path.join(HERE, "_data", "concurrent"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    inputs = write_inputs(args.workdir, args.rows)
    out = os.path.join(args.workdir, "out")
    rng = random.Random(args.seed)
    tally = {"consistent": 0, "failed": 0, "one exited 2": 0, "both published": 0, "other exits": 0}
    for i in range(args.rounds):
        delay = rng.choice([0.0, 0.0, 0.5, 1.0, 2.0, 6.0, 30.0])
        ok, outcome, line = one_round(out, inputs, delay, rng.choice("AC"))
        tally["consistent" if ok else "failed"] += 1
        tally[outcome] += 1
        print(f"round {i + 1:2d}: {'ok  ' if ok else 'FAIL'} {line}", flush=True)
    print("tally: " + ", ".join(f"{k} {v}" for k, v in tally.items()) + f" (of {args.rounds} rounds)")
    return 0 if tally["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
