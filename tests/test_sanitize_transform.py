"""``Sanitize`` in a pipeline the user writes: it publishes by itself, and publication can be chained on.

Nothing runs after ``with beam.Pipeline() as p:`` in these tests: the manifest,
provenance, report and lineage must all come from stages of the graph.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to
from conftest import column_values, load_json, write_rows

from sanitizer.beam import Sanitize
from sanitizer.settings.config import build_config
from sanitizer.errors import ConfigError, SanitizerError
from sanitizer.training import load_manifest


def _options():
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--runner=DirectRunner", "--default_sdk_harness_log_level=WARNING"])


def _chained(uri: str) -> str:
    """A stage after publication: it can already verify and load what was published."""
    data = load_manifest(uri)
    return f"{data.manifest['run_id']}:{data.manifest['clean']['rows']}"


def test_a_user_pipeline_publishes_and_chains_on_the_manifest(tmp_path):
    data = write_rows(tmp_path / "data.parquet")
    out = tmp_path / "out"
    sanitize = Sanitize(input=str(data), output=str(out), label_column="label", id_column="rid", seed=3)
    with beam.Pipeline(options=_options()) as p:
        manifest = p | sanitize
        assert_that(manifest, equal_to([f"{out}/manifest.json"]), label="CheckUri")
        chained = manifest | "LoadIt" >> beam.Map(_chained)
        _ = chained | "WriteIt" >> beam.io.WriteToText(str(tmp_path / "chained"), shard_name_template="")

    manifest = load_json(out / "manifest.json")
    provenance = load_json(out / "provenance.json")
    # The stage chained on the manifest ran after publication and read what was published.
    assert (tmp_path / "chained").read_text().split() == [f"{manifest['run_id']}:{manifest['clean']['rows']}"]
    assert manifest["run_id"] == provenance["run_id"] == sanitize.run_id
    assert provenance["status"] == "succeeded" and provenance["accounting"]["holds"]
    assert provenance["counts"]["rows_in"] == 240
    assert provenance["inputs"][0]["rows"] == 240 and len(provenance["inputs"][0]["sha256"]) == 64
    assert (out / "report.html").stat().st_size > 0
    assert json.loads((out / "lineage.json").read_text())["eventType"] == "COMPLETE"
    assert not (out / ".sanitizer-run.json").exists() and not (out / "_work").exists()
    loaded = load_manifest(str(out / "manifest.json")).to_pandas()
    assert len(loaded) == 235
    held = set(column_values(out / "quarantine", "rid"))
    assert {0, 1, 2, 3, 4} <= held  # the planted outliers


def test_config_forms_and_keyword_overrides(tmp_path):
    data = write_rows(tmp_path / "data.parquet")
    path = tmp_path / "sanitize.yaml"
    path.write_text(f"input: {data}\noutput: {tmp_path / 'from-file'}\nlabel_column: label\nseed: 5\n")
    from_file = Sanitize(config=str(path))
    assert from_file.config.seed == 5 and from_file.config.output == str(tmp_path / "from-file")
    overridden = Sanitize(config=str(path), seed=9, output=str(tmp_path / "other"))
    assert overridden.config.seed == 9 and overridden.config.output == str(tmp_path / "other")
    as_dict = Sanitize(config={"input": str(data), "output": "x", "label_column": "label"}, id_column="rid")
    assert as_dict.config.id_column == "rid"
    cfg = build_config({"input": str(data), "output": "y", "label_column": "label"})
    assert Sanitize(config=cfg).config is cfg
    with pytest.raises(ConfigError, match="config file path"):
        Sanitize(config=42)
    with pytest.raises(ConfigError):
        Sanitize(input=str(data), output="z", label_column="label", no_such_key=1)


def test_failed_accounting_inside_the_pipeline_publishes_no_manifest(tmp_path):
    rows = write_rows(tmp_path / "data.parquet")
    table = pq.read_table(rows)
    rid = table.column("rid").to_pylist()
    rid[7] = rid[8]  # a duplicated record id: the accounting check refuses the run
    pq.write_table(table.set_column(0, "rid", pa.array(rid, pa.int64())), rows)
    out = tmp_path / "out"
    with pytest.raises(Exception) as raised:
        with beam.Pipeline(options=_options()) as p:
            _ = p | Sanitize(input=str(rows), output=str(out), label_column="label", id_column="rid")
    assert "duplicated" in str(raised.value)
    assert not (out / "manifest.json").exists()
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "failed" and not provenance["accounting"]["holds"]
    assert json.loads((out / "lineage.json").read_text())["eventType"] == "FAIL"


def test_a_problem_found_while_applying_leaves_the_output_untouched(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SanitizerError, match="does not exist|no input|not found|matches no"):
        with beam.Pipeline(options=_options()) as p:
            _ = p | Sanitize(input=str(tmp_path / "missing.parquet"), output=str(out), label_column="label")
    assert not out.exists()


def test_the_facade_runs_twice_and_survives_importing_the_job_module(tmp_path):
    import sanitizer.beam.job  # noqa: F401 - once, a module named sanitizer.run shadowed the facade's run()

    data = write_rows(tmp_path / "data.parquet")
    first = sanitizer.run(build_config({"input": str(data), "output": str(tmp_path / "a"), "label_column": "label"}))
    second = sanitizer.run(build_config({"input": str(data), "output": str(tmp_path / "b"), "label_column": "label"}))
    assert callable(sanitizer.run)
    assert first["status"] == second["status"] == "succeeded"
    assert first["counts"] == second["counts"]
    assert load_json(tmp_path / "b" / "manifest.json")["run_id"] == second["run_id"]
