"""Human review end to end: run, list / show, release / confirm, publish, and a rerun with --decisions.

Real runs through ``sanitizer.cli.main.main`` on 600 digits with planted outliers and label flips. The
first run's output is never changed; every test that records decisions works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import digit_ids, load_json, read_dir, run_cli, sha256_file, write_digits_parquet

from sanitizer.data.reasons import parse as parse_reasons
from sanitizer.simulate import flip_labels, inject_outliers

ID = "image_id"
N = 600


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits):
    X, y = digits
    X, y = X[:N], y[:N]
    Xp, outliers = inject_outliers(X, 0.03, seed=0, kind="uniform")
    yp, flips = flip_labels(y, 0.03, seed=1)
    ids = digit_ids(N)
    path = write_digits_parquet(tmp_path_factory.mktemp("review-in") / "digits.parquet", Xp, yp, ids)
    return {"path": path, "ids": list(ids), "outliers": set(ids[outliers]), "flips": set(ids[flips])}


def run(data, out, *extra):
    return run_cli("run", "--input", data["path"], "--output", out, "--label-column", "label",
                   "--id-column", ID, "--seed", "0", "-q", *extra)


@pytest.fixture(scope="module")
def first(tmp_path_factory, data):
    """One sanitize run (default detectors); its folder is read-only for the tests."""
    out = tmp_path_factory.mktemp("review-run") / "out"
    assert run(data, out) == 0
    q = read_dir(out / "quarantine")
    codes = dict(zip(q.column(ID).to_pylist(), q.column("sanitizer_reason_codes").to_pylist()))
    return {"out": out, "codes": codes, "table": q}


def review(out, *args):
    return run_cli("review", out, *args)


def copy_run(first, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(first["out"], out)
    return out


def list_json(capsys, out, *filters) -> list[dict]:
    capsys.readouterr()
    assert review(out, "list", "--json", *filters) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def pick(codes: dict, want, n: int, exclude=()) -> list[str]:
    chosen = [i for i, c in sorted(codes.items()) if want(c) and i not in exclude][:n]
    assert len(chosen) == n, f"not enough quarantined records for this test: {codes}"
    return chosen


# --------------------------------------------------------------------------- list / show


def test_list_shows_every_quarantined_record(first, capsys):
    capsys.readouterr()
    assert review(first["out"], "list") == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "LABEL", "STATUS", "REASONS", "SCORES"]
    for rid, codes in first["codes"].items():
        line = next(line for line in lines if line.startswith(rid + " "))
        assert "pending" in line and ",".join(codes) in line and "outlier=" in line
    assert f"{len(first['codes'])} shown of {len(first['codes'])} matching" in text


def test_list_filters_combine(first, capsys):
    q = first["table"]
    rows = q.select([ID, "label", "sanitizer_reason_codes", "sanitizer_reasons"]).to_pylist()
    every = list_json(capsys, first["out"])
    assert {r["id"] for r in every} == set(first["codes"])

    outlier = list_json(capsys, first["out"], "--reason", "outlier")
    assert {r["id"] for r in outlier} == {r[ID] for r in rows if "outlier" in r["sanitizer_reason_codes"]}
    assert outlier and all("outlier" in r["codes"] for r in outlier)

    label = str(rows[0]["label"])
    by_class = list_json(capsys, first["out"], "--class", label)
    assert by_class and {r["id"] for r in by_class} == {r[ID] for r in rows if str(r["label"]) == label}

    def flagged_score(row, detector):
        return [e["score"] for e in parse_reasons(row["sanitizer_reasons"]) if e["detector"] == detector]

    scores = sorted(s for r in rows for s in flagged_score(r, "outlier"))
    cut = scores[len(scores) // 2]
    high = list_json(capsys, first["out"], "--detector", "outlier", "--min-score", str(cut))
    assert {r["id"] for r in high} == {r[ID] for r in rows if any(s >= cut for s in flagged_score(r, "outlier"))}
    assert 0 < len(high) < len(outlier)

    both = list_json(capsys, first["out"], "--detector", "outlier", "--min-score", str(cut), "--class", label)
    assert {r["id"] for r in both} == {r["id"] for r in high} & {r["id"] for r in by_class}

    assert len(list_json(capsys, first["out"], "--limit", "2")) == 2
    assert list_json(capsys, first["out"], "--reason", "no-such-code") == []


def test_show_prints_columns_reasons_and_evidence(first, capsys):
    rid = pick(first["codes"], lambda c: "outlier" in c, 1)[0]
    row = next(r for r in first["table"].to_pylist() if r[ID] == rid)
    capsys.readouterr()
    assert review(first["out"], "show", rid) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"record {rid}")
    assert "status: pending review" in text
    assert f"  label     {row['label']}" in text and "  pixels    [" in text
    assert "outlier  (detector outlier, score" in text and "evidence:" in text
    assert "extreme_features:" in text and "typical_range" in text and "signals:" in text and "nearest:" in text


def test_show_unknown_id(first, capsys):
    capsys.readouterr()
    assert review(first["out"], "show", "digit-99999") == 2
    assert "digit-99999" in capsys.readouterr().err


# --------------------------------------------------------------------------- decisions and publishing


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, first, data):
    """Release, confirm, change a mind, publish; then one more release and a second publication."""
    out = tmp_path_factory.mktemp("review-pub") / "out"
    shutil.copytree(first["out"], out)
    codes = first["codes"]
    first_two = [pick(codes, lambda c: "outlier" in c and "label_flip" not in c, 1)[0],
                 pick(codes, lambda c: "label_flip" in c and "outlier" not in c, 1)[0]]
    flip_only = pick(codes, lambda c: c == ["label_flip"], 3, exclude=first_two)
    release = first_two + [flip_only[0]]
    changed_mind = flip_only[1]  # released, then confirmed: the later line wins
    confirm = [pick(codes, lambda c: "outlier" in c, 1, exclude=release)[0], flip_only[2]]
    old_manifest = (out / "manifest.json").read_bytes()

    assert review(out, "release", *release, changed_mind, "--reason", "looks fine to me", "--reviewer", "ana") == 0
    assert review(out, "confirm", *confirm, "--reason", "poison") == 0
    assert review(out, "confirm", changed_mind, "--reason", "second look: poison", "--reviewer", "bo") == 0
    assert run_cli("publish", out) == 0
    first_manifest = (out / "manifest.json").read_bytes()
    assert run_cli("publish", out) == 0  # nothing new: no new publication
    unchanged = (out / "manifest.json").read_bytes() == first_manifest
    later = pick(codes, lambda c: "label_flip" in c, 1, exclude=release + confirm + [changed_mind])[0]
    assert review(out, "release", later, "--reason", "a clean 4") == 0
    assert run_cli("publish", out) == 0
    return {"out": out, "release": release, "confirm": confirm + [changed_mind], "later": later,
            "old_manifest": old_manifest, "first_manifest": first_manifest, "republish_unchanged": unchanged,
            "manifest": load_json(out / "manifest.json")}


def decision_files(out) -> list[Path]:
    """The decision files of ``out``, in reading order (one per release/confirm command)."""
    return sorted((out / "review" / "decisions").glob("*.jsonl"))


def decisions_sha256(out) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in decision_files(out))).hexdigest()


def decisions_lines(out) -> list[dict]:
    return [json.loads(line) for p in decision_files(out) for line in p.read_text().splitlines()]


def test_decisions_file_keeps_history(reviewed, first):
    lines = decisions_lines(reviewed["out"])
    assert len(lines) == 4 + 2 + 1 + 1
    for line in lines:
        assert set(line) == {"id", "decision", "reason", "reviewer", "time", "run_id", "content_sha256"}
        assert line["time"].endswith("Z") and line["reason"]
    run_id = load_json(first["out"] / "manifest.json")["run_id"]
    assert {line["run_id"] for line in lines} == {run_id}
    assert [line["reviewer"] for line in lines[:4]] == ["ana"] * 4
    changed = [line for line in lines if line["id"] == reviewed["confirm"][-1]]
    assert [c["decision"] for c in changed] == ["release", "confirm"]
    assert lines[4]["reviewer"]  # default: $USER / the login name


def test_list_reflects_decisions(reviewed, capsys):
    released = list_json(capsys, reviewed["out"], "--status", "released")
    assert {r["id"] for r in released} == set(reviewed["release"]) | {reviewed["later"]}
    confirmed = list_json(capsys, reviewed["out"], "--status", "confirmed")
    assert {r["id"] for r in confirmed} == set(reviewed["confirm"])
    capsys.readouterr()
    assert review(reviewed["out"], "show", reviewed["confirm"][-1]) == 0
    text = capsys.readouterr().out
    assert "status: confirmed by bo" in text and "second look: poison" in text
    assert "release by ana: looks fine to me" in text and "confirm by bo" in text


def _verify_manifest(out: Path, manifest: dict) -> tuple[set, set]:
    """Every shard's sha256 and rows match its file; return (clean ids, quarantine ids)."""
    ids = {}
    for part in ("clean", "quarantine"):
        ids[part] = []
        for shard in manifest[part]["shards"]:
            path = out / shard["path"]
            assert sha256_file(path) == shard["sha256"]
            assert pq.read_metadata(path).num_rows == shard["rows"]
            assert path.stat().st_size == shard["bytes"]
            ids[part] += pq.read_table(path, columns=[ID]).column(0).to_pylist()
    assert manifest["clean"]["rows"] == sum(s["rows"] for s in manifest["clean"]["shards"]) == len(ids["clean"])
    return set(ids["clean"]), set(ids["quarantine"])


def test_published_manifest(reviewed, first, data):
    out, m = reviewed["out"], reviewed["manifest"]
    released = set(reviewed["release"]) | {reviewed["later"]}
    clean, quarantine_files = _verify_manifest(out, m)
    assert released <= clean
    assert not set(reviewed["confirm"]) & clean
    held = quarantine_files - released
    assert not clean & held and clean | held == set(data["ids"])
    provenance = load_json(out / "provenance.json")
    assert provenance["accounting"]["input_rows"] == N == m["clean"]["rows"] + m["quarantine"]["rows"]
    assert m["quarantine"]["rows"] == len(held) and m["quarantine"]["released_rows"] == len(released)

    # the released rows: original columns only, the clean shards' schema
    pub = m["publication"]
    assert pub["released_shards"] and len(pub["released_shards"]) == 1
    shard = out / pub["released_shards"][0]
    assert shard.parent.name == "clean" and shard.name.startswith("part-released-")
    base = out / "clean" / "part-00000-of-00001.parquet"
    assert str(pq.read_schema(shard).remove_metadata()) == str(pq.read_schema(base).remove_metadata())
    assert pq.ParquetFile(shard).schema.equals(pq.ParquetFile(base).schema)
    table = pq.read_table(shard)
    assert set(table.column(ID).to_pylist()) == released
    original = first["table"].filter(pc.is_in(first["table"].column(ID), pa.array(sorted(released))))
    assert sorted(table.select([ID, "label"]).to_pylist(), key=str) == sorted(
        original.select([ID, "label"]).to_pylist(), key=str)

    assert pub["id"] == m["run_id"] != load_json(first["out"] / "manifest.json")["run_id"]
    assert pub["source_run_id"] == provenance["run_id"]
    assert pub["decisions"]["sha256"] == decisions_sha256(out)
    assert sha256_file(out / pub["record"]["path"]) == pub["record"]["sha256"]
    assert m["provenance"]["sha256"] == sha256_file(out / "provenance.json")  # provenance.json untouched


def test_publication_record_and_superseded_manifests(reviewed, first):
    out, m = reviewed["out"], reviewed["manifest"]
    assert reviewed["republish_unchanged"]
    run_id = load_json(first["out"] / "manifest.json")["run_id"]
    first_pub = json.loads(reviewed["first_manifest"])
    # the run's manifest and the first publication's are both kept, byte for byte, and still verify
    assert (out / f"manifest-{run_id}.json").read_bytes() == reviewed["old_manifest"]
    assert (out / f"manifest-{first_pub['run_id']}.json").read_bytes() == reviewed["first_manifest"]
    clean, _ = _verify_manifest(out, first_pub)
    assert reviewed["later"] not in clean and set(reviewed["release"]) <= clean
    _verify_manifest(out, json.loads(reviewed["old_manifest"]))
    assert m["publication"]["supersedes"]["manifest"] == f"manifest-{first_pub['run_id']}.json"
    assert first_pub["publication"]["supersedes"]["manifest"] == f"manifest-{run_id}.json"

    record = load_json(out / m["publication"]["record"]["path"])
    assert {r["id"] for r in record["applied"]["released"]} == set(reviewed["release"]) | {reviewed["later"]}
    assert {r["id"] for r in record["applied"]["confirmed"]} == set(reviewed["confirm"])
    assert record["counts"]["released"] == 4 and record["counts"]["confirmed"] == 3
    assert record["counts"]["pending"] == len(first["codes"]) - 7
    assert record["accounting"]["holds"] and record["accounting"]["input_rows"] == N
    assert record["decisions"]["sha256"] == m["publication"]["decisions"]["sha256"]


# --------------------------------------------------------------------------- a rerun honours the decisions


@pytest.fixture(scope="module")
def rerun(tmp_path_factory, reviewed, data):
    """The same input again with the decisions, label_flip off (so two confirmed records go unflagged)."""
    d = tmp_path_factory.mktemp("review-rerun")
    config = d / "sanitize.yaml"
    config.write_text("detectors:\n  label_flip:\n    enabled: false\n")
    decisions = reviewed["out"] / "review" / "decisions"
    out = d / "out"
    rc = run(data, out, "--config", config, "--decisions", decisions)
    return {"rc": rc, "out": out, "decisions": decisions}


def test_rerun_keeps_released_clean_and_confirmed_held(rerun, reviewed):
    assert rerun["rc"] == 0
    out = rerun["out"]
    clean = set(read_dir(out / "clean").column(ID).to_pylist())
    q = read_dir(out / "quarantine")
    held = dict(zip(q.column(ID).to_pylist(), q.column("sanitizer_reason_codes").to_pylist()))
    released = set(reviewed["release"]) | {reviewed["later"]}
    assert released <= clean
    for rid in reviewed["confirm"]:
        assert "review:confirmed" in held[rid]
    reasons = {r[ID]: parse_reasons(r["sanitizer_reasons"]) for r in q.select([ID, "sanitizer_reasons"]).to_pylist()}
    unflagged = [rid for rid in reviewed["confirm"] if held[rid] == ["review:confirmed"]]
    assert len(unflagged) == 2  # label_flip-only records: nothing flags them now, the review holds them
    entry = reasons[reviewed["confirm"][-1]][-1]
    assert entry["detector"] == "review" and entry["code"] == "review:confirmed"
    assert entry["evidence"]["reason"] == "second look: poison" and entry["evidence"]["reviewer"] == "bo"


def test_rerun_provenance_counts_decisions(rerun, reviewed):
    p = load_json(rerun["out"] / "provenance.json")
    d = p["decisions"]
    assert d["sha256"] == decisions_sha256(reviewed["out"]) and d["files"] == 4
    assert d["lines"] == 8 and d["records"] == 7 and d["release"] == 4 and d["confirm"] == 3
    applied = d["applied"]
    assert applied["released_seen"] == applied["released_kept_clean"] == 4
    assert applied["confirmed_held"] == 3 and applied["confirmed_held_unflagged"] == 2
    # the released outlier record was flagged again: overridden, still counted; label_flip is off in the
    # rerun, so it overrides nothing
    assert applied["released_overridden"] >= 1
    assert applied["overridden_flags"].get("outlier", 0) >= 1 and "label_flip" not in applied["overridden_flags"]
    assert p["counts"]["by_reason"]["review:confirmed"] == 3
    assert p["accounting"]["holds"] and p["config"]["decisions"] == str(rerun["decisions"])


# --------------------------------------------------------------------------- refusals: exit 2, nothing written


def test_unknown_id_records_nothing(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    known = sorted(first["codes"])[0]
    assert not (out / "review").exists()
    capsys.readouterr()
    assert review(out, "release", known, "digit-99999", "--reason", "x") == 2
    err = capsys.readouterr().err
    assert err.startswith("sanitize: error:") and "'digit-99999'" in err and "nothing was recorded" in err
    assert not decision_files(out)

    assert review(out, "confirm", known, "--reason", "poison") == 0
    before = {p: p.read_bytes() for p in decision_files(out)}
    clean_id = next(i for i in load_clean_ids(out))
    assert review(out, "confirm", sorted(first["codes"])[1], clean_id, "--reason", "poison") == 2
    assert repr(clean_id) in capsys.readouterr().err
    assert {p: p.read_bytes() for p in decision_files(out)} == before


def load_clean_ids(out) -> list[str]:
    return read_dir(out / "clean").column(ID).to_pylist()


def test_reason_is_required(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    rid = sorted(first["codes"])[0]
    with pytest.raises(SystemExit) as info:
        review(out, "release", rid)
    assert info.value.code == 2 and "--reason" in capsys.readouterr().err
    assert review(out, "release", rid, "--reason", "   ") == 2
    assert not decision_files(out)


def test_broken_decisions_line_stops_everything(first, data, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    ids = sorted(first["codes"])
    assert review(out, "release", ids[0], "--reason", "fine") == 0
    (path,) = decision_files(out)
    with path.open("a") as fh:
        fh.write('{"id": "%s", "decision": "maybe", "reason": "r", "reviewer": "x", "time": "2026-01-01T00:00:00Z"}\n'
                 % ids[1])
    broken = path.read_bytes()
    capsys.readouterr()

    # a run with these decisions (config key) refuses before anything runs
    config = tmp_path / "sanitize.yaml"
    config.write_text(f"decisions: {path}\n")
    out2 = tmp_path / "out2"
    assert run(data, out2, "--config", config) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "unknown decision 'maybe'" in err and str(path) in err
    assert not out2.exists()

    # so do review and publish; the file is never rewritten, and no new one is written
    assert review(out, "confirm", ids[2], "--reason", "poison") == 2
    assert "line 2" in capsys.readouterr().err
    manifest = (out / "manifest.json").read_bytes()
    assert run_cli("publish", out) == 2
    assert "line 2" in capsys.readouterr().err
    assert path.read_bytes() == broken and (out / "manifest.json").read_bytes() == manifest
    assert decision_files(out) == [path]

    for bad, what in (("not json", "not valid JSON"), ('{"id": "a", "decision": "release"}', "missing field(s) reason"),
                      ("[1, 2]", "expected a JSON object")):
        path.write_bytes(broken.splitlines(keepends=True)[0] + b"\n" + bad.encode() + b"\n")
        assert run(data, out2, "--decisions", path) == 2
        err = capsys.readouterr().err
        assert "line 3" in err and what in err, err
        assert not out2.exists()


def test_publish_without_decisions(first, tmp_path, capsys):
    out = copy_run(first, tmp_path)
    manifest = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert run_cli("publish", out) == 2
    assert "nothing to publish" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in out.iterdir()) == [
        "clean", "lineage.json", "manifest.json", "provenance.json", "quarantine", "report.html",
    ]


# --------------------------------------------------------------------------- the policy rule itself


def test_release_never_overrides_a_failed_row_check():
    """decide(): released rows stay clean unless they failed a row check; confirmed rows are held."""
    from sanitizer.detectors import Scores
    from sanitizer.beam.policy import decide
    from sanitizer.data.batch import KEY_COLUMN, FeatureColumn
    from sanitizer.data.extract import extract
    from sanitizer.review import ReviewDecisions, content_sha256

    table = pa.table({"rid": ["a", "b", "c", "d"], "x": [1.0, float("inf"), 3.0, 4.0], "label": [0, 1, 0, 1],
                      KEY_COLUMN: pa.array(np.arange(4, dtype=np.uint64))})
    content = content_sha256(table)  # decisions are bound to the rows' content
    ex = extract(table, [FeatureColumn("x", 1)], "label", "rid")
    assert list(ex.checks.valid) == [True, False, True, True]
    flagged = np.array([True, False, False])  # detector flags a (valid rows: a, c, d)
    results = {"outlier": Scores(np.array([9.0, 0.0, 0.0]), flagged, 5.0, {0: {}})}
    t = "2026-01-01T00:00:00Z"
    decisions = ReviewDecisions.from_records("d.jsonl", "0" * 64, [
        {"id": "a", "decision": "release", "reason": "r", "reviewer": "x", "time": t, "content_sha256": content[0]},
        {"id": "b", "decision": "release", "reason": "r", "reviewer": "x", "time": t, "content_sha256": content[1]},
        {"id": "d", "decision": "confirm", "reason": "r", "reviewer": "x", "time": t, "content_sha256": content[3]},
    ])
    d = decide(4, ex.checks, results, {"outlier": "quarantine"}, decisions, np.array(["a", "b", "c", "d"], dtype=object),
               np.array(content, dtype=object))
    assert list(d.quarantine) == [False, True, False, True]
    assert list(d.overridden) == [True, False, False, False]
    assert list(d.held_by_review) == [False, False, False, True]
    assert [r["code"] for r in d.reasons[3]] == ["review:confirmed"]
