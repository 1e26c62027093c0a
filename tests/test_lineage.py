"""sanitizer.lineage: the OpenLineage RunEvent of a real run validates against the spec and tells the truth.

The JSON Schema below restates the parts of the OpenLineage 2-0-2 spec (RunEvent, Run, Job, datasets,
BaseFacet) and of the standard facets the event uses; it is checked with ``jsonschema`` (a dependency of
Great Expectations), formats included (uuid, date-time, uri).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest

from conftest import digit_ids, load_json, run_cli, write_digits_parquet
from sanitizer import lineage

REPO = Path(__file__).resolve().parents[1]
DEMO_SUITE = REPO / "validations" / "digits_demo.json"
FAST = "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"

FACET = {"$ref": "#/$defs/BaseFacet"}
STATS_INT = {"type": "integer", "minimum": 0}
ASSERTIONS = {
    "allOf": [
        FACET,
        {
            "type": "object",
            "required": ["assertions"],
            "properties": {
                "assertions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["assertion", "success"],
                        "properties": {
                            "assertion": {"type": "string"},
                            "success": {"type": "boolean"},
                            "column": {"type": "string"},
                            "severity": {"type": "string"},
                            "failures": {"type": "integer"},
                            "properties": {"type": "object"},
                        },
                    },
                }
            },
        },
    ]
}
SCHEMA_FACET = {
    "allOf": [
        FACET,
        {
            "type": "object",
            "properties": {
                "fields": {
                    "type": "array",
                    "items": {"type": "object", "required": ["name"],
                              "properties": {"name": {"type": "string"}, "type": {"type": "string"}}},
                }
            },
        },
    ]
}
DATASET_FACETS = {
    "type": "object",
    "properties": {"schema": SCHEMA_FACET, "dataQualityAssertions": ASSERTIONS},
    "additionalProperties": FACET,
}
RUN_EVENT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "BaseFacet": {
            "type": "object",
            "required": ["_producer", "_schemaURL"],
            "properties": {"_producer": {"type": "string", "format": "uri"},
                           "_schemaURL": {"type": "string", "format": "uri"}},
            "additionalProperties": True,
        },
        "Dataset": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1},
                           "facets": DATASET_FACETS},
        },
        "InputDataset": {
            "allOf": [
                {"$ref": "#/$defs/Dataset"},
                {"type": "object", "properties": {"inputFacets": {
                    "type": "object",
                    "properties": {
                        "dataQualityAssertions": ASSERTIONS,
                        "inputStatistics": {"allOf": [FACET, {"type": "object", "properties": {
                            "rowCount": STATS_INT, "size": STATS_INT, "fileCount": STATS_INT}}]},
                        "dataQualityMetrics": {"allOf": [FACET, {"type": "object", "required": ["columnMetrics"],
                                                                 "properties": {"rowCount": STATS_INT,
                                                                                "bytes": STATS_INT,
                                                                                "columnMetrics": {"type": "object"}}}]},
                    },
                    "additionalProperties": FACET,
                }}},
            ]
        },
        "OutputDataset": {
            "allOf": [
                {"$ref": "#/$defs/Dataset"},
                {"type": "object", "properties": {"outputFacets": {
                    "type": "object",
                    "properties": {"outputStatistics": {"allOf": [FACET, {
                        "type": "object", "required": ["rowCount"],
                        "properties": {"rowCount": STATS_INT, "size": STATS_INT, "fileCount": STATS_INT}}]}},
                    "additionalProperties": FACET,
                }}},
            ]
        },
    },
    "type": "object",
    "required": ["eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri",
                      "pattern": r"^https://openlineage\.io/spec/2-0-2/OpenLineage\.json#"},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {
                    "type": "object",
                    "properties": {
                        "errorMessage": {"allOf": [FACET, {
                            "type": "object", "required": ["message", "programmingLanguage"],
                            "properties": {"message": {"type": "string"}, "programmingLanguage": {"type": "string"}}}]},
                        "processing_engine": {"allOf": [FACET, {"type": "object", "required": ["version"]}]},
                    },
                    "additionalProperties": FACET,
                },
            },
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "facets": {
                    "type": "object",
                    "properties": {"jobType": {"allOf": [FACET, {"type": "object",
                                                                 "required": ["processingType", "integration"]}]}},
                    "additionalProperties": FACET,
                },
            },
        },
        "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
        "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
    },
}

FORMATS = jsonschema.FormatChecker()  # uuid is checked out of the box; date-time and uri need a package each


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value or not (value.endswith("Z") or value[-6] in "+-"):
        raise ValueError("not an RFC 3339 date-time with a time zone")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMATS.checks("uri")
def _uri(value) -> bool:
    if not isinstance(value, str):
        return True
    parsed = urlparse(value)
    return bool(parsed.scheme) and bool(parsed.netloc) and " " not in value


def validation_errors(event: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(RUN_EVENT_SCHEMA, format_checker=FORMATS)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(event)]


def all_facets(event: dict):
    """(where, name, facet) for every facet in the event."""
    yield from (("run", k, v) for k, v in event["run"].get("facets", {}).items())
    yield from (("job", k, v) for k, v in event["job"].get("facets", {}).items())
    for side in ("inputs", "outputs"):
        for ds in event[side]:
            for group in ("facets", "inputFacets", "outputFacets"):
                yield from ((f"{side}:{ds['name']}:{group}", k, v) for k, v in ds.get(group, {}).items())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    """A run that publishes (the demo suite passes) and one the suite stops (too few rows)."""
    X, y = digits
    d = tmp_path_factory.mktemp("lineage")
    config = d / "fast.yaml"
    config.write_text(FAST)
    full = write_digits_parquet(d / "in" / "digits.parquet", X, y, ids=digit_ids(len(y)))
    small = write_digits_parquet(d / "small" / "few_digits.parquet", X[:400], y[:400], ids=digit_ids(400))
    results = {}
    for key, inp in (("ok", full), ("stopped", small)):
        out = d / key
        rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", "image_id",
                     "--expectations", DEMO_SUITE, "--config", config, "-q")
        results[key] = (rc, out, load_json(out / "provenance.json"), inp)
    return results


@pytest.fixture(scope="module")
def complete(runs):
    rc, out, provenance, inp = runs["ok"]
    assert rc == 0 and (out / "manifest.json").exists()
    event = lineage.build_run_event(provenance, str(out))
    path = lineage.write_run_event(str(out), event)
    return event, out, provenance, inp, path


def test_complete_event_validates_against_the_openlineage_schema(complete):
    event = complete[0]
    assert validation_errors(event) == []
    assert event["eventType"] == "COMPLETE"
    assert event["schemaURL"] == lineage.RUN_EVENT_SCHEMA
    assert event["producer"].startswith(lineage.PRODUCER)


def test_every_facet_names_its_producer_and_schema(complete):
    event = complete[0]
    facets = list(all_facets(event))
    assert len(facets) >= 10
    for where, name, facet in facets:
        assert facet["_producer"] == event["producer"], (where, name)
        assert urlparse(facet["_schemaURL"]).scheme == "https", (where, name)
        if name != "sanitizer":
            assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/"), (where, name)
            assert facet["_schemaURL"].endswith("#/$defs/" + facet["_schemaURL"].split("/")[-1].split(".")[0])


def test_lineage_json_is_the_event(complete):
    event, out, _, _, path = complete
    assert Path(path) == out / "lineage.json"
    assert load_json(path) == json.loads(json.dumps(event))


def test_run_id_is_a_uuid_derived_from_the_run_id(complete):
    event, out, provenance, _, _ = complete
    run_id = event["run"]["runId"]
    assert uuid.UUID(run_id).version == 5
    assert run_id == lineage.build_run_event(provenance, str(out))["run"]["runId"]  # deterministic
    assert event["run"]["facets"]["sanitizer"]["runId"] == provenance["run_id"]
    given = str(uuid.uuid4())
    assert lineage.build_run_event(dict(provenance, run_id=given), str(out))["run"]["runId"] == given


def test_job_and_datasets_are_named_by_the_conventions(complete):
    event, out, _, inp, _ = complete
    assert event["job"] == dict(event["job"], namespace="sanitizer", name="sanitize.digits")
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", str(inp.resolve()))]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [
        ("file", str(out.resolve() / "clean")), ("file", str(out.resolve() / "quarantine"))]
    assert lineage.dataset_id("gs://bucket/runs/out/clean") == ("gs://bucket", "runs/out/clean")


def test_row_counts_and_sizes_equal_the_provenance(complete):
    event, out, provenance, _, _ = complete
    counts = provenance["counts"]
    stats = [d["inputFacets"]["inputStatistics"] for d in event["inputs"]]
    assert sum(s["rowCount"] for s in stats) == counts["rows_in"] == 1797
    assert [s["size"] for s in stats] == [i["bytes"] for i in provenance["inputs"]]
    assert [d["inputFacets"]["dataQualityMetrics"]["rowCount"] for d in event["inputs"]] == [1797]
    clean, quarantine = (d["outputFacets"]["outputStatistics"] for d in event["outputs"])
    manifest = load_json(out / "manifest.json")
    assert clean["rowCount"] == counts["clean"] == manifest["clean"]["rows"]
    assert quarantine["rowCount"] == counts["quarantined"] == manifest["quarantine"]["rows"]
    assert clean["size"] == sum(s["bytes"] for s in manifest["clean"]["shards"])
    assert clean["fileCount"] == len(manifest["clean"]["shards"])


def test_schemas_come_from_the_published_output(complete):
    event, out, _, _, _ = complete
    manifest = load_json(out / "manifest.json")
    fields = lambda d: [(f["name"], f["type"]) for f in d["facets"]["schema"]["fields"]]  # noqa: E731
    clean, quarantine = event["outputs"]
    assert fields(clean) == [(f["name"], f["type"]) for f in manifest["schema"]]
    assert [n for n, _ in fields(event["inputs"][0])] == ["image_id", "pixels", "label"]
    assert "sanitizer_reason_codes" in [n for n, _ in fields(quarantine)]


def test_validation_checks_appear_as_data_quality_assertions(complete):
    event, _, provenance, _, _ = complete
    checks = provenance["validation"]["checks"]
    assert checks, "the demo suite should produce data-set checks"
    on_input = event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    on_clean = event["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    assert "dataQualityAssertions" not in event["outputs"][1]["facets"]
    as_pairs = lambda items: sorted((a["assertion"], a["properties"]["on"], a["success"]) for a in items)  # noqa: E731
    assert as_pairs(on_input) == sorted((c["expectation"], c["on"], c["success"]) for c in checks
                                        if c["on"] != "clean output")
    assert as_pairs(on_clean) == sorted((c["expectation"], c["on"], c["success"]) for c in checks
                                        if c["on"] == "clean output")
    shares = [a for a in on_input if a["assertion"] == "sanitizer:class_share_between"]
    assert len(shares) == 10 and {a["column"] for a in shares} == {"label"}
    assert sorted(a["properties"]["class"] for a in shares) == [str(v) for v in range(10)]
    row_count = [a for a in on_input if a["assertion"] == "expect_table_row_count_to_be_between"]
    assert row_count and all("column" not in a and a["properties"]["observed"] == 1797 for a in row_count)
    assert {a["column"] for a in on_clean if a["assertion"] == "expect_column_values_to_not_be_null"} == {
        "image_id", "pixels", "label"}


def test_a_run_without_a_suite_has_no_assertions(complete):
    event, out, provenance, _, _ = complete
    bare = lineage.build_run_event(dict(provenance, validation=None), str(out))
    assert validation_errors(bare) == []
    assert all("dataQualityAssertions" not in d.get("inputFacets", {}) for d in bare["inputs"])
    assert all("dataQualityAssertions" not in d["facets"] for d in bare["outputs"])


def test_a_failed_run_gives_a_fail_event_with_its_error(runs):
    rc, out, provenance, inp = runs["stopped"]
    assert rc == 2 and not (out / "manifest.json").exists() and provenance["status"] == "failed"
    message = "data-set-level expectations failed, so nothing was published"
    event = lineage.build_run_event(provenance, str(out), state="FAIL", error=message)
    assert validation_errors(event) == []
    assert event["eventType"] == "FAIL"
    error = event["run"]["facets"]["errorMessage"]
    assert error["message"] == message and error["programmingLanguage"] == "PYTHON"
    assert event["outputs"] == []  # nothing was published
    assert event["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == provenance["counts"]["rows_in"] == 400
    failed = [a for a in event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"] if not a["success"]]
    assert ("expect_table_row_count_to_be_between", "error") in {(a["assertion"], a["severity"]) for a in failed}

    derived = lineage.build_run_event(provenance, str(out), state="FAIL")
    assert "expect_table_row_count_to_be_between" in derived["run"]["facets"]["errorMessage"]["message"]


def test_an_event_for_a_run_that_failed_before_provenance_still_validates(tmp_path):
    event = lineage.build_run_event({}, str(tmp_path), state="FAIL", error="input 'x' has no files")
    assert validation_errors(event) == []
    assert event["inputs"] == [] and event["outputs"] == []
    assert event["run"]["facets"]["errorMessage"]["message"] == "input 'x' has no files"
    with pytest.raises(ValueError, match="state must be one of"):
        lineage.build_run_event({}, str(tmp_path), state="DONE")


def test_the_schema_rejects_what_the_spec_rejects(complete):
    """The checks above have teeth: a broken event does not validate."""
    event = json.loads(json.dumps(complete[0]))
    event["run"]["runId"] = "20261129T082820Z-7a49561769"
    del event["outputs"][0]["outputFacets"]["outputStatistics"]["_schemaURL"]
    event["eventTime"] = "yesterday"
    errors = validation_errors(event)
    assert any(e.startswith("run/runId") for e in errors)
    assert any("_schemaURL" in e for e in errors)
    assert any(e.startswith("eventTime") for e in errors)
