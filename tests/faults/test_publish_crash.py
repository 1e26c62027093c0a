"""Fault injection on ``sanitize publish``: killed half way, run twice at once, run again.

One real run (300 synthetic rows, outlier detector only) per module, with a few records released and
one confirmed; each test publishes a copy of it. The faults:

- ``kill -9`` of a ``sanitize publish`` process at real moments (as soon as its lock file appears; as
  soon as its released shard appears), and the state a kill just before the manifest rename leaves
  (a released shard in clean/ that no manifest names, the old manifest still in place): the next
  publish succeeds, the output loads through ``sanitizer.training.load_manifest``, and its manifest
  is the one an uninterrupted publish writes;
- two publishes at once: a publish that finds the lock held by a live process exits 2 naming the holder
  and the way out, touching nothing; two processes started together give exactly one publication;
- a publish of the same decisions twice: the second one changes nothing at all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer import review as rv
from sanitizer.training import ManifestError, load_manifest
from conftest import load_json, run_cli, sanitize_script, synthetic_rows

CONFIG = "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
OUTLIERS = (5, 7, 9)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A finished run with decisions recorded (rows 5 and 7 released, 9 confirmed), not yet published."""
    d = tmp_path_factory.mktemp("publish-crash")
    _, X, y = synthetic_rows(300, seed=0)
    for i, row in enumerate(OUTLIERS):
        X[row] = 40.0 + 10 * i
    inp = d / "in" / "data.parquet"
    inp.parent.mkdir(parents=True)
    pq.write_table(pa.table({"rid": [f"r{i}" for i in range(300)], "a": X[:, 0], "b": X[:, 1], "c": X[:, 2],
                             "label": y}), inp)
    (d / "fast.yaml").write_text(CONFIG)
    out = d / "out"
    assert run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", "rid",
                   "--config", d / "fast.yaml", "--seed", "0", "-q") == 0
    assert run_cli("review", out, "release", "r5", "r7", "--reason", "fine", "--reviewer", "ana") == 0
    assert run_cli("review", out, "confirm", "r9", "--reason", "poison", "--reviewer", "ana") == 0
    clean = d / "uninterrupted"
    shutil.copytree(out, clean)
    assert run_cli("publish", clean) == 0
    return {"out": out, "expected": comparable(load_json(clean / "manifest.json"))}


def comparable(manifest: dict) -> dict:
    """A manifest without the one thing that differs between two publications of the same decisions: the
    publication record's sha256 (the record holds its creation time)."""
    manifest = json.loads(json.dumps(manifest))
    manifest["publication"]["record"].pop("sha256")
    return manifest


@pytest.fixture()
def out(reviewed, tmp_path) -> Path:
    target = tmp_path / "out"
    shutil.copytree(reviewed["out"], target)
    return target


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def assert_published(out: Path, reviewed) -> None:
    data = load_manifest(out)  # refuses an orphan shard in clean/
    assert set(data.to_pandas()["rid"]) >= {"r5", "r7"}
    assert comparable(load_json(out / "manifest.json")) == reviewed["expected"]
    assert not list((out / "clean").glob("*.tmp")) and not (out / rv.LOCK_FILE).exists()


# --------------------------------------------------------------------------- killed half way


def start_publish(out: Path) -> subprocess.Popen:
    return subprocess.Popen([str(sanitize_script()), "publish", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def kill_when(proc: subprocess.Popen, appeared) -> bool:
    """SIGKILL ``proc`` as soon as ``appeared()`` is true; False when it finished first."""
    while proc.poll() is None:
        if appeared():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.0005)
    return False


@pytest.mark.parametrize("moment", ["lock taken", "released shard written"])
def test_kill_during_publish_then_publish_again(out, reviewed, moment):
    if moment == "lock taken":
        def appeared():
            return (out / rv.LOCK_FILE).exists()
    else:
        def appeared():
            return any((out / "clean").glob("part-released-*"))
    proc = start_publish(out)
    killed = kill_when(proc, appeared)  # False only if it finished before the moment was seen
    proc.communicate()
    if killed and moment == "lock taken":
        assert (out / rv.LOCK_FILE).exists()  # left by a dead process: the next publish takes it over
    assert run_cli("publish", out) == 0
    assert_published(out, reviewed)


def test_orphan_shard_left_by_a_kill_before_the_manifest_rename(out, reviewed):
    before = (out / "manifest.json").read_bytes()
    assert run_cli("publish", out) == 0
    # what a kill just before the rename leaves: every file of the publication but the new manifest
    (out / "manifest.json").write_bytes(before)
    orphans = list((out / "clean").glob("part-released-*.parquet"))
    assert orphans
    with pytest.raises(ManifestError, match="not listed in the manifest"):
        load_manifest(out)
    assert run_cli("publish", out) == 0
    assert_published(out, reviewed)


def test_partly_written_shard_is_cleaned(out, reviewed):
    (out / "clean" / "part-released-p0000000000000000.parquet.tmp").write_bytes(b"PAR1 torn")
    (out / "clean" / "part-released-p0000000000000000.parquet").write_bytes(b"PAR1 torn")
    assert run_cli("publish", out) == 0
    assert_published(out, reviewed)


# --------------------------------------------------------------------------- two at once


def test_publish_refuses_while_a_live_process_holds_the_lock(out, reviewed, capsys):
    before = tree(out)
    with rv.publish_lock(str(out)):
        capsys.readouterr()
        assert run_cli("publish", out) == 2
        err = capsys.readouterr().err
        assert "another publish holds the lock" in err and f"pid {os.getpid()}" in err
        assert "--break-lock" in err and rv.LOCK_FILE in err
        after = tree(out)
        after.pop(rv.LOCK_FILE)
        assert after == before
    assert run_cli("publish", out) == 0
    assert_published(out, reviewed)


def test_break_lock_takes_over_a_lock(out, reviewed):
    with rv.publish_lock(str(out)):
        assert run_cli("publish", out, "--break-lock") == 0
    assert_published(out, reviewed)


def test_two_publishes_started_together_publish_once(out, reviewed):
    procs = [start_publish(out) for _ in range(2)]
    results = [(p.wait(), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    for rc, stdout, stderr in results:
        assert rc in (0, 2), stderr
        if rc == 2:
            assert b"another publish holds the lock" in stderr
    assert codes[0] == 0
    publications = list((out / "review").glob("publication-*.json"))
    assert len(publications) == 1
    assert_published(out, reviewed)


# --------------------------------------------------------------------------- idempotent


def test_publishing_the_same_decisions_twice_changes_nothing(out, reviewed, capsys):
    assert run_cli("publish", out) == 0
    before = tree(out)
    capsys.readouterr()
    assert run_cli("publish", out) == 0
    assert "nothing new to publish" in capsys.readouterr().out
    assert tree(out) == before
    assert_published(out, reviewed)
