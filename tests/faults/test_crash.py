"""Fault suite: a run killed, starved of disk, or fed an input that changes under it (issue 10, defect 9).

Runs ``sanitize run`` as a real subprocess and hits it where it hurts:

* SIGKILL at several points (the run has claimed the folder, the sinks are
  staging shards, clean shards are on disk) leaves no manifest.json, and a rerun with
  ``--overwrite`` gives the same output as an uninterrupted run;
* an output that cannot be written (its parent is a file; a file-size limit,
  the way a full disk looks to a writer) ends with exit 2 and a message, no
  traceback and nothing published;
* an input file changed while the run reads it fails the run, naming the file.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import load_json, read_dir, write_rows
from conftest import sanitize_quiet as sanitize

ROOT = Path(__file__).resolve().parents[2]
N = 240




def command(inp, out, *extra) -> list[str]:
    return [sys.executable, "-m", "sanitizer.cli", "run", "--input", str(inp), "--output", str(out),
            "--label-column", "label", "-q", *extra]


def start(inp, out, *extra, preexec_fn=None) -> subprocess.Popen:
    return subprocess.Popen(command(inp, out, *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=preexec_fn)


def wait_for(proc: subprocess.Popen, ready) -> bool:
    """Poll until ``ready()`` holds (True) or the process has ended first (False)."""
    while proc.poll() is None:
        if ready():
            return True
        time.sleep(0.002)
    return False


def contents(out: Path) -> dict:
    """What a run published, independent of its run id: rows of both outputs by id, and shard counts."""
    manifest = load_json(out / "manifest.json")
    id_column = load_json(out / "provenance.json")["columns"]["id"]  # given, inferred (a unique counter) or generated
    result = {}
    for part in ("clean", "quarantine"):
        table = read_dir(out / part)
        order = pc.sort_indices(table, [(id_column, "ascending")])
        result[part] = table.take(order).to_pydict()
        result[part + "_shards"] = len(manifest[part]["shards"])
        result[part + "_rows"] = manifest[part]["rows"]
    return result


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    data = write_rows(base / "data.parquet")
    out = base / "baseline"
    assert sanitize(data, out) == 0
    return {"data": data, "contents": contents(out)}


def _marker(out: Path):
    return lambda: (out / ".sanitizer-run.json").exists()


def _writing(out: Path):
    """The sinks are staging shards: the detectors are fitted and scoring is under way."""
    return lambda: any(out.glob("*/beam-temp-*"))


def _clean_shard(out: Path):
    return lambda: any((out / "clean").glob("part-*-of-*.parquet")) if (out / "clean").is_dir() else False


@pytest.mark.parametrize("point", [_marker, _writing, _clean_shard], ids=["claimed", "writing", "clean-shards"])
def test_kill_then_overwrite_gives_the_uninterrupted_result(baseline, tmp_path, point):
    out = tmp_path / "out"
    proc = start(baseline["data"], out)
    reached = wait_for(proc, point(out))
    if reached:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert reached, f"the run ended (rc {proc.returncode}) before the kill point: {err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists(), "a killed run published a manifest"

    assert sanitize(baseline["data"], out, "--overwrite") == 0
    assert contents(out) == baseline["contents"]
    assert not (out / "_work").exists() and not list((out / "clean").glob("beam-temp-*"))


def test_output_whose_parent_is_a_file(baseline, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    assert sanitize(baseline["data"], out) == 2
    err = capsys.readouterr().err
    assert f"could not write to {out}" in err and "choose another --output" in err and "Traceback" not in err


def _small_disk():
    """In the child: files may not grow past 4 KiB (EFBIG, as a full disk would give ENOSPC)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_full_disk_publishes_nothing(baseline, tmp_path):
    out = tmp_path / "out"
    proc = start(baseline["data"], out, preexec_fn=_small_disk)
    _, err = proc.communicate()
    assert proc.returncode == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"sanitize: error: could not write to {out}: [Errno 27]"), err[-3000:]
    assert "choose another --output" in last
    # Beam logs the worker's error; the sanitize process itself ends with the message, not a traceback
    assert str(ROOT / "sanitizer" / "cli.py") not in err, err[-3000:]
    assert not (out / "manifest.json").exists()


def test_input_changed_during_the_run_fails_it(tmp_path):
    data = write_rows(tmp_path / "data.parquet")
    out = tmp_path / "out"
    proc = start(data, out)
    reached = wait_for(proc, lambda: (out / "clean").exists())
    if reached:
        table = pq.read_table(data)
        labels = table.column("label").to_pylist()
        labels[10:20] = [(v + 1) % 3 for v in labels[10:20]]
        tmp = data.with_suffix(".new")
        pq.write_table(table.set_column(table.schema.get_field_index("label"), "label",
                                        pa.array(labels, pa.int64())), tmp)
        os.replace(tmp, data)  # a writer replacing the shard mid-run
    _, err = proc.communicate()
    assert reached, f"the run ended before the input could be changed: {err[-2000:]}"
    assert proc.returncode == 2, err[-3000:]
    assert str(data) in err and "changed" in err and "Traceback" not in err
    assert not (out / "manifest.json").exists()
