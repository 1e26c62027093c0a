"""The Airflow virtual environment the DAG tests run Airflow from (``.venv-airflow``), built once.

Airflow 3.3.2 with the Apache Beam provider and the Google provider (the Beam operator imports it
even for the DirectRunner), in its own environment: its pins conflict with the sanitizer's. It is
installed exactly from ``requirements/airflow-lock.txt`` (every package pinned with hashes; `make
lock` resolves it under the project's own lock, so the packages both share match), and rebuilt when
that file changes. ``SANITIZER_AIRFLOW_VENV`` puts it elsewhere. :func:`ensure` builds it when it
is missing, stale or does not import the Beam operator, under a file lock (one builder at a time,
whichever pytest-xdist worker asks first), and is what the tests' fixture calls. uv (from the test
extra) installs the locked packages in seconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_VENV = Path(os.environ.get("SANITIZER_AIRFLOW_VENV") or REPO / ".venv-airflow")
AIRFLOW_VERSION = "3.3.2"
AIRFLOW_LOCK = REPO / "requirements" / "airflow-lock.txt"
STAMP_NAME = ".sanitizer-airflow-lock.sha256"  # inside the environment: the lock it was built from
PROBE = (
    "import airflow; from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator; "
    f"assert airflow.__version__ == {AIRFLOW_VERSION!r}, airflow.__version__"
)


class BuildError(RuntimeError):
    """The environment could not be built; the message says which step failed and its output."""


def tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-n:]}\n--- stderr ---\n{proc.stderr[-n:]}"


def lock_digest() -> str:
    return hashlib.sha256(AIRFLOW_LOCK.read_bytes()).hexdigest()


def works(python: Path | None = None) -> bool:
    """Built from today's lock and imports the Beam operator."""
    python = python or AIRFLOW_VENV / "bin" / "python"
    stamp = AIRFLOW_VENV / STAMP_NAME
    return (python.is_file() and stamp.is_file() and stamp.read_text().strip() == lock_digest()
            and subprocess.run([str(python), "-c", PROBE], capture_output=True).returncode == 0)


def ensure() -> Path:
    """The environment's bin/ folder, built first when needed; raises BuildError saying why it could not be."""
    python = AIRFLOW_VENV / "bin" / "python"
    AIRFLOW_VENV.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(AIRFLOW_VENV).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"sanitizer-airflow-venv-{digest}.lock"
    with open(lock_path, "w") as lock:  # one builder at a time; a waiter then finds it built
        fcntl.flock(lock, fcntl.LOCK_EX)
        if works(python):
            return AIRFLOW_VENV / "bin"
        started = time.perf_counter()
        lock_sha = lock_digest()
        shutil.rmtree(AIRFLOW_VENV, ignore_errors=True)  # built from scratch: nothing left from another lock
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(AIRFLOW_VENV)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise BuildError(f"could not create the Airflow virtual environment {AIRFLOW_VENV}:\n{tail(made)}")
        # uv installs the ~275 locked packages in seconds where pip takes a minute and a half.
        from uv import find_uv_bin

        cmd = [find_uv_bin(), "pip", "install", "--quiet", "--require-hashes", "--no-deps",
               "--python", str(python), "-r", str(AIRFLOW_LOCK)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"installing {AIRFLOW_LOCK.name} into {AIRFLOW_VENV} failed; "
                             f"these tests need PyPI access once:\n{tail(done)}")
        probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True)
        if probe.returncode != 0:
            raise BuildError(f"Airflow was installed into {AIRFLOW_VENV} but the Beam operator does not import:\n"
                             f"{tail(probe)}")
        (AIRFLOW_VENV / STAMP_NAME).write_text(lock_sha + "\n")
        print(f"built {AIRFLOW_VENV} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return AIRFLOW_VENV / "bin"
