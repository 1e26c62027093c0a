"""Great Expectations severity and the publication Checkpoint (issue 16.4): a failed warning / info data-set
expectation is recorded with its severity and the run publishes; a failed critical one withholds publication;
every data-set check (the row-count and class-share checks on the run's totals too) runs through one
gx.Checkpoint whose UpdateDataDocsAction builds the Data Docs site, copied through Beam's filesystems."""

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
    assert failed[("clean output", "expect_table_row_count_to_be_between", None)] == "warning"
    assert failed[("input totals", "sanitizer:class_share_between", "0")] == "warning"
    assert failed[("input sample", "expect_column_mean_to_be_between", "a")] == "info"
    assert failed[("clean output", "expect_column_mean_to_be_between", "a")] == "info"
    assert ("input totals", "sanitizer:class_share_between", "1") not in failed  # a third of the rows: in bounds
    assert not any(c["blocking"] for c in v["checks"])
    assert v["failed_by_severity"]["critical"] == 0 and v["failed_by_severity"]["warning"] == 4
    share = next(c for c in v["checks"] if c["on"] == "input totals" and c["column"] == "0")
    assert share["observed"] == pytest.approx(1 / 3, abs=1e-6)
    summary = load_json(out / "validation" / "summary.json")
    assert [c for c in summary if not c["success"]] == [c for c in v["checks"] if not c["success"]]
    report = (out / "report.html").read_text()
    assert "published anyway" in report and "expect_table_row_count_to_be_between" in report


def test_the_checkpoint_ran_and_its_data_docs_show_the_totals_checks(warned):
    _, out, _ = warned
    vdir = out / "validation"
    checkpoint = load_json(vdir / "checkpoint_result.json")
    assert checkpoint["name"] == "sanitizer publication"
    assert checkpoint["success"] is False
    run_id = load_json(out / "provenance.json")["run_id"]
    prov_v = load_json(out / "provenance.json")["validation"]
    assert prov_v["checkpoint"] == {"name": "sanitizer publication", "success": False}
    index = vdir / "data_docs" / "index.html"
    assert index.is_file() and prov_v["data_docs"] == str(index)
    pages = {p: p.read_text() for p in (vdir / "data_docs").rglob("*.html") if p != index}
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", "\n".join(pages.values())))  # the pages' words
    for side in ("input_totals.row_count", "clean_output.row_count", "input_totals.class_shares",
                 "clean_output.class_shares", "clean_output", "input_sample"):
        assert f"severity_suite.{side}" in index.read_text(), side
    assert "class_share:0" in text and "class_share:1" in text  # the class-share bounds, rendered by GX
    assert "Must have greater than or equal to 1000 and less than or equal to 2000 rows" in text  # row count
    assert f"sanitize {run_id}" in text  # the Checkpoint's run name on the validation pages
    assert checkpoint["run_id"]["run_name"] == f"sanitize {run_id}"
    assert checkpoint["statistics"]["evaluated_validations"] == 5


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
    assert {c["severity"] for c in blocking} == {"critical"} and len(blocking) == 2  # input and clean totals
    assert (out / "validation" / "data_docs" / "index.html").is_file()


def test_a_bad_severity_is_refused(tmp_path):
    from sanitizer.errors import ConfigError
    from sanitizer.validation import load_suite

    path = write_suite(tmp_path / "s.json", [dict(PASSING, severity="fatal")])
    with pytest.raises(ConfigError, match="severity 'fatal'"):
        load_suite(str(path))
    path.write_text(json.dumps({"expectations": [PASSING], "meta": {"sanitizer": {"class_share_severity": "x"}}}))
    with pytest.raises(ConfigError, match="class_share_severity"):
        load_suite(str(path))


def test_data_docs_are_copied_through_beam_filesystems_to_a_non_local_scheme(tmp_path):
    """A Beam FileSystem registered for a made-up scheme stands in for gs:// or s3:// (no cloud client here)."""
    from apache_beam.io.localfilesystem import LocalFileSystem

    from sanitizer.validation_docs import _copy_tree

    root = tmp_path / "bucket"

    class MemTestFileSystem(LocalFileSystem):  # found by FileSystems through FileSystem's subclasses
        @classmethod
        def scheme(cls):
            return "sanitizertest"

        def create(self, path, *args, **kwargs):
            local = root / path.split("://", 1)[1]
            local.parent.mkdir(parents=True, exist_ok=True)
            return super().create(str(local), *args, **kwargs)

    local = tmp_path / "docs"
    (local / "validations").mkdir(parents=True)
    (local / "index.html").write_text("<html>index</html>")
    (local / "validations" / "v.html").write_text("<html>page</html>")
    index = _copy_tree(str(local), "sanitizertest://bucket-1/out/validation/data_docs")
    assert index == "sanitizertest://bucket-1/out/validation/data_docs/index.html"
    assert (root / "bucket-1/out/validation/data_docs/index.html").read_text() == "<html>index</html>"
    assert (root / "bucket-1/out/validation/data_docs/validations/v.html").read_text() == "<html>page</html>"


def test_a_warning_row_level_expectation_reports_the_row_and_keeps_it_clean(tmp_path):
    """severity=warning on expect_column_values_*: the failing rows are counted with the reason (action report)
    and stay clean; the critical row-level expectation beside it still quarantines."""
    import pyarrow.parquet as pq

    rows = make_rows(300, 5)
    rows["a"][10] = 50.0  # fails the critical range on a
    rows["tag"][20] = "oops"  # fails the warning regex on tag only (not a feature: no detector flags it)
    data = write_parquet(tmp_path / "in.parquet", rows)
    suite = write_suite(tmp_path / "s.json", [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 0, "max_value": 10}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "tag", "regex": "^t-[0-9]+$"},
         "severity": "warning"},
    ])
    out = tmp_path / "out"
    assert sanitize(data, out, suite, write_config(tmp_path / "c.yaml")) == 0
    counts = load_json(out / "provenance.json")["counts"]
    assert counts["by_reason"]["validation:expect_column_values_to_match_regex:tag"] == 1
    assert counts["by_reason"]["validation:expect_column_values_to_be_between:a"] == 1
    assert counts["reported_kept_clean"] >= 1
    clean_ids = set(pq.read_table(out / "clean").column("rid").to_pylist())
    assert 20 in clean_ids and 10 not in clean_ids
