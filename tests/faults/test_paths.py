"""Fault suite: input discovery and output-folder safety (issue 10, defects 1, 2, 3 and 8).

Each test builds real files in tmp_path and runs the real CLI (or the real
``discover``). What they pin:

* ``--overwrite`` replaces only what a sanitize run provably wrote (its manifest,
  provenance, publication records or run marker name it); a folder that holds
  no run, or a foreign file inside ``clean/`` / ``quarantine/``, is refused with
  nothing deleted. Reviewers' decisions (``review/``) survive an overwrite.
* A path that exists literally is read literally, whatever glob characters its
  name holds; anything else is a glob. An output path with glob characters is
  refused (Beam's file sinks would treat it as a pattern and delete a sibling
  run's shards).
* A file reached twice (a symlinked mirror) is read once, with a warning naming
  both paths; two different files with identical bytes are refused.
* An output folder inside the input, or an input glob that reaches the output,
  is refused before anything is written or deleted.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from sanitizer.errors import ConfigError, InputError
from sanitizer.io.discover import discover
from conftest import load_json, read_dir, run_cli, write_rows
from conftest import sanitize_quiet as sanitize

N = 240




def snapshot(root) -> dict[str, str]:
    """relative path -> sha256 (or '<dir>') of everything under root, symlinks not followed."""
    root = Path(root)
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        found[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One finished run in runs/run1, read from a directory whose name holds glob characters.

    ``data`` is a plain-named copy of the same rows, for the reruns of the overwrite tests.
    """
    base = tmp_path_factory.mktemp("paths")
    bracketed = write_rows(base / "inp" / "set[1]" / "part.parquet")
    write_rows(base / "inp" / "set1" / "other.parquet", seed=5)  # what a glob 'set[1]' would read instead
    out = base / "runs" / "run1"
    rc = sanitize(bracketed.parent, out)
    data = base / "plain" / "part.parquet"
    data.parent.mkdir()
    shutil.copy(bracketed, data)
    return {"rc": rc, "base": base, "bracketed": bracketed, "data": data, "out": out}


def copy_run(published, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(published["out"], out, symlinks=True)
    return out


# --------------------------------------------------------------------------- defect 2: glob characters


def test_directory_with_glob_characters_is_read_literally(published):
    """The run read exactly inp/set[1]/ (a glob would have read inp/set1/)."""
    assert published["rc"] == 0
    prov = load_json(published["out"] / "provenance.json")
    assert [i["uri"] for i in prov["inputs"]] == [str(published["bracketed"])]
    assert prov["counts"]["rows_in"] == N
    assert prov["inputs"][0]["modified_at"].startswith("20")  # recorded at planning, checked before publishing


@pytest.mark.parametrize("name", ["set[1]", "set*", "set?", "set]1", "s[e]t*?"])
def test_discover_reads_a_literal_directory(tmp_path, name):
    wanted = write_rows(tmp_path / name / "a.parquet", n=9)
    for sibling in ("set1", "setX", "set", "s", "set]1x", "set[1]x"):
        if sibling != name:
            write_rows(tmp_path / sibling / "b.parquet", n=9)
    files = discover(str(tmp_path / name))
    assert [f.path for f in files] == [str(wanted)]
    assert [f.relpath for f in files] == ["a.parquet"]


def test_discover_reads_a_literal_file_with_glob_characters(tmp_path):
    wanted = write_rows(tmp_path / "data[1].parquet", n=9)
    write_rows(tmp_path / "data1.parquet", n=9)
    assert [f.path for f in discover(str(wanted))] == [str(wanted)]
    starred = write_rows(tmp_path / "x*.parquet", n=9)
    write_rows(tmp_path / "xy.parquet", n=9)
    assert [f.path for f in discover(str(starred))] == [str(starred)]


def test_a_path_that_does_not_exist_is_a_glob(tmp_path):
    a = write_rows(tmp_path / "set1" / "a.parquet", n=9)
    b = write_rows(tmp_path / "setX" / "b.parquet", n=9)
    write_rows(tmp_path / "set[1]" / "c.parquet", n=9)
    everything = sorted([str(tmp_path / "set[1]" / "c.parquet"), str(a), str(b)])
    assert [f.path for f in discover(str(tmp_path / "set*" / "*.parquet"))] == everything
    # 'set[1]/*.parquet' does not exist literally: a glob, where [1] is a character class
    assert [f.path for f in discover(str(tmp_path / "set[1]" / "*.parquet"))] == [str(a)]
    with pytest.raises(InputError, match="does not exist"):
        discover(str(tmp_path / "nothing-here"))


def test_relative_file_and_glob(tmp_path, monkeypatch):
    """A bare file name and a glob without a folder resolve against the working directory."""
    write_rows(tmp_path / "data.parquet", n=9)
    monkeypatch.chdir(tmp_path)
    assert [f.relpath for f in discover("data.parquet")] == ["data.parquet"]
    assert [f.relpath for f in discover("*.parquet")] == ["data.parquet"]


@pytest.mark.parametrize("name", ["run[1]", "run*", "run?"])
def test_output_with_glob_characters_is_refused_and_sibling_run_survives(published, name, capsys):
    out = published["out"].parent / name
    before = snapshot(published["out"])
    capsys.readouterr()
    assert sanitize(published["data"], out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "glob" in err and name in err and "Traceback" not in err
    assert snapshot(published["out"]) == before, "the published sibling run1 was changed"
    assert not out.exists()


# --------------------------------------------------------------------------- defect 1: overwrite only our own run


def test_overwrite_refuses_a_folder_that_holds_no_run(published, tmp_path, capsys):
    proj = tmp_path / "proj"
    write_rows(proj / "clean" / "mine.parquet", n=30)
    (proj / "quarantine").mkdir()
    (proj / "quarantine" / "notes.csv").write_text("a,b\n1,2\n")
    (proj / "manifest-2024.json").write_text('{"mine": true}')
    before = snapshot(proj)
    assert sanitize(published["data"], proj, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "no sanitize run" in err and str(proj) in err and "Traceback" not in err
    assert snapshot(proj) == before


def test_issue_command_input_inside_output_is_refused(tmp_path, capsys):
    """`sanitize run --input proj/clean --output proj --overwrite` deleted the user's input."""
    proj = tmp_path / "proj"
    write_rows(proj / "clean" / "train.parquet")
    before = snapshot(proj)
    assert sanitize(proj / "clean", proj, "--overwrite") == 2
    err = capsys.readouterr().err
    assert str(proj / "clean") in err and str(proj) in err and "Traceback" not in err
    assert snapshot(proj) == before


def test_overwrite_refuses_a_foreign_file_in_clean(published, tmp_path, capsys):
    out = copy_run(published, tmp_path)
    (out / "clean" / "notes.txt").write_text("mine")
    write_rows(out / "quarantine" / "extra.parquet", n=20)
    before = snapshot(out)
    assert sanitize(published["data"], out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "clean/notes.txt" in err and "quarantine/extra.parquet" in err and "Traceback" not in err
    assert snapshot(out) == before


def test_overwrite_refuses_work_folder_without_our_marker(published, tmp_path, capsys):
    out = tmp_path / "killed"
    (out / "_work").mkdir(parents=True)
    (out / "_work" / "stats.json").write_text("{}")
    before = snapshot(out)
    assert sanitize(published["data"], out, "--overwrite") == 2
    assert "_work" in capsys.readouterr().err
    assert snapshot(out) == before


def test_overwrite_after_a_failed_run(published, tmp_path):
    """A run that failed (provenance.json, no manifest) is ours: --overwrite replaces it."""
    out = copy_run(published, tmp_path)
    (out / "manifest.json").unlink()
    (out / "notes.txt").write_text("the user's, outside our folders: kept")
    assert sanitize(published["data"], out, "--overwrite") == 0
    assert (out / "manifest.json").is_file() and (out / "notes.txt").read_text().startswith("the user's")


def test_overwrite_replaces_a_published_review_output(published, tmp_path):
    """After review + publish, --overwrite removes the released shard and superseded manifests, keeps decisions."""
    out = copy_run(published, tmp_path)
    id_column = load_json(out / "provenance.json")["columns"]["id"]  # write_rows' counter 'rid', inferred
    qid = str(read_dir(out / "quarantine").column(id_column).to_pylist()[0])
    assert run_cli("review", out, "release", qid, "--reason", "false alarm", "--reviewer", "ana") == 0
    assert run_cli("publish", out) == 0
    assert list((out / "clean").glob("part-released-*.parquet")) and list(out.glob("manifest-*.json"))
    review = snapshot(out / "review")
    assert review, "the review left no record in review/"

    assert sanitize(published["data"], out, "--overwrite") == 0
    manifest = load_json(out / "manifest.json")
    assert "publication" not in manifest
    on_disk = sorted(str(p.relative_to(out)) for p in (out / "clean").iterdir())
    assert on_disk == sorted(s["path"] for s in manifest["clean"]["shards"])
    assert not list(out.glob("manifest-*.json"))
    assert snapshot(out / "review") == review, "a reviewer's decisions (review/) were changed"
    assert not (out / ".sanitizer-run.json").exists() and not (out / "_work").exists()


# --------------------------------------------------------------------------- defect 3: symlinks and copies


def test_symlinked_mirror_is_read_once(tmp_path):
    """The issue's case: a symlinked mirror of a folder inside the input counted every row twice."""
    inp = tmp_path / "inp"
    write_rows(inp / "a" / "part.parquet")
    (inp / "mirror").symlink_to(inp / "a", target_is_directory=True)
    (inp / "alias.parquet").symlink_to(inp / "a" / "part.parquet")
    out = tmp_path / "out"
    assert sanitize(inp, out) == 0
    prov = load_json(out / "provenance.json")
    assert prov["counts"]["rows_in"] == N
    assert prov["accounting"]["clean_rows"] + prov["accounting"]["quarantined_rows"] == N
    assert [i["relpath"] for i in prov["inputs"]] == ["a/part.parquet"]
    warned = "\n".join(w for w in prov["warnings"] if "same file" in w)
    assert str(inp / "mirror" / "part.parquet") in warned and str(inp / "alias.parquet") in warned


def test_symlink_cycle_does_not_hang_discovery(tmp_path):
    inp = tmp_path / "inp"
    data = write_rows(inp / "a" / "part.parquet", n=9)
    (inp / "a" / "loop").symlink_to(inp, target_is_directory=True)
    (inp / "x").mkdir()
    (inp / "x" / "to-y").symlink_to(inp / "y", target_is_directory=True)
    (inp / "y").mkdir()
    (inp / "y" / "to-x").symlink_to(inp / "x", target_is_directory=True)
    files = discover(str(inp))
    assert [f.path for f in files] == [str(data)]


def test_identical_copies_are_refused(tmp_path, capsys):
    inp = tmp_path / "inp"
    data = write_rows(inp / "part.parquet")
    (inp / "backup").mkdir()
    shutil.copy(data, inp / "backup" / "part.parquet")
    out = tmp_path / "out"
    assert sanitize(inp, out) == 2
    err = capsys.readouterr().err
    assert "identical" in err and str(data) in err and str(inp / "backup" / "part.parquet") in err
    assert not out.exists()


# --------------------------------------------------------------------------- defect 8: input and output overlap


def test_output_inside_input_folder_is_refused(published, tmp_path, capsys):
    data = tmp_path / "data"
    write_rows(data / "part.parquet")
    out = data / "out"
    shutil.copytree(published["out"], out)  # an earlier run there: --overwrite must not touch it
    before = snapshot(data)
    assert sanitize(data, out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "inside" in err and str(data) in err and str(out) in err
    assert snapshot(data) == before


@pytest.mark.parametrize("pattern, out_name", [("**.parquet", "out"), ("*", "new")])
def test_input_glob_reaching_the_output_is_refused(published, tmp_path, capsys, pattern, out_name):
    work = tmp_path / "work"
    write_rows(work / "part.parquet")
    out = work / out_name
    shutil.copytree(published["out"], out)
    before = snapshot(work)
    assert sanitize(str(work / pattern), out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert str(out) in err and pattern in err and "Traceback" not in err
    assert snapshot(work) == before


def test_output_beside_input_is_fine(tmp_path):
    """A sibling output folder and a glob that cannot reach it are not refused."""
    work = tmp_path / "work"
    write_rows(work / "part.parquet", n=9)
    from sanitizer.runs.claim import check_paths

    files = discover(str(work / "*.parquet"))
    check_paths(str(work / "*.parquet"), str(tmp_path / "out"), files)
    check_paths(str(work), str(tmp_path / "work2"), files)
    with pytest.raises(ConfigError, match="inside"):
        check_paths(str(work), str(work / "sub" / "out"), files)
