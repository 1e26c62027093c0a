"""The same job on four runners gives the same verdict for every record.

Sampling priorities and cross-fitting folds hang off hashes of record ids, so
neither bundle boundaries nor worker processes nor the portable runner's
shuffles can change which records are quarantined. The last runner is the
portable runner with an EXTERNAL worker pool: the SDK workers are separate
processes started by ``worker_pool_main`` in another working directory, as on
Flink or Spark with a worker-pool sidecar, so a run that relied on state or
paths of the launching process (publication included: it is a stage of the
graph) would fail or differ there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import column_values, load_json, read_dir, write_digits_parquet

from sanitizer.settings.config import build_config
from sanitizer.beam.job import run
from sanitizer.simulate import inject_outliers

N = 360
RUNNERS = {
    "direct-in-memory": ["--direct_running_mode=in_memory"],
    "direct-multi-processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "portable-loopback": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
    "portable-external": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                          "--environment_config=localhost:{port}"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """A Beam SDK worker pool in its own process and working directory; yields its port."""
    port = _free_port()
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    log = open(tmp_path_factory.mktemp("pool") / "worker_pool.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
        cwd=tmp_path_factory.mktemp("pool-cwd"), env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    while proc.poll() is None:  # until it listens (or dies, which the assert below reports)
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    assert proc.poll() is None, f"the worker pool exited with {proc.returncode}: see {log.name}"
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits):
    X, y = digits
    Xp, idx = inject_outliers(X[:N], 0.05, seed=4, kind="uniform")
    Xp[7, 0] = np.nan  # one invalid row as well
    ids = np.array([f"img-{i:04d}" for i in range(N)], dtype=object)
    root = tmp_path_factory.mktemp("runners")
    # Copies in the other shard: which copy is kept must not depend on the runner.
    copies = np.array([10, 10, 250])
    copy_ids = np.array([f"copy-{i}" for i in range(len(copies))], dtype=object)
    # Two shards (two splits), several row groups each, read in 64-row batches: many bundles to spread.
    write_digits_parquet(root / "in" / "part-0.parquet", np.vstack([Xp[:200], Xp[copies[2:]]]),
                         np.concatenate([y[:200], y[copies[2:]]]), np.concatenate([ids[:200], copy_ids[2:]]),
                         row_group_size=50)
    write_digits_parquet(root / "in" / "part-1.parquet", np.vstack([Xp[200:], Xp[copies[:2]]]),
                         np.concatenate([y[200:N], y[copies[:2]]]), np.concatenate([ids[200:], copy_ids[:2]]),
                         row_group_size=50)
    every = set(ids.tolist()) | set(copy_ids.tolist())
    groups = [{"img-0010", "copy-0", "copy-1"}, {"img-0250", "copy-2"}]
    return {"root": root, "ids": every, "planted": set(ids[idx].tolist()), "copy_groups": groups}


@pytest.fixture(scope="module")
def outcomes(data, request):
    """name -> result of running the job on that runner; each runner runs at most once per module."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            out = data["root"] / f"out-{name}"
            config = build_config(
                {
                    "input": str(data["root"] / "in"),
                    "output": str(out),
                    "label_column": "label",
                    "id_column": "image_id",
                    "seed": 2,
                    "sample": {"size": 300, "min_per_class": 10},
                    "scoring": {"batch_rows": 64},
                }
            )
            args = RUNNERS[name]
            if any("{port}" in a for a in args):
                port = request.getfixturevalue("worker_pool")
                args = [a.format(port=port) for a in args]
            provenance = run(config, args)
            quarantine = read_dir(out / "quarantine")
            kept = {}
            for rid, reasons in zip(quarantine.column("image_id").to_pylist(),
                                    quarantine.column("sanitizer_reasons").to_pylist()):
                for r in reasons:
                    if r["code"] == "duplicate":
                        kept[rid] = json.loads(r["evidence_json"])["kept_id"]
            cache[name] = {
                "kept": kept,
                "provenance": provenance,
                "clean": frozenset(column_values(out / "clean", "image_id")),
                "quarantine": frozenset(column_values(out / "quarantine", "image_id")),
                "manifest": load_json(out / "manifest.json"),
            }
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(RUNNERS))
def test_runner_result_is_complete_and_non_trivial(outcomes, data, name):
    outcome = outcomes(name)
    clean, quarantine = outcome["clean"], outcome["quarantine"]
    assert not clean & quarantine
    assert clean | quarantine == data["ids"]
    assert "img-0007" in quarantine
    planted = data["planted"]
    # The outlier detector catches 14 of the 18 noise images on these 360 rows (10 folds of 36 rows: small
    # data, its weak spot); feature_collision, which once caught a few as a side effect, judges collisions.
    assert len(planted & quarantine) >= 0.75 * len(planted)
    assert len(clean) > 0.9 * N
    prov = outcome["provenance"]
    assert prov["status"] == "succeeded"
    assert prov["counts"]["rows_in"] == len(data["ids"])
    assert prov["counts"]["quarantined"] == len(quarantine)
    assert outcome["manifest"]["clean"]["rows"] == len(clean)
    expected_runner = "PortableRunner" if name.startswith("portable") else "DirectRunner"
    assert prov["runner"] == expected_runner


def test_all_runners_agree(outcomes, data):
    reference = outcomes("direct-in-memory")
    for group in data["copy_groups"]:  # one copy of each group kept, the others held naming it
        held = {rid: kept for rid, kept in reference["kept"].items() if rid in group}
        assert len(held) == len(group) - 1 and len(set(held.values())) == 1
        assert set(held.values()) < group and not set(held.values()) & set(held)
    for name in RUNNERS:
        other = outcomes(name)
        assert other["clean"] == reference["clean"], f"{name}: clean ids differ"
        assert other["quarantine"] == reference["quarantine"], f"{name}: quarantine ids differ"
        assert other["provenance"]["sample"] == reference["provenance"]["sample"], f"{name}: sample differs"
        assert other["provenance"]["counts"]["by_reason"] == reference["provenance"]["counts"]["by_reason"]
        assert other["kept"] == reference["kept"], f"{name}: another copy kept"


def test_the_direct_runner_never_tries_prism(data, tmp_path):
    """`sanitize run` on the DirectRunner goes straight to the FnApiRunner: Beam's own DirectRunner would first
    try PrismRunner, downloading its binary from GitHub at run time (sanitizer/beam/local_runner.py)."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "sanitize"), "run", "--input", str(data["root"] / "in"),
         "--output", str(out), "--label-column", "label", "--id-column", "image_id", "--seed", "2", "-v",
         "--runner=DirectRunner", "--direct_running_mode=in_memory"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Prism" not in proc.stderr and "prism" not in proc.stderr  # at -v Beam logs its Prism attempt
    assert (out / "manifest.json").exists()
    assert load_json(out / "provenance.json")["runner"] == "DirectRunner"
