"""Beam metrics (sanitizer.beam.metrics): read from the PipelineResult of a real run, checked against what the
run published (provenance counts, the quarantine's scores)."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import load_json, read_dir, write_rows

from sanitizer.beam import Sanitize
from sanitizer.beam.local_runner import runner_for
from sanitizer.beam.metrics import NAMESPACE, SCORE_SCALE


@pytest.fixture(scope="module", params=["in_memory", "multi_processing"])
def run(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    data = write_rows(root / "data.parquet", n=400, outliers=8)
    out = root / "out"
    workers = ["--direct_num_workers=2"] if request.param == "multi_processing" else []
    p = beam.Pipeline(runner=runner_for("DirectRunner"), options=PipelineOptions([
        f"--direct_running_mode={request.param}", *workers, "--default_sdk_harness_log_level=WARNING"]))
    _ = p | Sanitize(input=str(data), output=str(out), label_column="label", id_column="rid", seed=1)
    result = p.run()
    result.wait_until_finish()
    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counters = {m.key.metric.name: m.committed for m in metrics["counters"]}
    distributions = {m.key.metric.name: m.committed for m in metrics["distributions"]}
    return {"out": out, "counters": counters, "distributions": distributions}


def test_row_counters_match_the_published_counts(run):
    counts = load_json(run["out"] / "provenance.json")["counts"]
    c = run["counters"]
    assert c["rows_read"] == counts["rows_in"] == 400
    assert c["rows_clean"] == counts["clean"]
    assert c["rows_quarantined"] == counts["quarantined"] > 0
    assert c["rows_quarantined"] + c["rows_clean"] == c["rows_read"]
    for code, n in counts["by_reason"].items():
        assert c[f"reason_{code}"] == n
    for name, detector in counts["by_detector"].items():
        assert c.get(f"flagged_{name}", 0) == detector["flagged"]


def test_score_distributions_cover_every_scored_row(run):
    counts = load_json(run["out"] / "provenance.json")["counts"]
    held = read_dir(run["out"] / "quarantine")
    for name, detector in counts["by_detector"].items():
        dist = run["distributions"][f"score_milli_{name}"]
        assert dist.count == detector["scored"] > 0
        scores = np.array([s for s in held.column(f"sanitizer_score_{name}").to_pylist() if s is not None])
        if len(scores):  # the quarantined rows' scores lie inside the whole distribution's range
            assert dist.min <= round(scores.min() * SCORE_SCALE) and round(scores.max() * SCORE_SCALE) <= dist.max
        assert dist.min <= dist.mean <= dist.max


def test_score_histograms_count_every_row_the_same_way_whatever_the_batching(run, tmp_path):
    """The fixed-bin histogram provenance records: every scored row once, merged across batches and workers
    (a run cut into 64-row batches gives the same bins), the rows past the outlier threshold = its flags."""
    from conftest import sanitize_quiet

    counts = load_json(run["out"] / "provenance.json")["counts"]["by_detector"]
    cfg = tmp_path / "small-batches.json"
    cfg.write_text('{"scoring": {"batch_rows": 64}, "seed": 1, "id_column": "rid"}')
    assert sanitize_quiet(run["out"].parent / "data.parquet", tmp_path / "out", "--config", str(cfg)) == 0
    small = load_json(tmp_path / "out" / "provenance.json")["counts"]["by_detector"]
    for name, counted in counts.items():
        hist = counted["histogram"]
        assert len(hist["counts"]) == hist["bins"] + 2 and sum(hist["counts"]) == counted["scored"]
        assert small[name]["histogram"] == hist, name
    outlier = counts["outlier"]["histogram"]
    edges = np.linspace(outlier["lo"], outlier["hi"], outlier["bins"] + 1)
    first_past = int(np.searchsorted(edges, 1.0))  # the outlier threshold (1.0) is a bin edge
    assert sum(outlier["counts"][first_past + 1:]) == counts["outlier"]["flagged"] > 0
