"""Great Expectations integration: row-level expectations quarantine rows with a reason, data-set-level
expectations stop (or warn about) publication, bad suites are refused before anything runs, results land
in OUT/validation/ (as JSON; no Data Docs), and ``sanitize profile`` writes a suite the same data passes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, read_dir, reasons_of, run_cli
from sanitizer.data.reasons import parse as parse_reasons

RID = "rid"
REPO = Path(__file__).resolve().parents[1]
DEMO_SUITE = REPO / "validations" / "digits_demo.json"

# The slower detectors are not the point here; the outlier detector stays on (rows failing checks must skip it).
FAST_CONFIG = "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"

BETWEEN_A = "validation:expect_column_values_to_be_between:a"
NOT_NULL_LABEL = "validation:expect_column_values_to_not_be_null:label"
IN_SET_LABEL = "validation:expect_column_values_to_be_in_set:label"
REGEX_TAG = "validation:expect_column_values_to_match_regex:tag"

ROW_SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 0, "max_value": 10}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1, 2]}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "tag", "regex": "^t-[0-9]+$"}},
]


# --------------------------------------------------------------------------- helpers


def make_rows(n: int, seed: int) -> dict[str, list]:
    """A well-behaved 3-class data set: a in [1, 9], b class-dependent, c standard normal, tag 't-<i>'."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 3
    return {
        RID: list(range(n)),
        "a": rng.uniform(1.0, 9.0, n).tolist(),
        "b": (np.array([0.0, 3.0, 6.0])[label] + rng.normal(size=n)).tolist(),
        "c": rng.normal(size=n).tolist(),
        "tag": [f"t-{i}" for i in range(n)],
        "label": label.tolist(),
    }


def write_parquet(path: Path, cols: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            RID: pa.array(cols[RID], pa.int64()),
            "a": pa.array(cols["a"], pa.float64()),
            "b": pa.array(cols["b"], pa.float64()),
            "c": pa.array(cols["c"], pa.float64()),
            "tag": pa.array(cols["tag"], pa.string()),
            "label": pa.array(cols["label"], pa.int64()),
        }
    )
    pq.write_table(table, path)
    return path


def write_csv(path: Path, cols: dict[str, list]) -> Path:
    """CSV with empty cells for None (a null value) and repr() floats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [RID, "a", "b", "c", "tag", "label"]

    def cell(v):
        if v is None:
            return ""
        return repr(float(v)) if isinstance(v, float) else str(v)

    lines = [",".join(names)] + [",".join(cell(cols[c][i]) for c in names) for i in range(len(cols[RID]))]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_suite(path: Path, expectations: list[dict], name: str = "test_suite", meta: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "expectations": expectations, "meta": meta or {}}, indent=2))
    return path


def write_config(path: Path, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAST_CONFIG + extra)
    return path


def sanitize(inp, out, suite, config, *extra) -> int:
    return run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", RID,
                   "--expectations", suite, "--config", config, "-q", *extra)


def reasons_json(q: pa.Table) -> dict:
    """Record id -> parsed sanitizer_reasons list."""
    ids = q.column(RID).to_pylist()
    return dict(zip(ids, (parse_reasons(r) for r in q.column("sanitizer_reasons").to_pylist())))


def failed_checks(provenance: dict) -> list[tuple[str, str, str | None]]:
    return [(c["on"], c["expectation"], c["column"]) for c in provenance["validation"]["checks"] if not c["success"]]


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------- row-level expectations

N_ROWS = 300
# Record id -> the reason codes that row must carry (and nothing else: a row failing a check skips the detectors).
PLANTED = {
    10: {BETWEEN_A},  # a = 50 (first batch)
    20: {NOT_NULL_LABEL, "invalid:null:label"},  # a null label is also a row check of its own
    30: {IN_SET_LABEL},  # label 7
    40: {REGEX_TAG},  # tag 'BAD TAG'
    130: {REGEX_TAG},  # tag 'x-130', in a later batch (scoring.batch_rows: 64)
    250: {BETWEEN_A},  # a = -1, last batch
}
BOTH_ROW = 50  # a = -5 (between) AND a NaN / null feature b (missing: reported; the row check holds the row)
BOTH_CODES = {"parquet": {BETWEEN_A, "missing:b"}, "csv": {BETWEEN_A, "missing:b"}}


def planted_rows() -> dict[str, list]:
    cols = make_rows(N_ROWS, seed=0)
    cols["a"][10] = 50.0
    cols["label"][20] = None
    cols["label"][30] = 7
    cols["tag"][40] = "BAD TAG"
    cols["tag"][130] = "x-130"
    cols["a"][250] = -1.0
    cols["a"][BOTH_ROW] = -5.0
    return cols


@pytest.fixture(scope="module", params=["parquet", "csv"])
def row_run(request, tmp_path_factory):
    fmt = request.param
    d = tmp_path_factory.mktemp(f"rows_{fmt}")
    cols = planted_rows()
    if fmt == "parquet":
        cols["b"][BOTH_ROW] = float("nan")
        data = write_parquet(d / "data.parquet", cols)
    else:
        cols["b"][BOTH_ROW] = None  # an empty CSV cell
        data = write_csv(d / "data.csv", cols)
    suite = write_suite(d / "suites" / "rows.json", ROW_SUITE, name="row_checks_suite")
    config = write_config(d / "config.yaml", "scoring: {batch_rows: 64}\n")
    out = d / "out"
    rc = sanitize(data, out, suite, config)
    expected = dict(PLANTED)
    expected[BOTH_ROW] = BOTH_CODES[fmt]
    return {"rc": rc, "out": out, "suite": suite, "expected": expected, "format": fmt}


def test_row_run_publishes_and_accounts_for_every_row(row_run):
    out = row_run["out"]
    assert row_run["rc"] == 0
    assert (out / "manifest.json").is_file()
    clean, q = read_dir(out / "clean"), read_dir(out / "quarantine")
    clean_ids, q_ids = clean.column(RID).to_pylist(), q.column(RID).to_pylist()
    assert len(clean_ids) + len(q_ids) == N_ROWS
    assert sorted(clean_ids + q_ids) == list(range(N_ROWS))
    prov = load_json(out / "provenance.json")
    counts = prov["counts"]
    assert counts["rows_in"] == N_ROWS
    assert counts["clean"] + counts["quarantined"] == N_ROWS
    assert counts["clean"] == len(clean_ids) and counts["quarantined"] == len(q_ids)
    assert prov["accounting"]["holds"] is True
    assert prov["status"] == "succeeded"


def test_each_broken_row_is_quarantined_with_its_validation_reason(row_run):
    out, expected = row_run["out"], row_run["expected"]
    q = read_dir(out / "quarantine")
    codes = reasons_of(q, RID)
    clean_ids = set(read_dir(out / "clean").column(RID).to_pylist())
    for rid, want in expected.items():
        assert rid not in clean_ids, rid
        assert rid in codes, f"row {rid} is not in quarantine"
        assert set(codes[rid]) == want, (rid, codes[rid])
        assert len(codes[rid]) == len(set(codes[rid])), f"row {rid} repeats a reason: {codes[rid]}"
    entries = reasons_json(q)
    for rid, want in expected.items():
        for code in want:
            matching = [e for e in entries[rid] if e["code"] == code]
            assert len(matching) == 1, (rid, code, entries[rid])
            assert matching[0]["detector"] == "validation"
            assert matching[0]["score"] is None
    between = [e for e in entries[10] if e["code"] == BETWEEN_A][0]
    assert between["evidence"]["column"] == "a"
    assert between["evidence"]["min_value"] == 0 and between["evidence"]["max_value"] == 10


def test_only_broken_rows_carry_row_check_reasons(row_run):
    out, expected = row_run["out"], row_run["expected"]
    codes = reasons_of(read_dir(out / "quarantine"), RID)
    for rid, row_codes in codes.items():
        if rid in expected:
            continue
        assert not [c for c in row_codes if c.startswith(("validation:", "invalid:"))], (rid, row_codes)
        assert row_codes, f"row {rid} is quarantined without a reason"


def test_row_level_failure_counts_match_provenance(row_run):
    out, expected = row_run["out"], row_run["expected"]
    want = Counter(code for codes in expected.values() for code in codes if code.startswith("validation:"))
    prov = load_json(out / "provenance.json")
    v = prov["validation"]
    assert v["row_level_expectations"] == 4
    assert v["rows_failing_row_level"] == dict(want)
    by_reason = prov["counts"]["by_reason"]
    for code, n in want.items():
        assert by_reason[code] == n
    assert prov["counts"]["invalid"] == len(expected)


def test_rows_failing_checks_never_reach_the_detectors(row_run):
    out, expected = row_run["out"], row_run["expected"]
    q = read_dir(out / "quarantine")
    scores = dict(zip(q.column(RID).to_pylist(), q.column("sanitizer_score_outlier").to_pylist()))
    for rid in expected:
        assert is_missing(scores[rid]), (rid, scores[rid])
    prov = load_json(out / "provenance.json")
    assert prov["counts"]["by_detector"]["outlier"]["scored"] == N_ROWS - len(expected)
    for rid, value in scores.items():
        if rid not in expected:
            assert not is_missing(value), f"row {rid} passed every check but has no outlier score"


def test_clean_output_passes_every_row_check(row_run):
    """Nothing that breaks a row-level expectation is published: the clean-output validation passes."""
    out = row_run["out"]
    summary = load_json(out / "validation" / "summary.json")
    on_clean = [c for c in summary if c["on"] == "clean output"]
    assert {c["expectation"] for c in on_clean} == {e["type"] for e in ROW_SUITE}
    assert all(c["success"] for c in on_clean), on_clean
    assert load_json(out / "provenance.json")["validation"]["success"] is True


def test_row_with_a_validation_failure_and_a_nan_feature_has_both_reasons_in_one_row(row_run):
    out = row_run["out"]
    q = read_dir(out / "quarantine")
    ids = q.column(RID).to_pylist()
    assert ids.count(BOTH_ROW) == 1
    assert BOTH_ROW not in read_dir(out / "clean").column(RID).to_pylist()
    codes = reasons_of(q, RID)[BOTH_ROW]
    assert set(codes) == BOTH_CODES[row_run["format"]] and len(codes) == 2
    entries = reasons_json(q)[BOTH_ROW]
    assert sorted(e["code"] for e in entries) == sorted(codes)
    assert all(e["detector"] == "validation" for e in entries)


# --------------------------------------------------------------------------- outputs


def test_validation_outputs_are_json_and_no_data_docs(row_run):
    out = row_run["out"]
    vdir = out / "validation"
    for name in ("input_sample.json", "clean_output.json", "summary.json"):
        assert (vdir / name).is_file(), name
        json.loads((vdir / name).read_text())
    clean_result = load_json(vdir / "clean_output.json")
    assert clean_result["success"] is True
    assert {r["expectation_config"]["type"] for r in clean_result["results"]} == {e["type"] for e in ROW_SUITE}
    summary = load_json(vdir / "summary.json")
    assert isinstance(summary, list) and summary
    assert all({"on", "expectation", "column", "success", "observed"} <= set(c) for c in summary)
    # Great Expectations' Data Docs print data values unescaped: not written (the report shows the checks).
    assert not (vdir / "data_docs").exists() and not list(vdir.rglob("*.html"))
    assert "data_docs" not in load_json(out / "provenance.json")["validation"]


def test_provenance_records_the_suite_and_its_sha256(row_run):
    out, suite = row_run["out"], row_run["suite"]
    recorded = load_json(out / "provenance.json")["validation"]["suite"]
    assert recorded["path"] == str(suite)
    assert recorded["sha256"] == hashlib.sha256(suite.read_bytes()).hexdigest()
    assert recorded["name"] == "row_checks_suite"
    assert recorded["expectations"] == len(ROW_SUITE)
    assert load_json(out / "provenance.json")["config"]["validation"]["expectations"] == str(suite)


# --------------------------------------------------------------------------- profile, then run


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("profile")
    trusted = write_parquet(d / "trusted.parquet", make_rows(N_ROWS, seed=1))
    suite = d / "suites" / "trusted.json"
    rc = run_cli("profile", "--input", trusted, "--label-column", "label", "--id-column", RID, "--output", suite)
    return {"rc": rc, "dir": d, "trusted": trusted, "suite": suite}


@pytest.fixture(scope="module")
def trusted_run(profiled):
    d = profiled["dir"]
    out = d / "out_trusted"
    rc = sanitize(profiled["trusted"], out, profiled["suite"], write_config(d / "fast.yaml"))
    return rc, out


@pytest.fixture(scope="module")
def shifted_run(profiled):
    """c's mean moved by 4 std, and a's range broken in two rows; dataset_failure: warn."""
    d = profiled["dir"]
    cols = make_rows(N_ROWS, seed=2)
    cols["c"] = [v + 4.0 for v in cols["c"]]
    cols["a"][7] = 1000.0
    cols["a"][8] = -1000.0
    data = write_parquet(d / "shifted.parquet", cols)
    out = d / "out_shifted"
    rc = sanitize(data, out, profiled["suite"], write_config(
        d / "warn.yaml",
        # Most rows break c's inferred range: the run-level guard would stop them; this test is about warn.
        "validation: {dataset_failure: warn}\nguard: {max_quarantine_share: 1.0, max_class_quarantine_share: 1.0}\n"))
    return rc, out


@pytest.fixture(scope="module")
def broken_run(profiled):
    """Class 2 vanished and only 60 rows (the profile saw 300); dataset_failure left at its default (stop)."""
    d = profiled["dir"]
    cols = make_rows(90, seed=3)
    keep = [i for i, lab in enumerate(cols["label"]) if lab != 2]
    cols = {k: [v[i] for i in keep] for k, v in cols.items()}
    assert len(cols[RID]) == 60
    data = write_parquet(d / "broken.parquet", cols)
    out = d / "out_broken"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = run_cli("run", "--input", data, "--output", out, "--label-column", "label", "--id-column", RID,
                     "--expectations", profiled["suite"], "--config", write_config(d / "stop.yaml"))
    return rc, out, err.getvalue()


def test_profile_writes_a_suite_great_expectations_loads(profiled, capsys):
    import great_expectations as gx

    from sanitizer.validation.suite import load_suite

    assert profiled["rc"] == 0
    raw = json.loads(profiled["suite"].read_text())
    assert isinstance(raw["expectations"], list) and raw["expectations"]
    gx.get_context(mode="ephemeral")
    suite = gx.ExpectationSuite(**raw)
    assert len(suite.expectations) == len(raw["expectations"])
    loaded = load_suite(str(profiled["suite"]), [RID, "a", "b", "c", "tag", "label"])
    types = {(e["type"], e["kwargs"].get("column")) for e in loaded.expectations}
    for column in ("a", "b", "c"):
        assert ("expect_column_values_to_be_between", column) in types
        assert ("expect_column_mean_to_be_between", column) in types
    assert ("expect_column_values_to_be_in_set", "label") in types
    assert ("expect_table_row_count_to_be_between", None) in types
    in_set = [e for e in loaded.expectations if e["type"] == "expect_column_values_to_be_in_set"][0]
    assert sorted(in_set["kwargs"]["value_set"]) == [0, 1, 2]
    assert sorted(raw["meta"]["sanitizer"]["class_shares"]) == ["0", "1", "2"]
    assert raw["meta"]["sanitizer"]["rows"] == N_ROWS


def test_run_on_the_profiled_data_passes_every_check(trusted_run):
    rc, out = trusted_run
    assert rc == 0
    assert (out / "manifest.json").is_file()
    prov = load_json(out / "provenance.json")
    v = prov["validation"]
    assert v["success"] is True, failed_checks(prov)
    assert v["rows_failing_row_level"] == {}
    summary = load_json(out / "validation" / "summary.json")
    assert summary and all(c["success"] for c in summary), [c for c in summary if not c["success"]]
    assert {c["on"] for c in summary} == {"input sample", "input totals", "clean output"}
    assert {c["expectation"] for c in summary} >= {
        "expect_column_mean_to_be_between", "expect_table_row_count_to_be_between", "sanitizer:class_share_between",
    }
    codes = [c for cs in reasons_of(read_dir(out / "quarantine"), RID).values() for c in cs]
    assert not [c for c in codes if c.startswith(("validation:", "invalid:"))], codes
    assert not [k for k in prov["counts"]["by_reason"] if k.startswith("validation:")]


def test_shifted_data_with_warn_publishes_and_names_the_failures(shifted_run):
    rc, out = shifted_run
    assert rc == 0
    assert (out / "manifest.json").is_file()
    prov = load_json(out / "provenance.json")
    v = prov["validation"]
    assert v["success"] is False
    assert v["dataset_failure"] == "warn"
    assert v["blocked_publication"] is False
    failed = failed_checks(prov)
    assert ("input sample", "expect_column_mean_to_be_between", "c") in failed, failed
    assert not [f for f in failed if f[2] in ("a", "b") and f[1] == "expect_column_mean_to_be_between"
                and f[0] == "input sample"], failed
    # The broken range: row-level failures, quarantined with the validation reason.
    assert v["rows_failing_row_level"]["validation:expect_column_values_to_be_between:a"] == 2
    assert v["rows_failing_row_level"].get("validation:expect_column_values_to_be_between:c", 0) > 0
    codes = reasons_of(read_dir(out / "quarantine"), RID)
    assert BETWEEN_A in codes[7] and BETWEEN_A in codes[8]
    summary = load_json(out / "validation" / "summary.json")
    assert [c for c in summary if not c["success"]] == [c for c in v["checks"] if not c["success"]]


def test_broken_data_stops_publication(broken_run):
    rc, out, err = broken_run
    assert rc == 2
    assert not (out / "manifest.json").exists()
    prov_path = out / "provenance.json"
    if prov_path.exists():
        prov = load_json(prov_path)
        assert prov["status"] == "failed"
        assert prov["validation"]["blocked_publication"] is True
    assert err.startswith("sanitize: error: "), err
    assert "expect_table_row_count_to_be_between" in err
    assert "sanitizer:class_share_between" in err
    assert "no manifest" in err
    assert "Traceback" not in err


def test_broken_data_names_the_failed_expectations(broken_run):
    rc, out, _ = broken_run
    assert rc == 2
    prov = load_json(out / "provenance.json")
    failed = failed_checks(prov)
    assert ("input totals", "expect_table_row_count_to_be_between", None) in failed, failed
    assert ("input totals", "sanitizer:class_share_between", "2") in failed, failed
    observed = {(c["on"], c["expectation"], c["column"]): c["observed"] for c in prov["validation"]["checks"]}
    assert observed[("input totals", "expect_table_row_count_to_be_between", None)] == 60
    assert observed[("input totals", "sanitizer:class_share_between", "2")] == 0


# --------------------------------------------------------------------------- stop mode, on its own


def test_stop_mode_exits_2_names_the_failure_and_writes_no_manifest(profiled, tmp_path, capsys):
    """A single data-set-level failure (a mean) with the default dataset_failure: stop."""
    suite = write_suite(tmp_path / "mean.json", [
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "min_value": 100, "max_value": 200}},
    ], name="mean_only")
    out = tmp_path / "out"
    rc = sanitize(profiled["trusted"], out, suite, write_config(tmp_path / "c.yaml"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error: ")
    assert "expect_column_mean_to_be_between(a)" in err
    assert "nothing was published" in err
    assert "Traceback" not in err
    assert not (out / "manifest.json").exists()
    prov = load_json(out / "provenance.json")
    assert prov["status"] == "failed"
    assert prov["validation"]["blocked_publication"] is True


# --------------------------------------------------------------------------- bad suites


BAD_SUITES = {
    "not_json": ('{"name": "x", "expectations": [', ["not valid JSON"]),
    "no_expectations_list": ('{"name": "x", "rules": []}', ["'expectations' list"]),
    "expectations_not_a_list": ('{"name": "x", "expectations": {"a": 1}}', ["'expectations' list"]),
    "expectation_without_type": ('{"expectations": [{"kwargs": {"column": "a"}}]}', ["#0", "'type'"]),
    "unknown_column": (
        json.dumps({"expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "zzz"}}]}),
        ["'zzz'", "does not have"],
    ),
    "unknown_type": (
        json.dumps({"expectations": [{"type": "expect_column_values_to_be_purple", "kwargs": {"column": "a"}}]}),
        ["expect_column_values_to_be_purple", "not a valid expectation"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_is_refused_before_the_pipeline(case, profiled, tmp_path, capsys):
    text, fragments = BAD_SUITES[case]
    suite = tmp_path / f"{case}.json"
    suite.write_text(text)
    out = tmp_path / "out"
    rc = sanitize(profiled["trusted"], out, suite, write_config(tmp_path / "c.yaml"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error: ")
    assert str(suite) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err
    assert not (out / "clean").exists()
    assert not (out / "manifest.json").exists()


def test_missing_suite_path_is_refused(profiled, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "nope" / "suite.json"
    rc = sanitize(profiled["trusted"], out, missing, write_config(tmp_path / "c.yaml"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error: ")
    assert str(missing) in err and "cannot be read" in err
    assert "Traceback" not in err
    assert not (out / "clean").exists()
    assert not (out / "manifest.json").exists()


# --------------------------------------------------------------------------- a data-set check on a non-feature column


def test_dataset_expectation_on_an_input_column_that_is_not_a_feature(profiled, tmp_path, capsys):
    """load_suite accepts any input column; a mean check on column c (not a feature here) that the data
    meets must pass, not fail on the sample for want of the column."""
    suite = write_suite(tmp_path / "c_mean.json", [
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "c", "min_value": -1, "max_value": 1}},
    ], name="c_mean")
    out = tmp_path / "out"
    rc = sanitize(profiled["trusted"], out, suite, write_config(tmp_path / "c.yaml"), "--feature-columns", "a,b")
    err = capsys.readouterr().err
    assert rc == 0, err
    prov = load_json(out / "provenance.json")
    assert prov["columns"]["features"] == ["a", "b"]
    assert prov["validation"]["success"] is True, failed_checks(prov)
    assert (out / "manifest.json").is_file()


# --------------------------------------------------------------------------- the bundled demo suite


def test_demo_suite_loads():
    from sanitizer.validation.suite import load_suite

    suite = load_suite(str(DEMO_SUITE), ["image_id", "pixels", "label"])
    assert suite.name == "digits_demo"
    assert suite.sha256 == hashlib.sha256(DEMO_SUITE.read_bytes()).hexdigest()
    assert suite.columns() == {"image_id", "pixels", "label"}
    assert suite.row_level and suite.dataset_level
    assert sorted(suite.meta["sanitizer"]["class_shares"]) == [str(i) for i in range(10)]


def test_digits_demo_data_passes_the_demo_suite(tmp_path):
    from sanitizer.cli.demo import make_demo_data

    data = tmp_path / "input" / "digits.parquet"
    make_demo_data(str(data), seed=0)
    assert pq.read_schema(data).names == ["image_id", "pixels", "label"]
    out = tmp_path / "out"
    rc = run_cli("run", "--input", data, "--output", out, "--label-column", "label", "--id-column", "image_id",
                 "--expectations", DEMO_SUITE, "--config", write_config(tmp_path / "c.yaml"), "-q")
    assert rc == 0
    assert (out / "manifest.json").is_file()
    prov = load_json(out / "provenance.json")
    assert prov["validation"]["success"] is True, failed_checks(prov)
    assert prov["validation"]["rows_failing_row_level"] == {}
    assert not [k for k in prov["counts"]["by_reason"] if k.startswith("validation:")]
    summary = load_json(out / "validation" / "summary.json")
    assert all(c["success"] for c in summary)
    assert {c["expectation"] for c in summary} >= {"expect_table_row_count_to_be_between",
                                                   "sanitizer:class_share_between"}
    assert prov["counts"]["rows_in"] == 1797


def test_profile_holds_only_a_bounded_sample_yet_tallies_every_row(profiled, tmp_path):
    """Mean and spread come from a seeded sample of ``rows`` rows; ranges, row count and label set from all rows."""
    import pyarrow.parquet as pq

    from sanitizer.beam.plan import make_plan
    from sanitizer.settings.config import build_config
    from sanitizer.validation.profile import profile

    config = build_config({"input": str(profiled["trusted"]), "output": str(tmp_path / "unused"),
                           "label_column": "label", "id_column": RID, "seed": 4})
    small = profile(config, make_plan(config), str(tmp_path / "small.json"), rows=50)
    full = json.loads(profiled["suite"].read_text())
    meta = small["meta"]["sanitizer"]
    assert meta["rows"] == N_ROWS and meta["sample"]["rows"] == 50 and meta["sample"]["limit"] == 50

    def by(suite, kind):
        return {e["kwargs"].get("column"): e["kwargs"] for e in suite["expectations"] if e["type"] == kind}

    # Tallied over every row: identical to the profile that held the whole input.
    for kind in ("expect_column_values_to_be_between", "expect_table_row_count_to_be_between",
                 "expect_column_values_to_be_in_set"):
        assert by(small, kind) == by(full, kind), kind
    values = pq.read_table(profiled["trusted"], columns=["a"]).column("a").to_numpy()
    rng = by(small, "expect_column_values_to_be_between")["a"]
    assert rng["min_value"] <= values.min() and rng["max_value"] >= values.max()
    # From the 50-row sample: bounds around a mean of 50 rows, not of all 300.
    mean_small = by(small, "expect_column_mean_to_be_between")["a"]
    mean_full = by(full, "expect_column_mean_to_be_between")["a"]
    assert mean_small != mean_full
    centre = (mean_small["min_value"] + mean_small["max_value"]) / 2
    assert abs(centre - values.mean()) < 3 * values.std() / np.sqrt(50)  # a uniform sample's mean
