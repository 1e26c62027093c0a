"""``sanitize review OUT import FILE``: a decisions file as report.html's "Download decisions" saves it.

One real run through ``sanitizer.cli.main.main`` on 500 digits with planted outliers, label flips and two
rows with a NaN pixel (they fail a row check). Its output is never changed; every test that imports
works on its own copy. Decision files are built the way the page builds them: the quarantine's ids and
content hashes, read from the quarantine Parquet.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import digit_ids, load_json, read_dir, run_cli, write_digits_parquet

from sanitizer.review import import_decisions
from sanitizer.simulate import flip_labels, inject_outliers

ID = "image_id"
N = 500
NAN_ROWS = (10, 20)


@pytest.fixture(scope="module")
def first(tmp_path_factory, digits):
    """One sanitize run; its folder is read-only for the tests."""
    X, y = digits
    X, _ = inject_outliers(X[:N], 0.03, seed=0, kind="uniform")
    y, _ = flip_labels(y[:N], 0.03, seed=1)
    X = X.copy()
    for row in NAN_ROWS:
        X[row, 5] = np.nan
    d = tmp_path_factory.mktemp("import-run")
    path = write_digits_parquet(d / "digits.parquet", X, y, digit_ids(N))
    out = d / "out"
    assert run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", ID,
                   "--seed", "0", "-q") == 0
    q = read_dir(out / "quarantine")
    rows = q.select([ID, "sanitizer_reason_codes", "sanitizer_content_sha256"]).to_pylist()
    codes = {r[ID]: r["sanitizer_reason_codes"] for r in rows}
    broken = sorted(i for i, c in codes.items() if any(code.startswith("invalid:") for code in c))
    assert broken == [f"digit-{r:05d}" for r in NAN_ROWS], codes
    flagged = sorted(i for i in codes if i not in broken)
    assert len(flagged) >= 8, codes
    return {"out": out, "run_id": load_json(out / "manifest.json")["run_id"], "broken": broken, "flagged": flagged,
            "content": {r[ID]: r["sanitizer_content_sha256"] for r in rows}, "codes": codes}


def copy_run(first, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(first["out"], out)
    return out


def decision(first, rid, kind, minute=0, **changes) -> dict:
    """One line as the page writes it."""
    line = {"id": rid, "decision": kind, "reason": f"{kind}: looked at it", "reviewer": "ana",
            "time": f"2026-11-29T08:{minute:02d}:00.123Z", "run_id": first["run_id"],
            "content_sha256": first["content"].get(rid, "0" * 64)}
    line.update(changes)
    return {k: v for k, v in line.items() if v is not None}


def write_file(path: Path, lines) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def decision_files(out) -> list[Path]:
    return sorted((out / "review" / "decisions").glob("*.jsonl"))


def import_cli(capsys, out, path) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = run_cli("review", out, "import", path)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def published_ids(out) -> tuple[set, set]:
    """(clean ids, held ids) of the shards manifest.json lists (the quarantine shards stay as the run wrote
    them, released rows included: held = quarantined and not in a clean shard)."""
    manifest = load_json(out / "manifest.json")
    ids = {}
    for part in ("clean", "quarantine"):
        ids[part] = {i for shard in manifest[part]["shards"]
                     for i in pq.read_table(out / shard["path"], columns=[ID]).column(0).to_pylist()}
    return ids["clean"], ids["quarantine"] - ids["clean"]


# --------------------------------------------------------------------------- taking a file in


def test_import_then_publish_applies_the_decisions(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    release, confirm = first["flagged"][:3], first["flagged"][3:5] + first["broken"][:1]
    lines = [decision(first, rid, "release", n) for n, rid in enumerate(release)]
    lines += [decision(first, rid, "confirm", 10 + n, reviewer="bo") for n, rid in enumerate(confirm)]
    path = write_file(tmp_path / "decisions.jsonl", lines)

    rc, text, err = import_cli(capsys, out, path)
    assert rc == 0 and not err
    assert f"took 6 of 6 decision line(s) from {path} (3 release, 3 confirm) into run {first['run_id']}" in text
    assert "refused" not in text and "already recorded" not in text
    assert text.rstrip().endswith(f"'sanitize publish {out}' publishes a manifest with the decisions applied")
    (written,) = decision_files(out)
    assert f"recorded in {written}" in text
    # the lines keep their own reviewer, time, reason and run_id: the file holds them as the page wrote them
    assert [json.loads(line) for line in written.read_text().splitlines()] == lines

    capsys.readouterr()
    assert run_cli("review", out, "list", "--json", "--status", "released") == 0
    assert {json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()} == set(release)

    assert run_cli("publish", out) == 0
    clean, held = published_ids(out)
    assert set(release) <= clean and not set(confirm) & clean
    assert set(confirm) <= held and not set(release) & held
    assert len(clean) + len(held) == N


def test_importing_the_same_file_again_takes_nothing_new(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    path = write_file(tmp_path / "decisions.jsonl",
                      [decision(first, first["flagged"][0], "release"), decision(first, first["flagged"][1], "confirm"),
                       decision(first, first["flagged"][1], "confirm")])  # a repeated line is taken once
    rc, text, _ = import_cli(capsys, out, path)
    assert rc == 0 and "took 2 of 3" in text and "already recorded: 1 line(s)" in text
    before = {p: p.read_bytes() for p in decision_files(out)}
    assert len(before) == 1

    rc, text, err = import_cli(capsys, out, path)
    assert rc == 0 and not err
    assert "took nothing" in text and "nothing was written" in text and "already recorded: 3 line(s)" in text
    assert {p: p.read_bytes() for p in decision_files(out)} == before

    result = import_decisions(str(out), str(path))
    assert (result.taken, result.refused, result.already, result.written) == ([], [], 3, None)


def test_bad_lines_are_refused_one_by_one_and_good_ones_taken(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    f = first["flagged"]
    other_run = "20990101T000000Z-0123456789"
    lines = [
        decision(first, f[0], "release"),                                        # 1 taken
        decision(first, f[1], "confirm", 1),                                     # 2 taken
        decision(first, "digit-99999", "release"),                               # 3 unknown id
        "",                                                                      # 4 blank: skipped
        decision(first, f[2], "release", content_sha256="ab" * 32),              # 5 changed record
        decision(first, f[3], "release", content_sha256=None),                   # 6 no hash
        decision(first, f[4], "maybe"),                                          # 7 bad decision word
        f'{{"id": "{f[5]}", "decision": "rel',                                   # 8 broken JSON
        decision(first, first["broken"][0], "release"),                          # 9 release of a failed row check
        decision(first, f[6], "release", 9, run_id=other_run),                   # 10 taken: other run, same content
        decision(first, f[7], "confirm", time="yesterday", reason=""),           # 11 two problems at once
        "[1, 2]",                                                                # 12 not an object
    ]
    path = write_file(tmp_path / "page.jsonl", lines)
    rc, text, err = import_cli(capsys, out, path)
    assert rc == 2 and not err
    assert "took 3 of 11 decision line(s)" in text and "(2 release, 1 confirm)" in text
    assert "refused 8 line(s); the other 3 line(s) were taken and recorded" in text
    said = {int(line.split(":")[0].split()[1]): line for line in text.splitlines() if line.startswith("  line ")}
    assert sorted(said) == [3, 5, 6, 7, 8, 9, 11, 12]
    assert "unknown id 'digit-99999'" in said[3] and f"sanitize review {out} list" in said[3]
    assert (f"record '{f[2]}' changed since the decision" in said[5] and "ab" * 32 in said[5]
            and first["content"][f[2]] in said[5])
    assert "carries no content_sha256" in said[6]
    assert "unknown decision 'maybe'" in said[7] and "release or confirm" in said[7]
    assert "not valid JSON" in said[8]
    codes = ", ".join(first["codes"][first["broken"][0]])
    assert f"cannot release '{first['broken'][0]}': it failed row checks ({codes})" in said[9]
    assert "time must be an ISO 8601 time" in said[11] and "reason must be a non-empty text" in said[11]
    assert "expected a JSON object, got list" in said[12]
    assert f"1 line(s) taken were decided on run {other_run}" in text
    assert f"'sanitize publish {out}'" in text

    (written,) = decision_files(out)
    assert [json.loads(line) for line in written.read_text().splitlines()] == [lines[0], lines[1], lines[9]]

    result = import_decisions(str(out), str(path))  # again: the good lines are recorded, the bad ones still refused
    assert result.already == 3 and not result.taken and result.written is None
    assert [(n, rid) for n, rid, _ in result.refused] == [
        (3, "digit-99999"), (5, f[2]), (6, f[3]), (7, f[4]), (8, None), (9, first["broken"][0]), (11, f[7]), (12, None)]
    assert result.other_runs == {} and result.lines == 11
    assert run_cli("publish", out) == 0
    clean, _ = published_ids(out)
    assert {f[0], f[6]} <= clean and not {f[1], f[2], f[3], first["broken"][0]} & clean


def test_an_older_import_over_a_later_decision_is_noted(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    rid = first["flagged"][0]
    assert run_cli("review", out, "confirm", rid, "--reason", "poison", "--reviewer", "bo") == 0
    path = write_file(tmp_path / "old.jsonl", [decision(first, rid, "release", time="2020-01-01T00:00:00Z")])
    rc, text, _ = import_cli(capsys, out, path)
    assert rc == 0 and "took 1 of 1" in text
    assert f"note: line 1 (release of '{rid}', 2020-01-01T00:00:00Z) is now the latest decision" in text
    assert "over the later confirm by bo" in text


# --------------------------------------------------------------------------- errors: exit 2, nothing written


def test_a_missing_or_unreadable_file_is_a_clean_error(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    rc, text, err = import_cli(capsys, out, tmp_path / "nope.jsonl")
    assert rc == 2 and not text
    assert err.startswith("sanitize: error: decisions file") and "does not exist" in err and "Traceback" not in err
    rc, _, err = import_cli(capsys, out, tmp_path)  # a folder
    assert rc == 2 and err.startswith("sanitize: error: cannot read decisions file") and "Traceback" not in err
    rc, _, err = import_cli(capsys, tmp_path / "no-run", write_file(tmp_path / "d.jsonl", []))
    assert rc == 2 and "holds no published run" in err
    assert not (out / "review").exists()


def test_refuses_while_out_decisions_do_not_parse(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    folder = out / "review" / "decisions"
    folder.mkdir(parents=True)
    (folder / "20260101T000000.000000Z-broken.jsonl").write_text("not json\n")
    path = write_file(tmp_path / "d.jsonl", [decision(first, first["flagged"][0], "release")])
    rc, text, err = import_cli(capsys, out, path)
    assert rc == 2 and not text and "line 1" in err and "not valid JSON" in err
    assert [p.name for p in decision_files(out)] == ["20260101T000000.000000Z-broken.jsonl"]


def test_an_empty_file_writes_nothing(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    rc, text, _ = import_cli(capsys, out, write_file(tmp_path / "empty.jsonl", ["", "  "]))
    assert rc == 0 and "holds no decision lines; nothing was written" in text
    assert not decision_files(out)
