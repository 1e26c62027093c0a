"""Great Expectations severity and the publication Checkpoint (issue 16.4): a failed warning / info data-set
expectation is recorded with its severity and the run publishes; a failed critical one withholds publication;
every data-set check (the row-count and class-share checks on the run's totals too) runs through one
gx.Checkpoint; row counts are checked on the rows read. No Data Docs are written (their renderer does not
escape data values)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import load_json
from test_validation import (
    make_rows,
    sanitize,
    write_config,
    write_parquet,
    write_suite,
)

PASSING = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}}
ROW_COUNT_WARN = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1000, "max_value": 2000},
                  "severity": "warning"}
MEAN_INFO = {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "min_value": 100,
                                                                     "max_value": 200}, "severity": "info"}
SHARES = {"sanitizer": {"class_shares": {"0": [0.9, 1.0], "1": [0.2, 0.5]}, "class_share_severity": "warning"}}


@pytest.fixture(scope="module")
def warned(tmp_path_factory):
    d = tmp_path_factory.mktemp("gx_warn")
    data = write_parquet(d / "in.parquet", make_rows(300, 3))
    suite = write_suite(d / "s.json", [PASSING, ROW_COUNT_WARN, MEAN_INFO], name="severity_suite", meta=SHARES)
    rc = sanitize(data, d / "out", suite, write_config(d / "c.yaml"))  # dataset_failure left at stop
    return rc, d / "out", d


def test_warning_and_info_failures_publish_and_are_recorded_with_their_severity(warned):
    rc, out, _ = warned
    assert rc == 0
    assert (out / "manifest.json").is_file()
    v = load_json(out / "provenance.json")["validation"]
    assert v["success"] is False and v["blocked_publication"] is False
    failed = {(c["on"], c["expectation"], c["column"]): c["severity"] for c in v["checks"] if not c["success"]}
    assert failed[("input totals", "expect_table_row_count_to_be_between", None)] == "warning"
    assert ("clean output", "expect_table_row_count_to_be_between", None) not in failed  # row counts: input
    assert failed[("input totals", "sanitizer:class_share_between", "0")] == "warning"
    assert failed[("input sample", "expect_column_mean_to_be_between", "a")] == "info"
    assert failed[("clean output", "expect_column_mean_to_be_between", "a")] == "info"
    assert ("input totals", "sanitizer:class_share_between", "1") not in failed  # a third of the rows: in bounds
    assert not any(c["blocking"] for c in v["checks"])
    assert v["failed_by_severity"]["critical"] == 0 and v["failed_by_severity"]["warning"] == 3
    share = next(c for c in v["checks"] if c["on"] == "input totals" and c["column"] == "0")
    assert share["observed"] == pytest.approx(1 / 3, abs=1e-6)
    summary = load_json(out / "validation" / "summary.json")
    assert [c for c in summary if not c["success"]] == [c for c in v["checks"] if not c["success"]]
    report = (out / "report.html").read_text()
    assert "published anyway" in report and "expect_table_row_count_to_be_between" in report


def test_the_checkpoint_ran_the_totals_checks(warned):
    _, out, _ = warned
    vdir = out / "validation"
    checkpoint = load_json(vdir / "checkpoint_result.json")
    assert checkpoint["name"] == "sanitizer publication"
    assert checkpoint["success"] is False
    run_id = load_json(out / "provenance.json")["run_id"]
    prov_v = load_json(out / "provenance.json")["validation"]
    assert prov_v["checkpoint"] == {"name": "sanitizer publication", "success": False}
    assert not (vdir / "data_docs").exists()
    totals = load_json(vdir / "totals.json")
    assert set(totals) == {"input totals: row count", "input totals: class shares", "clean output: class shares"}
    shares = {r["expectation_config"]["kwargs"]["column"] for r in totals["input totals: class shares"]["results"]}
    assert shares == {"class_share:0", "class_share:1"}  # the class-share bounds, as GX expectations
    assert totals["input totals: row count"]["results"][0]["result"]["observed_value"] == 300
    assert checkpoint["run_id"]["run_name"] == f"sanitize {run_id}"
    assert checkpoint["statistics"]["evaluated_validations"] == 4


def test_a_critical_failure_stops_publication(warned, capsys):
    _, _, d = warned
    critical = dict(ROW_COUNT_WARN, severity="critical")
    suite = write_suite(d / "crit.json", [PASSING, critical, MEAN_INFO], name="critical_suite")
    out = d / "out_critical"
    rc = sanitize(d / "in.parquet", out, suite, write_config(d / "c.yaml"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "nothing was published" in err and "expect_table_row_count_to_be_between(table)" in err
    assert "expect_column_mean_to_be_between" not in err  # info: recorded, not a reason to stop
    assert not (out / "manifest.json").exists()
    v = load_json(out / "provenance.json")["validation"]
    assert v["blocked_publication"] is True
    blocking = [c for c in v["checks"] if c["blocking"]]
    assert {c["severity"] for c in blocking} == {"critical"} and len(blocking) == 1  # the input totals


def test_a_bad_severity_is_refused(tmp_path):
    from sanitizer.errors import ConfigError
    from sanitizer.validation.suite import load_suite

    path = write_suite(tmp_path / "s.json", [dict(PASSING, severity="fatal")])
    with pytest.raises(ConfigError, match="severity 'fatal'"):
        load_suite(str(path))
    path.write_text(json.dumps({"expectations": [PASSING], "meta": {"sanitizer": {"class_share_severity": "x"}}}))
    with pytest.raises(ConfigError, match="class_share_severity"):
        load_suite(str(path))
