"""Fault suite: two commands on one output folder at once (issue 30, case 1).

``sanitize run`` and ``sanitize publish`` hold one lock, ``OUT/.sanitizer.lock``,
from before anything in OUT is deleted or written until the manifest is written.
What these pin, with real runs:

* a run started while another run holds the lock exits 2 with one line naming the
  holder (pid, host, since) and leaves OUT exactly as it was;
* two real runs on inputs that differ only in a text column, the second started
  while the first holds the lock: the first publishes a consistent output (its
  provenance, shards and input), the second is refused naming the first;
* a lock left by a process that no longer exists is taken over (with a warning),
  so a rerun after ``kill -9`` works;
* ``sanitize publish`` is refused while a run holds the lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.training import load_manifest
from conftest import load_json, read_dir, run_cli, write_rows
from conftest import sanitize_quiet as sanitize

ROOT = Path(__file__).resolve().parents[2]
LOCK = ".sanitizer.lock"


def snapshot(root) -> dict[str, str]:
    root = Path(root)
    return {str(p.relative_to(root)): "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def write_lock(out: Path, pid: int, command: str = "run") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK).write_text(json.dumps({"command": command, "pid": pid, "host": socket.gethostname(),
                                        "since": "2026-01-01T00:00:00+00:00", "token": "t" * 32}))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    base = tmp_path_factory.mktemp("run-lock")
    data = write_rows(base / "data.parquet")
    out = base / "out"
    assert sanitize(data, out) == 0
    return {"data": data, "out": out, "base": base}


def copy_run(published, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(published["out"], out, symlinks=True)
    return out


def test_a_run_is_refused_while_a_live_process_holds_the_lock(published, tmp_path, capsys):
    out = copy_run(published, tmp_path)
    write_lock(out, os.getpid())
    before = snapshot(out)
    assert sanitize(published["data"], out, "--overwrite") == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("sanitize: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"another run holds the lock {LOCK}" in lines[0] and f"pid {os.getpid()} on host" in lines[0]
    assert "since 2026-01-01" in lines[0] and str(out / LOCK) in lines[0]
    assert snapshot(out) == before


def test_a_lock_left_by_a_dead_process_is_taken_over(published, tmp_path, caplog):
    out = copy_run(published, tmp_path)
    pid = dead_pid()
    write_lock(out, pid)
    with caplog.at_level(logging.WARNING, logger="sanitizer"):
        assert sanitize(published["data"], out, "--overwrite") == 0
    assert any("took over the lock" in r.getMessage() and f"pid {pid}" in r.getMessage() for r in caplog.records)
    assert not (out / LOCK).exists()
    assert load_manifest(out).rows > 0


def test_publish_is_refused_while_a_run_holds_the_lock(published, tmp_path, capsys):
    out = copy_run(published, tmp_path)
    id_column = load_json(out / "provenance.json")["columns"]["id"]
    rid = str(read_dir(out / "quarantine").column(id_column).to_pylist()[0])
    assert run_cli("review", out, "release", rid, "--reason", "false alarm", "--reviewer", "ana") == 0
    write_lock(out, os.getpid(), "run")
    before = snapshot(out)
    capsys.readouterr()
    assert run_cli("publish", out) == 2
    err = capsys.readouterr().err
    assert "another run holds the lock" in err and f"pid {os.getpid()}" in err and "Traceback" not in err
    assert snapshot(out) == before


def _own_start() -> int:
    return int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])


def test_the_lock_refuses_a_live_holder_and_takes_over_a_reused_pid(tmp_path, caplog):
    """Unit level: a holder whose pid runs (and started when the lock was taken) is live; the same pid with
    another start time is a reused pid, so the lock is stale and taken over."""
    from sanitizer.runs import output_lock
    from sanitizer.errors import SanitizerError

    out = tmp_path / "out"
    with output_lock.output_lock(str(out), "run") as held:
        with pytest.raises(SanitizerError, match=rf"another run holds the lock .*pid {os.getpid()} on host"):
            output_lock.acquire(str(out), "publish")
        assert json.loads((out / LOCK).read_text())["token"] == held["token"]
    assert not (out / LOCK).exists() and not out.exists()  # the folder the lock created goes with it

    write_lock(out, os.getpid())
    lock = json.loads((out / LOCK).read_text()) | {"pid_start": _own_start() - 1}
    (out / LOCK).write_text(json.dumps(lock))
    with caplog.at_level(logging.WARNING, logger="sanitizer"):
        with output_lock.output_lock(str(out), "run"):
            pass
    assert any("took over the lock" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- two real runs at once


def _inputs(base: Path) -> dict[str, Path]:
    rows = write_rows(base / "rows.parquet", n=240)
    table = pq.read_table(rows)
    paths = {}
    for note in ("AAAA", "CCCC"):
        path = base / note / "data.parquet"
        path.parent.mkdir()
        pq.write_table(table.append_column("note", pa.array([note] * table.num_rows)), path)
        paths[note] = path
    return paths


def _start(inp: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sanitizer.cli", "run", "--input", str(inp), "--output", str(out),
                             "--label-column", "label", "--overwrite", "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _consistent_with(out: Path) -> str:
    """The note of the one run OUT's manifest, provenance, shards and named input all belong to."""
    manifest = load_json(out / "manifest.json")
    assert hashlib.sha256((out / "provenance.json").read_bytes()).hexdigest() == manifest["provenance"]["sha256"]
    record = load_json(out / "provenance.json")
    assert record["run_id"] == manifest["run_id"] and record["status"] == "succeeded"
    (named,) = [Path(i["uri"]).parent.name for i in record["inputs"]]
    for part in ("clean", "quarantine"):
        assert sorted(s["sha256"] for s in manifest[part]["shards"]) == \
            sorted(s["sha256"] for s in record["outputs"][part])
        assert set(read_dir(out / part).column("note").to_pylist()) == {named}
    return named


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    first = _start(inputs["AAAA"], out)
    while first.poll() is None and not (out / ".sanitizer-run.json").exists():  # the first has claimed OUT
        time.sleep(0.005)
    assert first.poll() is None, "the first run ended before the second could start"
    second = _start(inputs["CCCC"], out)
    second_rc, (_, second_err) = second.wait(), second.communicate()
    first_rc, (_, first_err) = first.wait(), first.communicate()
    assert first_rc == 0, first_err[-2000:]
    assert second_rc == 2, second_err[-2000:]
    lines = [line for line in second_err.strip().splitlines() if line.startswith("sanitize: error:")]
    assert len(lines) == 1 and "Traceback" not in second_err
    assert "another run holds the lock" in lines[0] and f"pid {first.pid} on host" in lines[0]
    assert _consistent_with(out) == "AAAA"
    assert load_manifest(out).rows > 0
    assert not (out / LOCK).exists()
