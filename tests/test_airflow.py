"""The Airflow DAG (pipelines/airflow/sanitize_dag.py), run by real Airflow.

Airflow lives in its own virtual environment, ``.venv-airflow`` at the repository
root (``SANITIZER_AIRFLOW_VENV`` to put it elsewhere): Airflow 3.3.2 with the
Apache Beam provider and the Google provider (the Beam operator imports it even
for the DirectRunner). The first run builds it (a few minutes of pip); later
runs reuse it as long as it imports the Beam operator. If it cannot be built,
the tests fail and say why.

Each module run gets a fresh AIRFLOW_HOME with a SQLite metadata database, parses
the DAG folder (no import errors allowed), then runs the DAG twice with
``airflow dags test``, the sanitizer's interpreter being the one running these
tests:

- clean-ish digits, quarantine bound 0.5: every task succeeds, the model is
  trained from the manifest and ``model-metrics.json`` written;
- digits with planted poison, bound 0.001: the circuit breaker fails the run,
  training never starts and no metrics are written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import load_json, write_digits_parquet

from sanitizer.simulate import flip_labels, inject_outliers

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "sanitize_training_data"
DAGS_FOLDER = REPO / "pipelines" / "airflow"
AIRFLOW_VENV = Path(os.environ.get("SANITIZER_AIRFLOW_VENV") or REPO / ".venv-airflow")
AIRFLOW_VERSION = "3.3.2"
AIRFLOW_REQUIREMENTS = [
    f"apache-airflow=={AIRFLOW_VERSION}",
    "apache-airflow-providers-apache-beam==6.3.1",
    "apache-airflow-providers-google==22.8.0",
]
PROBE = (
    "import airflow; from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator; "
    f"assert airflow.__version__ == {AIRFLOW_VERSION!r}, airflow.__version__"
)
N = 600
PASS_DATE = "2026-01-01T00:00:00+00:00"
TRIP_DATE = "2026-01-02T00:00:00+00:00"


def _tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-n:]}\n--- stderr ---\n{proc.stderr[-n:]}"


def _venv_works(python: Path) -> bool:
    return python.is_file() and subprocess.run([str(python), "-c", PROBE], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """The Airflow environment's bin/ folder, built on first use (pip, a few minutes) and reused after."""
    python = AIRFLOW_VENV / "bin" / "python"
    AIRFLOW_VENV.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(AIRFLOW_VENV).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"sanitizer-airflow-venv-{digest}.lock"
    with open(lock_path, "w") as lock:  # one builder at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _venv_works(python):
            started = time.perf_counter()
            if not python.is_file():
                shutil.rmtree(AIRFLOW_VENV, ignore_errors=True)
                made = subprocess.run([sys.executable, "-m", "venv", str(AIRFLOW_VENV)], capture_output=True,
                                      text=True)
                if made.returncode != 0:
                    pytest.fail(f"could not create the Airflow virtual environment {AIRFLOW_VENV}:\n{_tail(made)}")
            for cmd in ([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                        [str(python), "-m", "pip", "install", "--quiet", *AIRFLOW_REQUIREMENTS]):
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    pytest.fail(f"installing Airflow into {AIRFLOW_VENV} failed ({' '.join(cmd[3:])}); "
                                f"these tests need PyPI access once:\n{_tail(done)}")
            probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True)
            if probe.returncode != 0:
                pytest.fail(f"Airflow was installed into {AIRFLOW_VENV} but the Beam operator does not import:\n"
                            f"{_tail(probe)}")
            print(f"\nbuilt {AIRFLOW_VENV} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return AIRFLOW_VENV / "bin"


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

    def json(self, *args: str):
        proc = self(*args, "-o", "json")
        assert proc.returncode == 0, _tail(proc)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(("[", "{"))]
        assert lines, f"no JSON in the output of airflow {' '.join(args)}:\n{_tail(proc)}"
        return json.loads(lines[-1])

    def run(self, logical_date: str) -> dict:
        runs = [r for r in self.json("dags", "list-runs", DAG_ID)
                if r["logical_date"].replace("Z", "+00:00").startswith(logical_date[:19])]
        assert len(runs) == 1, runs
        return runs[0]

    def task_states(self, run_id: str) -> dict[str, str]:
        return {t["task_id"]: t["state"] for t in self.json("tasks", "states-for-dag-run", DAG_ID, run_id)}


@pytest.fixture(scope="module")
def airflow(airflow_bin, tmp_path_factory):
    af = Airflow(airflow_bin, tmp_path_factory.mktemp("airflow-home"))
    for args in (("db", "migrate"), ("dags", "reserialize")):
        proc = af(*args)
        assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{_tail(proc)}"
    return af


def test_dag_parses_without_import_errors(airflow):
    assert airflow.json("dags", "list-import-errors") == []
    dags = {d["dag_id"]: d for d in airflow.json("dags", "list")}
    assert DAG_ID in dags, dags
    assert Path(dags[DAG_ID]["fileloc"]) == DAGS_FOLDER / "sanitize_dag.py"


@pytest.fixture(scope="module")
def passing_run(airflow, data):
    out = data["root"] / "out-pass"
    env = {
        "SANITIZER_INPUT": str(data["clean"]),
        "SANITIZER_OUTPUT": str(out),
        "SANITIZER_LABEL_COLUMN": "label",
        "SANITIZER_ID_COLUMN": "image_id",
        "SANITIZER_SEED": "0",
        "SANITIZER_MAX_QUARANTINE_RATE": "0.5",
        "SANITIZER_BEAM_OPTIONS": json.dumps({"direct_running_mode": "in_memory"}),
    }
    proc = airflow("dags", "test", DAG_ID, PASS_DATE, env=env)
    return {"proc": proc, "out": out}


@pytest.fixture(scope="module")
def tripped_run(airflow, data):
    out = data["root"] / "out-trip"
    env = {
        "SANITIZER_INPUT": str(data["poisoned"]),
        "SANITIZER_OUTPUT": str(out),
        "SANITIZER_LABEL_COLUMN": "label",
        "SANITIZER_ID_COLUMN": "image_id",
        "SANITIZER_MAX_QUARANTINE_RATE": "0.5",  # overridden by the run's conf below
    }
    proc = airflow("dags", "test", DAG_ID, TRIP_DATE, "--conf", json.dumps({"max_quarantine_rate": 0.001}), env=env)
    return {"proc": proc, "out": out}


def test_pass_path_sanitizes_then_trains_from_the_manifest(airflow, passing_run, data):
    proc, out = passing_run["proc"], passing_run["out"]
    assert proc.returncode == 0, _tail(proc)
    run = airflow.run(PASS_DATE)
    assert run["state"] == "success", run
    assert airflow.task_states(run["run_id"]) == {
        "resolve_options": "success", "sanitize": "success", "quarantine_circuit_breaker": "success",
        "train": "success",
    }
    logs = proc.stdout + proc.stderr
    # The Beam operator ran the pipeline file with the sanitizer's interpreter, params and Beam options passed on.
    assert f"Running command: {sys.executable} {REPO / 'pipelines' / 'sanitize_pipeline.py'}" in logs
    assert "quarantine circuit breaker passed" in logs

    manifest = load_json(out / "manifest.json")
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "succeeded" and provenance["runner"] == "DirectRunner"
    assert provenance["counts"]["rows_in"] == N
    assert provenance["counts"]["quarantined"] / N <= 0.5
    assert "--direct_running_mode=in_memory" in provenance["pipeline_options"]
    assert any(o.startswith("--labels=airflow-version=") for o in provenance["pipeline_options"])
    assert provenance["config"]["id_column"] == "image_id" and provenance["config"]["seed"] == 0

    metrics = load_json(out / "model-metrics.json")
    assert metrics["run_id"] == manifest["run_id"]
    assert metrics["clean_rows"] == manifest["clean"]["rows"]
    assert metrics["test_accuracy"] > 0.8
    # train loaded exactly the manifest the circuit breaker checked (its sha256 passed on through XCom).
    assert metrics["manifest_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert metrics["manifest_sha256_checked"] is True
    assert f"manifest sha256 {metrics['manifest_sha256']}" in logs
    try:
        import sanitizer.training  # noqa: F401

        assert metrics["loader"] == "sanitizer.training"
    except ImportError:
        assert metrics["loader"] == "builtin"


def test_circuit_breaker_fails_the_run_and_training_never_starts(airflow, tripped_run, data):
    proc, out = tripped_run["proc"], tripped_run["out"]
    assert proc.returncode != 0, "a failed DAG run must make `airflow dags test` fail"
    run = airflow.run(TRIP_DATE)
    assert run["state"] == "failed", run
    states = airflow.task_states(run["run_id"])
    assert states["sanitize"] == "success", states  # the data was sanitized and published...
    assert states["quarantine_circuit_breaker"] == "failed", states  # ...but the spike stopped the run
    assert states["train"] in ("upstream_failed", None), states
    logs = proc.stdout + proc.stderr
    assert "quarantine circuit breaker tripped" in logs and "bound 0.10%" in logs

    provenance = load_json(out / "provenance.json")
    rate = provenance["counts"]["quarantined"] / provenance["counts"]["rows_in"]
    assert rate > 0.001
    assert provenance["counts"]["quarantined"] >= 0.5 * data["planted"]
    assert (out / "manifest.json").exists()
    assert not (out / "model-metrics.json").exists(), "training ran although the breaker tripped"
