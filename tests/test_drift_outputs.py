"""Where drift against a baseline shows beyond provenance: the report's drift section (in headless Chromium),
the run's Beam metrics, the OpenLineage facet and the baseline input, and the Airflow circuit breaker.

One real run: sklearn's wine split in halves, the earlier half the baseline (``baseline.data``), the new half
with ``alcohol`` shifted by one standard deviation and a categorical ``cellar`` whose shares moved by half.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import airflow_env
import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import load_json
from sklearn.datasets import load_wine
from test_report import ARTIFACTS, open_page, png_info

from sanitizer.beam import Sanitize
from sanitizer.beam.local_runner import runner_for
from sanitizer.beam.metrics import NAMESPACE
from sanitizer.report import render_report
from sanitizer.report.charts import fmt
from sanitizer.runs.lineage.events import build_run_event

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "pipelines" / "airflow"


def _half(X: np.ndarray, y: np.ndarray, rows: np.ndarray, shifted: bool, seed: int) -> pa.Table:
    columns = {"alcohol": X[rows, 0] + (X[:, 0].std() if shifted else 0.0)}  # wine's first column
    columns.update({f"f{j}": X[rows, j] for j in range(1, X.shape[1])})
    north = np.random.default_rng(seed).random(len(rows)) < (0.85 if shifted else 0.3)
    columns["cellar"] = np.where(north, "north", "south").astype(object)
    columns["target"] = np.array([f"class_{v}" for v in y[rows]], dtype=object)
    columns["rid"] = np.array([f"w{i}" for i in rows], dtype=object)
    return pa.table(columns)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    X, y = load_wine(return_X_y=True)
    root = tmp_path_factory.mktemp("drift-outputs")
    pq.write_table(_half(X, y, np.arange(0, len(y), 2), False, 0), root / "base.parquet")
    pq.write_table(_half(X, y, np.arange(1, len(y), 2), True, 1), root / "new.parquet")
    out = root / "out"
    p = beam.Pipeline(runner=runner_for("DirectRunner"), options=PipelineOptions([
        "--direct_running_mode=in_memory", "--default_sdk_harness_log_level=WARNING"]))
    _ = p | Sanitize(input=str(root / "new.parquet"), output=str(out), label_column="target", id_column="rid",
                     seed=1, baseline={"data": str(root / "base.parquet")})
    result = p.run()
    result.wait_until_finish()
    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    return {"root": root, "out": out, "provenance": load_json(out / "provenance.json"),
            "counters": {m.key.metric.name: m.committed for m in metrics["counters"]},
            "gauges": {m.key.metric.name: m.committed.value for m in metrics["gauges"]}}


def test_the_planted_changes_alarm_and_carry_what_the_report_draws(run):
    drift = run["provenance"]["drift"]
    assert drift["verdict"] == "warning" and (run["out"] / "manifest.json").is_file()
    assert {a["column"] for a in drift["alarms"]} == {"alcohol", "cellar"}
    alcohol, cellar = drift["columns"]["alcohol"], drift["columns"]["cellar"]
    hist = alcohol["histogram"]
    n_base, n_new = alcohol["statistics"]["js_distance"]["sample"]
    assert len(hist["edges"]) == len(hist["baseline"]) + 1 == len(hist["new"]) + 1
    assert hist["edges"] == sorted(hist["edges"])
    assert (sum(hist["baseline"]), sum(hist["new"])) == (n_base, n_new) == (89, 89)
    # shifted up: the new half fills the baseline's top bin far beyond its share
    assert hist["new"][-1] > 2 * hist["baseline"][-1]
    shares = cellar["shares"]
    assert sorted(shares["levels"]) == ["north", "south"]
    assert sum(shares["baseline"]) == sum(shares["new"]) == 89
    north = shares["levels"].index("north")
    assert shares["new"][north] > shares["baseline"][north] + 20
    quiet = [c for c in drift["columns"].values() if not c["alarm"]]
    assert quiet and not any("histogram" in c or "shares" in c for c in quiet)


def test_beam_metrics_count_the_comparison(run):
    drift, counters = run["provenance"]["drift"], run["counters"]
    assert counters["drift_columns_compared"] == len(drift["columns"]) > 10
    assert counters["drift_columns_alarmed"] == sum(c["alarm"] for c in drift["columns"].values()) == 2
    assert counters["drift_alarms"] == len(drift["alarms"]) >= 2
    assert run["gauges"]["drift_verdict"] == 1  # warning
    assert counters["rows_read"] == 89  # the new half only: the baseline is read, never scored


def test_report_shows_the_verdict_scores_and_charts_in_a_browser(run, tmp_path):
    drift, out = run["provenance"]["drift"], run["out"]
    page = open_page(out / "report.html", tmp_path)
    page.assert_healthy()
    verdict = page.by_id("drift-verdict")
    assert verdict is not None and verdict.attrs["data-verdict"] == "warning"
    assert "base.parquet" in verdict.text() and "2 of" in verdict.text()
    assert page.by_id("drift-warning") is not None and page.by_id("drift-critical") is None
    assert any(a.attrs.get("href") == "#drift" for a in page.elements("a"))
    rows = [tr for tr in page.elements("tr") if "data-alarm" in tr.attrs]
    flags = [tr.attrs["data-alarm"] for tr in rows]
    assert flags == sorted(flags, reverse=True) and flags.count("1") == len(drift["alarms"])  # alarmed first
    assert len(rows) == sum(len(c["statistics"]) for c in drift["columns"].values())
    alarms = {(a["column"], a["statistic"]): a for a in drift["alarms"]}
    for tr in rows[:len(alarms)]:
        cells = [td.text() for td in tr.children if getattr(td, "tag", None) == "td"]
        alarm = alarms.pop((cells[0], cells[2]))
        assert cells[3:7] == [fmt(alarm["value"]), fmt(alarm["threshold"]), "alarm", "warning"]
    assert alarms == {}
    charts = {n.attrs.get("aria-label", "") for n in page.elements("svg")}
    assert {"Histogram of alcohol: baseline and new data", "Shares of cellar: baseline and new data"} <= charts
    assert not any("f3" in c for c in charts)  # columns that did not drift are not drawn

    shot = ARTIFACTS / "report-drift.png"
    open_page(out / "report.html", tmp_path, screenshot=shot, window="1400,1300")  # summary, then drift
    info = png_info(shot)
    assert (info["width"], info["height"]) == (1400, 1300)
    assert info["bytes"] > 20_000 and info["distinct"] > 50, f"screenshot looks blank: {info}"


def test_report_without_a_baseline_has_no_drift_section_and_a_critical_one_says_nothing_was_published(run):
    provenance = run["provenance"]
    plain = {k: v for k, v in provenance.items() if k not in ("drift", "baseline")}
    html = render_report(str(run["out"]), plain)
    assert 'id="drift' not in html and 'href="#drift"' not in html
    critical = copy.deepcopy(provenance)
    critical["drift"]["verdict"] = "critical"
    critical["drift"]["alarms"][0]["severity"] = "critical"
    html = render_report(str(run["out"]), critical)
    assert 'id="drift-critical"' in html and 'data-verdict="critical"' in html
    assert f"<code>{critical['drift']['alarms'][0]['column']}</code>" in html.split('id="drift-critical"')[1]


@pytest.mark.parametrize("typed", [True, False], ids=["openlineage-client", "plain-dicts"])
def test_lineage_carries_the_drift_facet_and_the_baseline_input(run, typed):
    provenance, root = run["provenance"], run["root"]
    written = load_json(run["out"] / "lineage.json")
    event = build_run_event(provenance, str(run["out"]), typed=typed)
    for ev in (written, event):
        facet = ev["run"]["facets"]["sanitizer_drift"]
        assert facet["_schemaURL"].endswith("#SanitizerDriftRunFacet")
        assert facet["verdict"] == "warning" and facet["alarms"] == provenance["drift"]["alarms"]
        assert facet["baseline"] == {"kind": "data", "path": str(root / "base.parquet"), "rows": 89}
        for name, column in provenance["drift"]["columns"].items():
            for stat, entry in column["statistics"].items():
                assert facet["columns"][name]["statistics"][stat] == {
                    "value": entry["value"], "threshold": entry["threshold"], "alarm": entry["alarm"]}
        names = {(i["namespace"], i["name"]): i for i in ev["inputs"]}
        baseline = names[("file", str(root / "base.parquet"))]
        assert baseline["inputFacets"]["inputStatistics"]["rowCount"] == 89
        assert ("file", str(root / "new.parquet")) in names and len(names) == 2
    plain = {k: v for k, v in provenance.items() if k not in ("drift", "baseline")}
    event = build_run_event(plain, str(run["out"]), typed=typed)
    assert "sanitizer_drift" not in event["run"]["facets"] and len(event["inputs"]) == 1


BREAKER_PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import sanitizer_dag_common as common

print(json.dumps({"stops": list(common.DRIFT_STOPS),
                  "verdicts": [common.drift_verdict(json.loads(p)) for p in sys.stdin.read().split("\n---\n")]}))
"""


def test_the_airflow_breaker_stops_on_critical_drift_and_lets_a_warning_through(run, tmp_path):
    try:
        python = airflow_env.ensure() / "python"
    except airflow_env.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    provenance = run["provenance"]
    critical = copy.deepcopy(provenance)
    critical["drift"]["verdict"] = "critical"
    unrecorded = {**provenance, "drift": None}
    plain = {k: v for k, v in provenance.items() if k not in ("drift", "baseline")}
    given = "\n---\n".join(json.dumps(p) for p in (provenance, critical, unrecorded, plain))
    proc = subprocess.run([str(python), "-c", BREAKER_PROBE, str(DAGS_FOLDER)], input=given, capture_output=True,
                          text=True, env={"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, airflow_env.tail(proc)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    (warning, text), (stop, _), (missing, _), (none, _) = out["verdicts"]
    assert (warning, stop, missing, none) == ("warning", "critical", "missing", "none")
    assert set(out["stops"]) == {"critical", "missing"}
    for alarm in provenance["drift"]["alarms"]:  # a warning names every alarm in the task's log
        assert f"{alarm['column']} {alarm['statistic']} {alarm['value']:.3g} > {alarm['threshold']:.3g}" in text
