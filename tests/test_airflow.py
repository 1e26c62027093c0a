"""The Airflow DAGs (pipelines/airflow/sanitize_dag.py and train_dag.py), run by real Airflow.

Airflow lives in its own virtual environment, ``.venv-airflow`` at the repository
root (``SANITIZER_AIRFLOW_VENV`` to put it elsewhere): Airflow 3.3.2 with the
Apache Beam provider and the Google provider (the Beam operator imports it even
for the DirectRunner), made by ``tests/airflow_env.py`` from
``requirements/airflow-lock.txt``. The first session builds it (seconds of uv);
later ones reuse it while it matches the lock and imports the Beam operator. If it
cannot be built, the tests fail and say why.

Each module run gets a fresh AIRFLOW_HOME with a SQLite metadata database, parses
the DAG folder (no import errors allowed; the manifest Asset is produced by the
circuit breaker and scheduled on by the training DAG), then runs the DAGs with
``airflow dags test``, the sanitizer's interpreter being the one running these
tests:

- clean-ish digits, guard bound 0.5 from an Airflow Variable set after the DAGs
  were parsed: every task succeeds, the run writes its own folder under the output
  root, and the circuit breaker's asset event (in the metadata database) names that
  folder's manifest and sha256 and queues the training DAG;
- the training DAG (scheduled on the Asset; under ``dags test`` it takes the Asset's
  newest event) trains from exactly that manifest and writes ``model-metrics.json``;
- digits with planted poison, guard bound 0.001 from the run's conf: the run's own guard
  publishes nothing and fails the sanitize task, no asset event is emitted and nothing is
  trained on that run's data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import airflow_env
import pytest
from airflow_env import tail
from conftest import load_json, write_digits_parquet

from sanitizer.simulate import flip_labels, inject_outliers

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "sanitize_training_data"
TRAIN_DAG_ID = "train_on_sanitized_data"
ASSET_NAME = "sanitized_training_manifest"
DAGS_FOLDER = REPO / "pipelines" / "airflow"
N = 600
PASS_DATE = "2026-01-01T00:00:00+00:00"
TRIP_DATE = "2026-01-02T00:00:00+00:00"


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """The Airflow environment's bin/ folder (tests/airflow_env.py: built once from its lock)."""
    try:
        return airflow_env.ensure()
    except airflow_env.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits):
    X, y = digits
    root = tmp_path_factory.mktemp("airflow-data")
    ids = np.array([f"img-{i:04d}" for i in range(N)], dtype=object)
    clean_path = write_digits_parquet(root / "clean-ish" / "digits.parquet", X[:N], y[:N], ids)
    Xp, outliers = inject_outliers(X[:N], 0.10, seed=5, kind="shift")
    yp, flipped = flip_labels(y[:N], 0.05, seed=6)
    poisoned_path = write_digits_parquet(root / "poisoned" / "digits.parquet", Xp, yp, ids)
    return {"root": root, "clean": clean_path, "poisoned": poisoned_path, "planted": len(set(outliers) | set(flipped))}


class Airflow:
    """The ``airflow`` CLI of the Airflow environment, against one AIRFLOW_HOME."""

    def __init__(self, bin_dir: Path, home: Path):
        self.cli = str(bin_dir / "airflow")
        self.home = home
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AIRFLOW", "SANITIZER_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SANITIZER_PYTHON": sys.executable,  # the interpreter that has sanitizer installed
        })

    def __call__(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.cli, *args], env={**self.env, **(env or {})}, capture_output=True, text=True,
                              cwd=REPO)

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        proc = self(*args)
        assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{tail(proc)}"
        return proc

    def run(self, dag_id: str, logical_date: str) -> dict:
        runs = [{"run_id": r, "state": st} for r, st, when in
                self.db("SELECT run_id, state, logical_date FROM dag_run WHERE dag_id = ?", dag_id)
                if (when or "").replace(" ", "T").startswith(logical_date[:19])]
        assert len(runs) == 1, runs
        return runs[0]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return dict(self.db("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id))

    def db(self, query: str, *args) -> list[tuple]:
        """Rows from the SQLite metadata database (no CLI lists asset events)."""
        with sqlite3.connect(self.home / "airflow.db") as con:
            return con.execute(query, args).fetchall()

    def asset_events(self) -> list[dict]:
        rows = self.db("SELECT e.source_dag_id, e.source_task_id, e.source_run_id, e.extra FROM asset_event e "
                       "JOIN asset a ON a.id = e.asset_id WHERE a.name = ? ORDER BY e.id", ASSET_NAME)
        return [{"dag_id": d, "task_id": t, "run_id": r, "extra": json.loads(x or "{}")} for d, t, r, x in rows]


@pytest.fixture(scope="module")
def airflow(airflow_bin, tmp_path_factory):
    af = Airflow(airflow_bin, tmp_path_factory.mktemp("airflow-home"))
    af.ok("db", "migrate")
    af.ok("dags", "reserialize")
    # Set after the DAGs were parsed: only a run-time read can see it.
    af.ok("variables", "set", "sanitizer_max_quarantine_share", "0.5")
    af.ok("dags", "unpause", TRAIN_DAG_ID)  # so an asset event queues it, as the scheduler would see it
    return af


def test_dags_parse_without_import_errors_and_share_the_manifest_asset(airflow):
    """What ``airflow dags reserialize`` recorded in the metadata database (read directly: each ``airflow`` CLI
    call costs seconds of imports)."""
    assert airflow.db("SELECT filename, stacktrace FROM import_error") == []
    dags = dict(airflow.db("SELECT dag_id, fileloc FROM dag WHERE NOT is_stale"))
    assert Path(dags[DAG_ID]) == DAGS_FOLDER / "sanitize_dag.py", dags
    assert Path(dags[TRAIN_DAG_ID]) == DAGS_FOLDER / "train_dag.py", dags
    [(asset_id,)] = airflow.db("SELECT id FROM asset WHERE name = ?", ASSET_NAME)
    refs = "SELECT dag_id{} FROM {} WHERE asset_id = ?"
    assert airflow.db(refs.format(", task_id", "task_outlet_asset_reference"), asset_id) == [
        (DAG_ID, "quarantine_circuit_breaker")]
    assert airflow.db(refs.format("", "dag_schedule_asset_reference"), asset_id) == [(TRAIN_DAG_ID,)]
    assert airflow.db(refs.format(", task_id", "task_inlet_asset_reference"), asset_id) == [
        (TRAIN_DAG_ID, "locate_manifest")]


PARSE_PROBE = r"""
import json, os, sys
from airflow.sdk import Variable

reads = []


def no_parse_time_reads(*args, **kwargs):
    reads.append(args)
    raise AssertionError(f"Variable.get{args} at DAG parse time")


Variable.get = no_parse_time_reads
os.environ.update({"SANITIZER_INPUT": "parse-time-input", "SANITIZER_MAX_QUARANTINE_SHARE": "0.42"})
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])  # the folder is not on sys.path: the DAG files find their helper
out = {"import_errors": {k: str(v)[-800:] for k, v in bag.import_errors.items()}, "reads": len(reads),
       "dags": {d: {"params": {k: dag.params.get_param(k).value for k in dag.params},
                    "max_active_runs": dag.max_active_runs} for d, dag in bag.dags.items()}}
import sanitizer_dag_common as common

out["run_folder"] = common.run_folder("manual__2026-01-01T00:00:00+00:00")
try:
    common.read_bytes(common.storage_path("s3://bucket/out/provenance.json"))
except Exception as exc:
    out["s3"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out, default=str))
"""


def test_parsing_reads_no_variable_or_setting(airflow, tmp_path):
    """Parse time reads neither Variables nor SANITIZER_* settings: every param default stays unset."""
    dags = tmp_path / "bundle" / "sanitizer"  # a subfolder of the bundle, as a user might copy them
    dags.mkdir(parents=True)
    for f in ("sanitize_dag.py", "train_dag.py", "sanitizer_dag_common.py"):
        shutil.copy(DAGS_FOLDER / f, dags / f)
    proc = subprocess.run([str(Path(airflow.cli).parent / "python"), "-c", PARSE_PROBE, str(dags)],
                          env=airflow.env, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, tail(proc)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["import_errors"] == {} and out["reads"] == 0, out
    assert set(out["dags"]) == {DAG_ID, TRAIN_DAG_ID}
    params = out["dags"][DAG_ID]["params"]
    assert {"input", "output", "max_quarantine_share", "max_class_quarantine_share", "runner",
            "beam_options"} <= set(params)
    assert all(v is None for v in params.values()), params  # resolved when a run starts, not here
    assert out["dags"][DAG_ID]["max_active_runs"] == 1
    assert out["run_folder"] == "manual__2026-01-01T00-00-00-00-00"
    # ObjectStoragePath on s3:// without s3fs: a failed task that says what to install, not a traceback.
    assert out["s3"].startswith("AirflowFailException") and "apache-airflow-providers-amazon[s3fs]" in out["s3"]


def _run_folder(root: Path) -> Path:
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    assert len(folders) == 1, f"expected one run folder under {root}: {folders}"
    return folders[0]


@pytest.fixture(scope="module")
def passing_run(airflow, data):
    root = data["root"] / "out-pass"
    env = {
        "SANITIZER_INPUT": str(data["clean"]),
        "SANITIZER_OUTPUT": str(root),
        "SANITIZER_ID_COLUMN": "image_id",
        "SANITIZER_SEED": "0",
        "SANITIZER_BEAM_OPTIONS": json.dumps({"direct_running_mode": "in_memory"}),
    }  # label_column: the default; max_quarantine_share: the Variable
    started = time.perf_counter()
    proc = airflow("dags", "test", DAG_ID, PASS_DATE, env=env)
    print(f"\nsanitize DAG (pass) under airflow dags test: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return {"proc": proc, "root": root}


@pytest.fixture(scope="module")
def tripped_run(airflow, data):
    root = data["root"] / "out-trip"
    env = {
        "SANITIZER_INPUT": str(data["poisoned"]),
        "SANITIZER_OUTPUT": str(root),
        "SANITIZER_LABEL_COLUMN": "label",
        "SANITIZER_ID_COLUMN": "image_id",
        "SANITIZER_MAX_QUARANTINE_SHARE": "0.5",  # the Variable (0.5) comes first, the run's conf before both
    }
    proc = airflow("dags", "test", DAG_ID, TRIP_DATE, "--conf", json.dumps({"max_quarantine_share": 0.001}), env=env)
    return {"proc": proc, "root": root}


@pytest.fixture(scope="module")
def training_run(airflow, passing_run):
    assert passing_run["proc"].returncode == 0, tail(passing_run["proc"])
    started = time.perf_counter()
    proc = airflow("dags", "test", TRAIN_DAG_ID, PASS_DATE)
    print(f"\ntraining DAG under airflow dags test: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return {"proc": proc}


def test_pass_path_sanitizes_and_emits_the_manifest_asset_event(airflow, passing_run, data):
    proc, root = passing_run["proc"], passing_run["root"]
    assert proc.returncode == 0, tail(proc)
    run = airflow.run(DAG_ID, PASS_DATE)
    assert run["state"] == "success", run
    assert airflow.task_states(DAG_ID, run["run_id"]) == {
        "resolve_options": "success", "sanitize": "success", "quarantine_circuit_breaker": "success",
    }
    logs = proc.stdout + proc.stderr
    # The Beam operator ran the pipeline file with the sanitizer's interpreter, params and Beam options passed on.
    assert f"Running command: {sys.executable} {REPO / 'pipelines' / 'sanitize_pipeline.py'}" in logs
    assert "quarantine circuit breaker passed" in logs and "bound 50.00%" in logs  # the Variable, read at run time

    out = _run_folder(root)  # this run's own folder under the output root
    assert out.name == run["run_id"].replace(":", "-").replace("+", "-")
    manifest = load_json(out / "manifest.json")
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "succeeded" and provenance["runner"] == "DirectRunner"
    assert provenance["counts"]["rows_in"] == N
    assert provenance["counts"]["quarantined"] / N <= 0.5
    assert "--direct_running_mode=in_memory" in provenance["pipeline_options"]
    assert any(o.startswith("--labels=airflow-version=") for o in provenance["pipeline_options"])
    assert provenance["config"]["id_column"] == "image_id" and provenance["config"]["seed"] == 0
    assert provenance["config"]["label_column"] == "label"

    # The circuit breaker's outlet: one asset event, recorded in the metadata database, naming this manifest.
    events = [e for e in airflow.asset_events() if e["run_id"] == run["run_id"]]
    assert len(events) == 1, airflow.asset_events()
    event = events[0]
    assert (event["dag_id"], event["task_id"]) == (DAG_ID, "quarantine_circuit_breaker")
    sha = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert event["extra"]["manifest"] == str(out / "manifest.json")
    assert event["extra"]["manifest_sha256"] == sha and f"manifest sha256 {sha}" in logs
    assert event["extra"]["run_id"] == manifest["run_id"] and event["extra"]["bound"] == 0.5
    # ...and the event queued the Asset-scheduled training DAG for the scheduler.
    assert airflow.db("SELECT target_dag_id FROM asset_dag_run_queue") == [(TRAIN_DAG_ID,)]
    assert not (out / "model-metrics.json").exists()  # training is the other DAG's job


def test_training_dag_trains_from_the_manifest_the_breaker_approved(airflow, training_run, passing_run):
    proc = training_run["proc"]
    assert proc.returncode == 0, tail(proc)
    run = airflow.run(TRAIN_DAG_ID, PASS_DATE)
    assert run["state"] == "success", run
    assert airflow.task_states(TRAIN_DAG_ID, run["run_id"]) == {"locate_manifest": "success", "train": "success"}
    approved = [e for e in airflow.asset_events() if e["run_id"] == airflow.run(DAG_ID, PASS_DATE)["run_id"]]
    manifest_uri = approved[0]["extra"]["manifest"]
    out = Path(manifest_uri).parent
    assert out.parent == passing_run["root"]
    logs = proc.stdout + proc.stderr
    assert f"training from {manifest_uri}" in logs and "newest asset event" in logs
    assert "drift from the baseline: none" in logs  # the breaker's drift verdict, passed on in the event

    manifest = load_json(out / "manifest.json")
    metrics = load_json(out / "model-metrics.json")
    assert metrics["manifest"] == manifest_uri and metrics["run_id"] == manifest["run_id"]
    assert metrics["clean_rows"] == manifest["clean"]["rows"]
    assert metrics["test_accuracy"] > 0.8
    # train loaded exactly the manifest the circuit breaker approved (its sha256 passed on in the asset event).
    assert metrics["manifest_sha256"] == approved[0]["extra"]["manifest_sha256"]
    assert metrics["manifest_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert metrics["manifest_sha256_checked"] is True
    try:
        import sanitizer.training  # noqa: F401

        assert metrics["loader"] == "sanitizer.training"
    except ImportError:
        assert metrics["loader"] == "builtin"


def test_the_guard_fails_the_run_and_emits_no_asset_event(airflow, tripped_run, data):
    """The DAG's bound is the run's own guard: a run over it publishes no manifest (exit 3), the sanitize
    task fails, the breaker never approves, and nothing reaches training."""
    proc, root = tripped_run["proc"], tripped_run["root"]
    assert proc.returncode != 0, "a failed DAG run must make `airflow dags test` fail"
    run = airflow.run(DAG_ID, TRIP_DATE)
    assert run["state"] == "failed", run
    states = airflow.task_states(DAG_ID, run["run_id"])
    assert states["sanitize"] == "failed", states  # the guard stopped publication inside the run...
    assert states["quarantine_circuit_breaker"] == "upstream_failed", states  # ...so nothing was approved
    logs = proc.stdout + proc.stderr
    assert "guard.max_quarantine_share 0.1%" in logs and "exit 3" in logs, logs[-3000:]

    out = _run_folder(root)
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "failed" and provenance["guard"]["tripped"] is True
    assert provenance["guard"]["max_quarantine_share"] == 0.001  # the run's conf, over the Variable and env
    assert provenance["counts"]["quarantined"] >= 0.5 * data["planted"]
    assert not (out / "manifest.json").exists()
    # No asset event: the training DAG is never triggered by this run, and never points at its folder.
    assert [e for e in airflow.asset_events() if e["run_id"] == run["run_id"]] == []
    assert all(str(out) not in e["extra"].get("manifest", "") for e in airflow.asset_events())
    assert not (out / "model-metrics.json").exists(), "training ran although the guard tripped"
