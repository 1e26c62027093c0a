"""Fault suite: the output folder holds the user's files too (issue 30, case 4).

A run deletes and writes only the paths it owns. What these pin, with real runs:

* ``--overwrite`` removes a previous run's files in ``validation/`` and ``_work/``
  but leaves the user's own files there (``validation/my_notes.txt``,
  ``_work/keep.txt``) untouched;
* a first run (no ``--overwrite``) into a folder holding a file it would write
  (the user's own ``report.html``, ``lineage.json``, a ``validation/`` folder) is
  refused with exit 2, one line naming it, and nothing changed;
* a symbolic link at a temporary name an older release used
  (``OUT/provenance.json.tmp -> /elsewhere/file``) is never written through.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from sanitizer.training import load_manifest
from conftest import write_rows
from conftest import sanitize_quiet as sanitize


def snapshot(root) -> dict[str, str]:
    root = Path(root)
    return {str(p.relative_to(root)): "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    base = tmp_path_factory.mktemp("ownership")
    data = write_rows(base / "data.parquet")
    out = base / "out"
    assert sanitize(data, out) == 0
    return {"data": data, "out": out}


def test_overwrite_leaves_the_users_files_in_validation_and_work(published, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(published["out"], out)
    (out / "validation" / "data_docs").mkdir(parents=True)
    (out / "validation" / "summary.json").write_text("[]")  # what a run with --expectations writes: ours
    (out / "validation" / "data_docs" / "index.html").write_text("<html></html>")
    (out / "validation" / "my_notes.txt").write_text("the user's notes")
    (out / "_work").mkdir()
    (out / "_work" / "stats.json").write_text("{}")  # an older release's work file: ours
    (out / "_work" / "keep.txt").write_text("the user's file")
    assert sanitize(published["data"], out, "--overwrite") == 0
    assert (out / "validation" / "my_notes.txt").read_text() == "the user's notes"
    assert (out / "_work" / "keep.txt").read_text() == "the user's file"
    assert not (out / "validation" / "summary.json").exists() and not (out / "validation" / "data_docs").exists()
    assert not (out / "_work" / "stats.json").exists()
    assert load_manifest(out).rows > 0


@pytest.mark.parametrize("name", ["report.html", "lineage.json", "validation/notes.txt"])
def test_a_first_run_is_refused_on_a_file_it_would_write(published, tmp_path, capsys, name):
    out = tmp_path / "proj"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text("the user's own")
    before = snapshot(out)
    assert sanitize(published["data"], out) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("sanitize: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert name.split("/")[0] in lines[0] and "--overwrite" in lines[0]
    assert snapshot(out) == before


def test_a_symlinked_temporary_name_is_never_written_through(published, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    names = ["provenance.json.tmp", "manifest.json.tmp", "report.html.tmp", "lineage.json.tmp",
             ".sanitizer-run.json.tmp"]
    for name in names:
        (elsewhere / name).write_text("precious")
        os.symlink(elsewhere / name, out / name)
    assert sanitize(published["data"], out) == 0
    for name in names:
        assert (elsewhere / name).read_text() == "precious", f"the run wrote through the link {name}"
    assert not (out / "provenance.json").is_symlink() and load_manifest(out).rows > 0
