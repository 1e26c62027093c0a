"""Fault injection on review decisions: content that changes under an id, concurrent reviewers, hostile ids.

Real runs through ``sanitizer.cli.main.main`` on 300 synthetic rows (outlier detector only, so a run takes
seconds) with a few planted outliers. The faults:

- a record is released, then different content is written at the same position of the input (generated
  ids are ``<file>:<row>``, so the new content gets the old id): the release must not follow the id. A
  rerun with ``--decisions`` quarantines the new content again and provenance counts the decision as
  stale; ``review show`` / ``review list`` say the decision no longer matches; ``publish`` does not apply it.
  A decision line written by an older sanitizer (no ``content_sha256``) is never applied either;
- two reviewers recording decisions at the same moment, locally and on an object store without append
  (a Beam filesystem registered here whose reads wait for each other, so a read-modify-write loses one
  reviewer's decisions every time): every decision is kept;
- record ids (and reviewer names, reasons) holding terminal escape sequences and bidi overrides: nothing
  the CLI prints carries the raw control characters.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.localfilesystem import LocalFileSystem

from sanitizer import review as rv
from conftest import load_json, read_dir, run_cli, synthetic_rows

CONFIG = "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
OUTLIERS = (5, 7, 9, 11)  # planted far from every class centre
HOSTILE_ID = "\x1b[2J\x1b]0;pwn\x07"
BIDI_ID = "\u202egnp.exe"


def write_input(path: Path, changed: dict[int, float] | None = None, ids: list[str] | None = None) -> Path:
    """300 rows (a, b, c, label); planted outliers at OUTLIERS; ``changed``: row -> new outlier value."""
    _, X, y = synthetic_rows(300, seed=0)
    for i, row in enumerate(OUTLIERS):
        X[row] = 40.0 + 10 * i
    for row, value in (changed or {}).items():
        X[row] = value
    cols = {}
    if ids is not None:
        cols["rid"] = pa.array(ids, type=pa.string())
    cols.update({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": pa.array(y, type=pa.int64())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)
    return path


def sanitize(inp: Path, out: Path, *extra) -> int:
    config = out.parent / "fast.yaml"
    config.write_text(CONFIG)
    return run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--config", config,
                   "--seed", "0", "-q", *extra)


def quarantined(out: Path, id_column: str = "sanitizer_id") -> dict[str, list[str]]:
    q = read_dir(out / "quarantine")
    return dict(zip(q.column(id_column).to_pylist(), q.column("sanitizer_reason_codes").to_pylist()))


def rid(row: int) -> str:
    return f"data.parquet:{row}"


# --------------------------------------------------------------------------- 6: decisions bound to content


@pytest.fixture(scope="module")
def changed_rerun(tmp_path_factory):
    """Run; release rows 5, 7; a legacy (unbound) release of row 9; new content at row 5; rerun in place."""
    d = tmp_path_factory.mktemp("bound")
    inp = write_input(d / "in" / "data.parquet")
    out = d / "out"
    assert sanitize(inp, out) == 0
    first = quarantined(out)
    assert {rid(r) for r in OUTLIERS} <= set(first), first
    assert run_cli("review", out, "release", rid(5), rid(7), "--reason", "looks fine", "--reviewer", "ana") == 0
    assert run_cli("review", out, "confirm", rid(11), "--reason", "poison", "--reviewer", "ana") == 0
    legacy = out / "review" / "decisions.jsonl"  # a line written before decisions carried a content hash
    legacy.write_text(json.dumps({"id": rid(9), "decision": "release", "reason": "old", "reviewer": "old",
                                  "time": "2026-01-01T00:00:00Z"}) + "\n")
    # the same position now holds other content (still far out): the generated id is the same
    write_input(inp, changed={5: -55.0})
    assert sanitize(inp, out, "--overwrite", "--decisions", out) == 0
    return {"out": out, "inp": inp}


def test_release_does_not_follow_new_content_at_the_same_id(changed_rerun):
    held = quarantined(changed_rerun["out"])
    assert "outlier" in held[rid(5)]  # new content: the old release no longer applies
    assert rid(7) not in held  # same content: the release still holds
    assert "outlier" in held[rid(9)]  # an unbound (legacy) release is never applied
    assert held[rid(11)] == ["outlier", "review:confirmed"]
    applied = load_json(changed_rerun["out"] / "provenance.json")["decisions"]["applied"]
    assert applied["released_kept_clean"] == 1
    assert applied["stale"] == 2 and applied["stale_unbound"] == 1
    assert applied["confirmed_held"] == 1
    described = load_json(changed_rerun["out"] / "provenance.json")["decisions"]
    assert described["unbound"] == 1 and described["records"] == 4
    assert "2 decisions not applied (made for other content" in (changed_rerun["out"] / "report.html").read_text()


def test_quarantine_shards_carry_the_content_hash(changed_rerun):
    q = read_dir(changed_rerun["out"] / "quarantine")
    hashes = q.column(rv.CONTENT_COLUMN).to_pylist()
    originals = q.select(["a", "b", "c", "label"])
    assert hashes == rv.content_sha256(originals)
    assert all(len(h) == 64 for h in hashes) and len(set(hashes)) == len(hashes)


def test_review_show_and_list_say_a_decision_no_longer_matches(changed_rerun, capsys):
    out = changed_rerun["out"]
    capsys.readouterr()
    assert run_cli("review", out, "show", rid(5)) == 0
    text = capsys.readouterr().out
    assert "no longer matches" in text and "release by ana" in text
    assert run_cli("review", out, "show", rid(9)) == 0
    assert "no content hash" in capsys.readouterr().out
    assert run_cli("review", out, "show", rid(11)) == 0
    assert "status: confirmed by ana" in capsys.readouterr().out
    assert run_cli("review", out, "list", "--status", "stale", "--json") == 0
    stale = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["id"] for r in stale} == {rid(5), rid(9)}
    assert run_cli("review", out, "list") == 0
    table = capsys.readouterr().out
    assert "2 stale" in table
    row5 = next(line for line in table.splitlines() if line.startswith(rid(5) + " "))
    assert " stale " in row5


def test_publish_skips_a_stale_decision(changed_rerun, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(changed_rerun["out"], out)
    # the rerun already applied these decisions; one more decision makes something new to publish
    assert run_cli("review", out, "confirm", rid(11), "--reason", "still poison") == 0
    assert run_cli("publish", out) == 0
    manifest = load_json(out / "manifest.json")
    record = load_json(out / manifest["publication"]["record"]["path"])
    why = {n["id"]: n["why"] for n in record["not_applied"]}
    assert "content" in why[rid(5)] and "no content hash" in why[rid(9)]
    assert record["counts"]["released"] == 0
    assert not manifest["publication"]["released_shards"]


def test_a_new_release_binds_to_the_new_content(changed_rerun, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(changed_rerun["out"], out)
    assert run_cli("review", out, "release", rid(5), "--reason", "the new one is fine too") == 0
    capsys.readouterr()
    assert run_cli("review", out, "show", rid(5)) == 0
    assert "status: released" in capsys.readouterr().out
    assert run_cli("publish", out) == 0
    clean = read_dir(out / "clean").column("sanitizer_id").to_pylist()
    assert rid(5) in clean


# --------------------------------------------------------------------------- 14: concurrent reviewers


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("writers")
    inp = write_input(d / "in" / "data.parquet")
    out = d / "out"
    assert sanitize(inp, out) == 0
    return out


class _GatedFS(LocalFileSystem):
    """``gatedfs://`` + a local path: a Beam filesystem like an object store (no append; reads of
    ``*decisions*`` wait until two readers are in), so two writers always see the same old file."""

    gate: threading.Barrier | None = None

    @classmethod
    def scheme(cls):
        return "gatedfs"

    @staticmethod
    def _local(path: str) -> str:
        return path[len("gatedfs://"):] if path.startswith("gatedfs://") else path

    def join(self, basepath, *paths):
        return "gatedfs://" + super().join(self._local(basepath), *paths)

    def split(self, path):
        head, tail = super().split(self._local(path))
        return "gatedfs://" + head, tail

    def mkdirs(self, path):
        return super().mkdirs(self._local(path))

    def has_dirs(self):
        return True

    def _list(self, dir_or_prefix):
        for meta in super()._list(self._local(dir_or_prefix)):
            yield type(meta)("gatedfs://" + meta.path, meta.size_in_bytes, meta.last_updated_in_seconds)

    def match(self, patterns, limits=None):
        results = super().match([self._local(p) for p in patterns], limits)
        for result in results:
            result.pattern = "gatedfs://" + result.pattern
            result.metadata_list = [type(m)("gatedfs://" + m.path, m.size_in_bytes, m.last_updated_in_seconds)
                                    for m in result.metadata_list]
        return results

    def create(self, path, *args, **kwargs):
        os.makedirs(os.path.dirname(self._local(path)), exist_ok=True)
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        if "decisions" in path and self.gate is not None:
            try:
                self.gate.wait(timeout=5)  # a sync aid: proceed alone if the other reader never comes
            except threading.BrokenBarrierError:
                pass
        return super().open(self._local(path), *args, **kwargs)

    def copy(self, sources, destinations):
        return super().copy([self._local(p) for p in sources], [self._local(p) for p in destinations])

    def rename(self, sources, destinations):
        return super().rename([self._local(p) for p in sources], [self._local(p) for p in destinations])

    def exists(self, path):
        return super().exists(self._local(path))

    def size(self, path):
        return super().size(self._local(path))

    def last_updated(self, path):
        return super().last_updated(self._local(path))

    def checksum(self, path):
        return super().checksum(self._local(path))

    def metadata(self, path):
        return super().metadata(self._local(path))

    def delete(self, paths):
        return super().delete([self._local(p) for p in paths])


def _record_together(out: str, ids: list[str]) -> list[BaseException]:
    errors: list[BaseException] = []

    def work(i: str):
        try:
            rv.record_decisions(out, [i], rv.CONFIRM, f"poison {i}", reviewer=f"r-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("where", ["local", "object store"])
def test_two_reviewers_at_once_keep_every_decision(plain_run, tmp_path, where):
    out = tmp_path / "out"
    shutil.copytree(plain_run, out)
    assert rv.record_decisions(str(out), [rid(5)], rv.RELEASE, "fine", reviewer="first")  # an earlier batch
    first_batch = {p: p.read_bytes() for p in (out / "review").rglob("*.jsonl")}
    target = str(out) if where == "local" else "gatedfs://" + str(out)
    ids = [rid(7), rid(9)]
    _GatedFS.gate = threading.Barrier(len(ids)) if where != "local" else None
    try:
        errors = _record_together(target, ids)
    finally:
        _GatedFS.gate = None
    assert not errors, errors
    decisions = rv.load_output_decisions(str(out))
    assert set(decisions.latest) == {rid(5), *ids}
    assert {r["reviewer"] for r in decisions.latest.values()} == {"first", "r-" + ids[0], "r-" + ids[1]}
    for path, data in first_batch.items():  # a batch is written once and never rewritten
        assert path.read_bytes() == data
    assert len(list((out / "review" / "decisions").glob("*.jsonl"))) == 3


def test_run_accepts_a_decisions_file_a_folder_or_out(plain_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(plain_run, out)
    rv.record_decisions(str(out), [rid(5)], rv.RELEASE, "fine", reviewer="a")
    rv.record_decisions(str(out), [rid(7)], rv.CONFIRM, "bad", reviewer="b")
    folder = out / "review" / "decisions"
    one = sorted(folder.glob("*.jsonl"))[0]
    for path, expected in ((out, {rid(5), rid(7)}), (out / "review", {rid(5), rid(7)}),
                           (folder, {rid(5), rid(7)}), (one, {rid(5)})):
        assert set(rv.load_decisions(str(path)).latest) == expected, path
    with pytest.raises(rv.ConfigError, match="does not exist"):
        rv.load_decisions(str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------- 11: hostile text on the terminal


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    ids = [f"r{i}" for i in range(300)]
    ids[5], ids[7] = HOSTILE_ID, BIDI_ID
    inp = write_input(d / "in" / "data.parquet", ids=ids)
    out = d / "out"
    assert sanitize(inp, out, "--id-column", "rid") == 0
    assert {HOSTILE_ID, BIDI_ID} <= set(quarantined(out, "rid"))
    return out


RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def test_review_cli_escapes_control_characters(hostile_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(hostile_run, out)
    capsys.readouterr()
    assert run_cli("review", out, "release", HOSTILE_ID, "--reason", "fine\x1b[31m red", "--reviewer",
                   "eve\x9b2J") == 0
    printed = [capsys.readouterr().out]
    for args in (("list",), ("show", HOSTILE_ID), ("show", BIDI_ID), ("list", "--status", "released")):
        assert run_cli("review", out, *args) == 0
        printed.append(capsys.readouterr().out)
    for text in printed:
        assert not any(c in text for c in RAW), text
    assert "\\x1b[2J\\x1b]0;pwn\\x07" in printed[1] and "\\u202egnp.exe" in printed[1]
    assert printed[2].startswith("record \\x1b[2J\\x1b]0;pwn\\x07")
    assert "eve\\x9b2J" in printed[2] and "fine\\x1b[31m red" in printed[2]
    assert "\\u202egnp.exe" in printed[3]
    assert run_cli("publish", out) == 0
    assert not any(c in capsys.readouterr().out for c in RAW)


def test_escape_helper_and_run_summary():
    from sanitizer.cli.summary import summary_lines
    from sanitizer.cli.terminal import printable

    assert printable("a\x00b\tc\nd\x7fe\x85f\u2066g\u202ah") == "a\\x00b\\x09c\\x0ad\\x7fe\\x85f\\u2066g\\u202ah"
    assert printable("digit-00042 é 数") == "digit-00042 é 数"
    provenance = {"run_id": "r", "runner": "DirectRunner", "counts": {"by_reason": {"invalid:nan:\x1b[2J": 3}},
                  "detectors": {"outlier": {"status": "skipped", "reason": "no\x1b]0;x\x07"}}}
    text = "\n".join(summary_lines(provenance, "out"))
    assert "\x1b" not in text and "\x07" not in text and "invalid:nan:\\x1b[2J" in text


def test_run_error_messages_escape_data(tmp_path, capsys):
    """An error that quotes the input's column names (here: a missing label) never prints their raw bytes."""
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "\x1b[2J\x1b]0;pwn\x07": [0, 1]}), data)
    assert run_cli("run", "--input", data, "--output", tmp_path / "out", "--label-column", "label") == 2
    err = capsys.readouterr().err
    assert err.startswith("sanitize: error: label column 'label' is not in the input")
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J\\x1b]0;pwn\\x07" in err
