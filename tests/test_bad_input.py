"""Bad input: file-level problems stop the run (exit 2, a clear message, nothing published);
row-level problems quarantine the row with a reason and the run goes on (nothing dropped)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, read_dir, reasons_of, run_cli, synthetic_rows
from sanitizer.data.reasons import parse as parse_reasons

RID = "rid"


def run(inp, out, *extra):
    return run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "-q", *extra)


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + "\n")
    return path


def csv_rows(rid, X, label):
    return [[int(r), *(repr(float(v)) for v in x), int(lab)] for r, x, lab in zip(rid, X, label)]


@pytest.fixture(scope="module")
def good_parquet(tmp_path_factory):
    rid, X, label = synthetic_rows(300)
    path = tmp_path_factory.mktemp("good") / "good.parquet"
    pq.write_table(pa.table({RID: rid, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": label}), path)
    return path


# --------------------------------------------------------------------------- run-level problems: exit 2


def expect_refusal(capsys, out, args, *fragments):
    rc = run(*args) if args and not str(args[0]).startswith("--") else run_cli("run", *args)
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    err = captured.err
    assert err.startswith("sanitize: error: "), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "Traceback" not in err
    assert not (out / "manifest.json").exists()
    return err


def test_missing_label_column(tmp_path, good_parquet, capsys):
    out = tmp_path / "out"
    rc = run_cli("run", "--input", good_parquet, "--output", out, "--label-column", "target")
    err = capsys.readouterr().err
    assert rc == 2
    assert "label column 'target' is not in the input" in err
    assert "rid, a, b, c, label" in err and "--label-column" in err
    assert not (out / "manifest.json").exists()


def test_unknown_feature_column(tmp_path, good_parquet, capsys):
    out = tmp_path / "out"
    expect_refusal(capsys, out, [good_parquet, out, "--feature-columns", "a,zzz"],
                   "feature column 'zzz' is not in the input", "--feature-columns")


def test_text_feature_column(tmp_path, capsys):
    """Categories and prose may be named in --feature-columns (judged by their codes, and through the text
    representation); short free text that grows with the rows (names, keys) may not."""
    from sanitizer.beam.plan import make_plan
    from sanitizer.settings.config import build_config

    path = tmp_path / "text.parquet"
    words = [f"a free text comment number {i} about this row" for i in range(60)]
    names = [f"name-{i}" for i in range(60)]
    pq.write_table(pa.table({"note": words, "who": names, "a": np.arange(60.0), "label": [0, 1] * 30}), path)
    plan = make_plan(build_config({"input": str(path), "output": str(tmp_path / "o"), "label_column": "label",
                                   "feature_columns": ["note"]}))
    assert [(c.name, c.reason) for c in plan.carried] == [("note", "prose")]
    out = tmp_path / "out"
    expect_refusal(capsys, out, [path, out, "--feature-columns", "who"], "feature column 'who' is short free text",
                   "--column-kind who=categorical")


def test_empty_directory(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    expect_refusal(capsys, out, [empty, out], str(empty), "matched no .parquet, .csv, .jsonl or .tfrecord files")


def test_directory_of_unsupported_files(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "notes.txt").write_text("hello\n")
    out = tmp_path / "out"
    expect_refusal(capsys, out, [d, out], "matched no .parquet, .csv, .jsonl or .tfrecord files", "notes.txt")


def test_csv_with_only_a_header(tmp_path, capsys):
    path = write_csv(tmp_path / "header.csv", [RID, "a", "b", "label"], [])
    out = tmp_path / "out"
    expect_refusal(capsys, out, [path, out], "header.csv", "no header or no rows")


def test_empty_parquet(tmp_path, capsys):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"a": pa.array([], pa.float64()), "label": pa.array([], pa.int64())}), path)
    out = tmp_path / "out"
    expect_refusal(capsys, out, [path, out], "has no rows")


def test_corrupt_parquet(tmp_path, capsys):
    path = tmp_path / "x.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "out"
    expect_refusal(capsys, out, [path, out], "x.parquet", "not a readable Parquet file")


def test_corrupt_parquet_among_good_shards(tmp_path, good_parquet, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.parquet").write_bytes(good_parquet.read_bytes())
    (d / "b.parquet").write_bytes(b"PAR1" + b"\x00" * 100)
    out = tmp_path / "out"
    expect_refusal(capsys, out, [d, out], "b.parquet", "not a readable Parquet file")


def test_unknown_cli_flag(tmp_path, good_parquet, capsys):
    out = tmp_path / "out"
    expect_refusal(capsys, out, [good_parquet, out, "--bogus-flag", "1"], "unknown option '--bogus-flag'")
    assert not out.exists()


def test_missing_required_flag(tmp_path, good_parquet, capsys):
    out = tmp_path / "out"
    rc = run_cli("run", "--input", good_parquet, "--output", out)
    err = capsys.readouterr().err
    assert rc == 2 and "label_column is required" in err and "--label-column" in err
    assert not out.exists()


def test_missing_input_path(tmp_path, capsys):
    out = tmp_path / "out"
    expect_refusal(capsys, out, [tmp_path / "nope.parquet", out], "nope.parquet")


def test_shards_with_different_columns(tmp_path, good_parquet, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.parquet").write_bytes(good_parquet.read_bytes())
    t = pq.read_table(good_parquet).drop_columns(["c"])
    pq.write_table(t, d / "b.parquet")
    out = tmp_path / "out"
    expect_refusal(capsys, out, [d, out], "b.parquet", "lacks column(s) ['c']")


# --------------------------------------------------------------------------- row-level problems: quarantined


def finished(out, all_ids, id_column=RID):
    """Check a finished run: exit 0 happened, manifest written, every input row in exactly one output."""
    assert (out / "manifest.json").is_file()
    clean = read_dir(out / "clean")
    q = read_dir(out / "quarantine")
    clean_ids = clean.column(id_column).to_pylist()
    q_ids = q.column(id_column).to_pylist()
    assert len(clean_ids) + len(q_ids) == len(all_ids)
    assert sorted(clean_ids + q_ids) == sorted(all_ids)
    prov = load_json(out / "provenance.json")
    assert prov["counts"]["rows_in"] == len(all_ids)
    assert prov["accounting"]["holds"] is True
    return clean, q, reasons_of(q, id_column)


def reason_entries(q, rid, id_column=RID):
    ids = q.column(id_column).to_pylist()
    return parse_reasons(q.column("sanitizer_reasons")[ids.index(rid)].as_py())


def test_csv_non_numeric_value_is_quarantined(tmp_path, caplog):
    rid, X, label = synthetic_rows(300)
    rows = csv_rows(rid, X, label)
    rows[7][1] = "abc"
    path = write_csv(tmp_path / "data.csv", [RID, "a", "b", "c", "label"], rows)
    out = tmp_path / "out"
    assert run(path, out, "--id-column", RID) == 0
    clean, q, reasons = finished(out, rid.tolist())
    assert reasons[7] == ["invalid:non_numeric:a"]
    entry = reason_entries(q, 7)[0]
    assert entry["detector"] == "validation" and entry["score"] is None
    assert 7 not in clean.column(RID).to_pylist()
    # The text column is still used as a feature: the warning says so.
    assert any("'a'" in r.getMessage() and "invalid:non_numeric" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def nonfinite_run(tmp_path_factory):
    """One Parquet file with NaN, +inf, -inf in feature columns and a null label."""
    rid, X, label = synthetic_rows(300, seed=1)
    X[3, 0] = np.nan
    X[4, 1] = np.inf
    X[5, 2] = -np.inf
    labels = pa.array([None if i == 6 else int(v) for i, v in enumerate(label)], type=pa.int64())
    d = tmp_path_factory.mktemp("nonfinite")
    path = d / "data.parquet"
    pq.write_table(pa.table({RID: rid, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": labels}), path)
    out = d / "out"
    rc = run(path, out, "--id-column", RID)
    return rc, out, rid.tolist()


@pytest.mark.parametrize(
    "row,code",
    [(4, "invalid:inf:b"), (5, "invalid:inf:c"), (6, "invalid:null:label")],
)
def test_parquet_nonfinite_and_null_label_are_quarantined(nonfinite_run, row, code):
    rc, out, all_ids = nonfinite_run
    assert rc == 0
    clean, q, reasons = finished(out, all_ids)
    assert reasons[row] == [code]
    assert row not in clean.column(RID).to_pylist()
    entry = reason_entries(q, row)[0]
    assert entry["detector"] == "validation" and entry["code"] == code


def test_a_missing_feature_value_is_reported_and_the_row_stays_clean(nonfinite_run):
    """NaN is a missing value, not poison: the row is judged with the sample's median and published."""
    rc, out, all_ids = nonfinite_run
    clean, q, reasons = finished(out, all_ids)
    assert 3 not in reasons
    row = clean.column(RID).to_pylist().index(3)
    assert np.isnan(clean.column("a")[row].as_py())  # published as the user wrote it
    counts = load_json(out / "provenance.json")["counts"]
    assert counts["by_reason"]["missing:a"] == 1 and counts["reported_kept_clean"] >= 1


def test_invalid_rows_are_counted(nonfinite_run):
    _, out, _ = nonfinite_run
    counts = load_json(out / "provenance.json")["counts"]
    assert counts["invalid"] == 3
    assert counts["by_reason"]["invalid:inf:b"] == 1
    assert counts["by_reason"]["invalid:inf:c"] == 1
    assert counts["by_reason"]["invalid:null:label"] == 1
    # Invalid rows never reach the detector; the row with a missing value does.
    assert counts["by_detector"]["outlier"]["scored"] == 297
    q = read_dir(out / "quarantine")
    scores = dict(zip(q.column(RID).to_pylist(), q.column("sanitizer_score_outlier").to_pylist()))
    for row in (4, 5, 6):
        assert scores[row] is None or np.isnan(scores[row])


def test_null_id_is_quarantined(tmp_path):
    rid, X, label = synthetic_rows(200)
    ids = pa.array([None if i == 9 else f"r{i}" for i in rid], type=pa.string())
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"name": ids, "a": X[:, 0], "b": X[:, 1], "label": label}), path)
    out = tmp_path / "out"
    assert run(path, out, "--id-column", "name") == 0
    clean = read_dir(out / "clean")
    q = read_dir(out / "quarantine")
    assert clean.num_rows + q.num_rows == 200
    assert None in q.column("name").to_pylist()
    codes = reasons_of(q, "name")[None]
    assert codes == ["invalid:null:name"]


def test_multi_file_csv_with_text_in_a_later_file(tmp_path):
    rid, X, label = synthetic_rows(300, seed=2)
    rows = csv_rows(rid, X, label)
    rows[250][2] = "abc"  # column b, in the second file
    d = tmp_path / "in"
    write_csv(d / "part-0.csv", [RID, "a", "b", "c", "label"], rows[:150])
    write_csv(d / "part-1.csv", [RID, "a", "b", "c", "label"], rows[150:])
    out = tmp_path / "out"
    assert run(d, out, "--id-column", RID) == 0
    clean, q, reasons = finished(out, rid.tolist())
    assert reasons[250] == ["invalid:non_numeric:b"]
    entry = reason_entries(q, 250)[0]
    assert entry["evidence"]["value"] == "abc"
    assert entry["evidence"]["column"] == "b"
    # No type holds both files' b as written: it is text in the outputs, each value as written.
    assert clean.schema.field("b").type == pa.string()
    assert q.column("b").to_pylist()[q.column(RID).to_pylist().index(250)] == "abc"
    assert dict(zip(clean.column(RID).to_pylist(), clean.column("b").to_pylist()))[0] == rows[0][2]
    prov = load_json(out / "provenance.json")
    assert [i["rows"] for i in prov["inputs"]] == [150, 150]


def test_multi_file_csv_generated_ids_are_per_file(tmp_path):
    rid, X, label = synthetic_rows(200, seed=4)
    rows = [r[1:] for r in csv_rows(rid, X, label)]
    d = tmp_path / "in"
    write_csv(d / "x.csv", ["a", "b", "c", "label"], rows[:120])
    write_csv(d / "y.csv", ["a", "b", "c", "label"], rows[120:])
    out = tmp_path / "out"
    assert run(d, out) == 0
    expected = [f"x.csv:{i}" for i in range(120)] + [f"y.csv:{i}" for i in range(80)]
    finished(out, expected, id_column="sanitizer_id")


def test_jsonl_input_works(tmp_path):
    rid, X, label = synthetic_rows(300, seed=3)
    path = tmp_path / "data.jsonl"
    with open(path, "w") as fh:
        for r, x, lab in zip(rid, X, label):
            b = None if r == 11 else x[1]  # a JSON null in a numeric feature
            fh.write(json.dumps({RID: int(r), "a": x[0], "b": b, "c": x[2], "label": int(lab)}) + "\n")
    out = tmp_path / "out"
    assert run(path, out, "--id-column", RID) == 0
    clean, q, reasons = finished(out, rid.tolist())
    assert 11 not in reasons  # a null feature value is missing, reported, kept clean
    assert load_json(out / "provenance.json")["counts"]["by_reason"]["missing:b"] == 1
    assert clean.schema.field("a").type == pa.float64()
    assert clean.column_names == [RID, "a", "b", "c", "label"]


def test_jsonl_non_numeric_value_is_quarantined(tmp_path):
    """sources.py promises a value that cannot take the planned type is quarantined, not fatal."""
    rid, X, label = synthetic_rows(300, seed=5)
    path = tmp_path / "data.jsonl"
    with open(path, "w") as fh:
        for r, x, lab in zip(rid, X, label):
            a = "abc" if r == 40 else x[0]
            fh.write(json.dumps({RID: int(r), "a": a, "b": x[1], "c": x[2], "label": int(lab)}) + "\n")
    out = tmp_path / "out"
    assert run(path, out, "--id-column", RID) == 0
    _, _, reasons = finished(out, rid.tolist())
    assert reasons[40] == ["invalid:non_numeric:a"]


def test_nothing_dropped_with_many_problems_at_once(tmp_path):
    rid, X, label = synthetic_rows(300, seed=6)
    rows = csv_rows(rid, X, label)
    rows[1][1] = "abc"
    rows[2][2] = ""  # null feature
    rows[3][4] = ""  # null label
    rows[4][3] = "inf"
    path = write_csv(tmp_path / "mixed.csv", [RID, "a", "b", "c", "label"], rows)
    out = tmp_path / "out"
    # For a trainer that cannot take nulls: a missing feature value quarantines its row.
    assert run(path, out, "--id-column", RID, "--missing-features", "quarantine") == 0
    _, _, reasons = finished(out, rid.tolist())
    assert reasons[1] == ["invalid:non_numeric:a"]
    assert reasons[2] == ["invalid:null:b"]
    assert reasons[3] == ["invalid:null:label"]
    assert reasons[4] == ["invalid:inf:c"]
    assert os.path.exists(out / "manifest.json")


def test_csv_non_numeric_value_beyond_the_first_read_block_is_quarantined(tmp_path):
    """Same contract as above when the bad value sits past the CSV reader's first 4 MiB block."""
    n = 130_000
    rng = np.random.default_rng(7)
    X = np.round(rng.normal(size=(n, 3)), 6)
    path = tmp_path / "big.csv"
    lines = [f"{i},{x[0]:.6f},{x[1]:.6f},{x[2]:.6f},{i % 3}" for i, x in enumerate(X)]
    bad = n - 10
    lines[bad] = f"{bad},abc,{X[bad, 1]:.6f},{X[bad, 2]:.6f},{bad % 3}"
    path.write_text("rid,a,b,c,label\n" + "\n".join(lines) + "\n")
    assert path.stat().st_size > (1 << 22) + (1 << 19)
    out = tmp_path / "out"
    config = tmp_path / "outlier-only.yaml"  # the CSV reader is under test: random labels need no label detectors
    config.write_text("detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
                      "  backdoor: {enabled: false}\n")
    assert run(path, out, "--id-column", RID, "--sample-size", "2000", "--config", config) == 0
    clean = read_dir(out / "clean")
    q = read_dir(out / "quarantine")
    assert clean.num_rows + q.num_rows == n
    assert reasons_of(q, RID)[bad] == ["invalid:non_numeric:a"]
