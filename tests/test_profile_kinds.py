"""``sanitize profile`` by column kind on a real mixed table (palmerpenguins, raw): value sets for categorical
and text boolean columns, a date range for the date column; and those checks as row checks in a run: an
island never seen, a sex never seen, an egg laid in 1907 or a date that is no date is quarantined with the
expectation as its reason, a warning-severity value set reports its rows and keeps them, and the real table
profiled and run passes every check and publishes."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, read_dir, reasons_of, run_cli

RID = "rid"
FAST = "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
IN_SET = "validation:expect_column_values_to_be_in_set:"
DATE_RANGE = "validation:expect_column_values_to_be_between:Date Egg"
PLANTS = {5: ("Island", "Mars", IN_SET + "Island"), 17: ("Sex", "YES", IN_SET + "Sex"),
          40: ("Date Egg", "1907-11-12", DATE_RANGE), 41: ("Date Egg", "soon", DATE_RANGE)}


def write(frame, path):
    frame = frame.copy()
    frame.insert(0, RID, range(len(frame)))
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    from palmerpenguins import load_penguins_raw

    d = tmp_path_factory.mktemp("profile_kinds")
    frame = load_penguins_raw()
    real = write(frame, d / "real.parquet")
    planted = frame.copy()
    for row, (column, value, _) in PLANTS.items():
        planted.loc[row, column] = value
    config = d / "fast.yaml"
    config.write_text(FAST)

    def profile(name, *extra):
        suite = d / f"{name}.json"
        assert run_cli("profile", "--input", real, "--label-column", "Species", "--id-column", RID,
                       "--output", suite, *extra) == 0
        return suite

    return {"dir": d, "real": real, "planted": write(planted, d / "planted.parquet"), "config": config,
            "suite": profile("suite"), "warn_suite": profile("warn", "--value-set-severity", "warning"),
            "frame": frame}


def sanitize(penguins, data, suite, name):
    out = penguins["dir"] / name
    rc = run_cli("run", "--input", data, "--output", out, "--label-column", "Species", "--id-column", RID,
                 "--expectations", suite, "--config", penguins["config"], "-q")
    return rc, out


def validation_reasons(out) -> dict[int, list[str]]:
    quarantined = reasons_of(read_dir(out / "quarantine"), RID)
    return {rid: sorted(r for r in reasons if r.startswith("validation:")) for rid, reasons in quarantined.items()
            if any(r.startswith("validation:") for r in reasons)}


def test_profile_writes_value_sets_and_a_date_range(penguins):
    raw = json.loads(penguins["suite"].read_text())
    frame = penguins["frame"]
    sets = {e["kwargs"]["column"]: e for e in raw["expectations"] if e["type"] == "expect_column_values_to_be_in_set"}
    assert sets["Island"]["kwargs"]["value_set"] == ["Biscoe", "Dream", "Torgersen"]
    assert sets["Sex"]["kwargs"]["value_set"] == sorted(frame["Sex"].dropna().unique())  # every row, nulls left out
    assert sets["Clutch Completion"]["kwargs"]["value_set"] == ["No", "Yes"]  # a boolean stored as text
    assert sets["studyName"]["meta"]["kind"] == "categorical" and "severity" not in sets["Island"]  # critical
    assert "Comments" not in sets and "Individual ID" not in sets  # text and keys get no value set
    dates = [e for e in raw["expectations"]
             if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "Date Egg"]
    assert len(dates) == 1
    low, high = dates[0]["kwargs"]["min_value"], dates[0]["kwargs"]["max_value"]
    # The observed range (2007-11-09 .. 2009-12-01) widened by the margin (10% of its span), in whole days.
    assert low < frame["Date Egg"].min() and high > frame["Date Egg"].max()
    assert "2007-06-01" < low and high < "2010-06-01" and len(low) == len(high) == 10
    meta = raw["meta"]["sanitizer"]
    assert set(meta["value_sets"]["columns"]) >= {"Island", "Sex", "Clutch Completion", "studyName"}
    assert meta["value_sets"]["not_set"] == {} and meta["date_ranges"]["columns"] == ["Date Egg"]
    warn = json.loads(penguins["warn_suite"].read_text())
    assert {e.get("severity") for e in warn["expectations"] if e["type"] == "expect_column_values_to_be_in_set"
            and e["kwargs"]["column"] != "Species"} == {"warning"}  # the label set stays critical


def test_a_value_set_over_the_vocabulary_bound_is_left_out_and_said(penguins, tmp_path):
    from sanitizer.beam.plan import make_plan
    from sanitizer.settings.config import build_config
    from sanitizer.validation.profile import profile

    # A column declared categorical with more values over its rows than the bound (3) gets no value set.
    frame = penguins["frame"].copy()
    frame["Stage"] = [f"stage {i % 5}" for i in range(len(frame))]
    path = write(frame, tmp_path / "stages.parquet")
    config = build_config({"input": str(path), "output": str(tmp_path / "o"), "label_column": "Species",
                           "id_column": RID, "categorical_max_levels": 3, "columns": {"Stage": "categorical"}})
    suite = profile(config, make_plan(config), str(tmp_path / "s.json"))
    columns = {e["kwargs"].get("column") for e in suite["expectations"]
               if e["type"] == "expect_column_values_to_be_in_set"}
    assert "Stage" not in columns and "Island" in columns
    assert "more than 3 distinct values" in suite["meta"]["sanitizer"]["value_sets"]["not_set"]["Stage"]


def test_rows_failing_the_value_sets_or_the_date_range_are_quarantined_with_the_reason(penguins):
    rc, out = sanitize(penguins, penguins["planted"], penguins["suite"], "planted")
    assert rc == 0 and (out / "manifest.json").is_file()
    # Exactly the planted rows fail a row check, each with its expectation; every real row passes them.
    assert validation_reasons(out) == {row: [reason] for row, (_, _, reason) in PLANTS.items()}
    v = load_json(out / "provenance.json")["validation"]
    assert v["rows_failing_row_level"] == {IN_SET + "Island": 1, IN_SET + "Sex": 1, DATE_RANGE: 2}
    assert not [c for c in v["checks"] if not c["success"]], v["checks"]  # the clean output passes the suite


def test_a_warning_value_set_reports_the_rows_and_holds_none_itself(penguins):
    rc, out = sanitize(penguins, penguins["planted"], penguins["warn_suite"], "warned")
    assert rc == 0 and (out / "manifest.json").is_file()
    quarantined = reasons_of(read_dir(out / "quarantine"), RID)
    held = validation_reasons(out)
    assert held[40] == [DATE_RANGE] and held[41] == [DATE_RANGE]  # the date range stays critical
    # The warning holds nothing: 'Mars' and 'YES' are held by the outlier detector (values never seen in
    # their columns), the value set's failure only reported beside it.
    for rid in (5, 17):
        assert any(r.startswith("outlier") for r in quarantined[rid]), quarantined[rid]
    v = load_json(out / "provenance.json")["validation"]
    assert v["rows_failing_row_level"][IN_SET + "Island"] == 1
    failed = {(c["column"], c["severity"]) for c in v["checks"] if not c["success"] and c["on"] == "clean output"}
    assert failed == set() and not v["blocked_publication"]  # the clean output holds neither value


def test_the_real_table_profiled_and_run_passes_every_check(penguins):
    rc, out = sanitize(penguins, penguins["real"], penguins["suite"], "real")
    assert rc == 0 and (out / "manifest.json").is_file()
    assert validation_reasons(out) == {}
    v = load_json(out / "provenance.json")["validation"]
    assert v["success"] is True and v["rows_failing_row_level"] == {}


DAYS = [date(2007, 11, 11), date(1907, 1, 1), None, date(2009, 12, 1), None]
TIMES = [None if d is None else datetime(d.year, d.month, d.day) for d in DAYS]


@pytest.mark.parametrize("values", [
    pa.array(["2007-11-11", "1907-01-01", None, "2009-12-01", "soon"]),
    pa.array(DAYS, pa.date32()),
    pa.array(TIMES, pa.timestamp("s")),
    pa.array([None if t is None else t.replace(tzinfo=timezone.utc) for t in TIMES], pa.timestamp("s", tz="UTC")),
])
@pytest.mark.parametrize("bounds", [("2007-11-09", "2009-12-01"), ("2007-11-09T00:00:00", "2009-12-01T00:00:00"),
                                    ("2007-11-09T00:00:00+00:00", "2009-12-01T00:00:00+00:00")])
def test_a_date_range_checks_dates_timestamps_and_iso_text(tmp_path, values, bounds):
    from sanitizer.validation.suite import RowValidator, load_suite

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {
        "column": "d", "min_value": bounds[0], "max_value": bounds[1]}}]}))
    found = RowValidator(load_suite(str(path), ["d"])).issues(pa.table({"d": values}))
    assert [(reason, mask.tolist()) for reason, mask, _ in found] == [
        ("validation:expect_column_values_to_be_between:d", [False, True, False, False, values.type == pa.string()])]


def test_a_row_check_that_cannot_be_evaluated_stops_the_run(tmp_path):
    from sanitizer.errors import ConfigError
    from sanitizer.validation.suite import RowValidator, load_suite

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {
        "column": "d", "min_value": 1, "max_value": 2}}]}))
    with pytest.raises(ConfigError, match="cannot be checked"):
        RowValidator(load_suite(str(path), ["d"])).issues(pa.table({"d": ["a", "b"]}))


def test_profile_reads_dictionary_categories_dates_and_zoned_times_and_its_suite_passes_them(tmp_path):
    from sanitizer.beam.plan import make_plan
    from sanitizer.settings.config import build_config
    from sanitizer.validation.profile import profile
    from sanitizer.validation.suite import RowValidator, load_suite

    n = 60
    table = pa.table({
        RID: list(range(n)),
        "x": [float(i % 7) for i in range(n)],
        "shop": pa.array([["north", "south", "east"][i % 3] for i in range(n)]).dictionary_encode(),
        "day": pa.array([date(2020, 1, 1 + i % 28) for i in range(n)], pa.date32()),
        "at": pa.array([datetime(2021, 3, 1, i % 24, tzinfo=timezone.utc) for i in range(n)],
                       pa.timestamp("us", tz="UTC")),
        "label": [i % 2 for i in range(n)],
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    config = build_config({"input": str(path), "output": str(tmp_path / "o"), "label_column": "label",
                           "id_column": RID})
    suite = profile(config, make_plan(config), str(tmp_path / "s.json"))
    by = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    assert by[("expect_column_values_to_be_in_set", "shop")]["value_set"] == ["east", "north", "south"]
    day = by[("expect_column_values_to_be_between", "day")]
    assert (day["min_value"], day["max_value"]) == ("2019-12-29", "2020-01-31")  # 27 days' span, 10% each side
    at = by[("expect_column_values_to_be_between", "at")]
    assert at["min_value"].startswith("2021-02-28T21:42:00") and at["min_value"].endswith("+00:00")
    assert at["max_value"].startswith("2021-03-02T01:18:00")
    validator = RowValidator(load_suite(str(tmp_path / "s.json"), table.column_names))
    assert validator.issues(table) == []  # the data profiled passes its row checks
    planted = table.set_column(3, "day", pa.array([date(1907, 1, 1)] + [date(2020, 1, 2)] * (n - 1), pa.date32()))
    assert [(r, m.nonzero()[0].tolist()) for r, m, _ in validator.issues(planted)] == [
        ("validation:expect_column_values_to_be_between:day", [0])]
