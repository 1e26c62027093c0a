"""sanitizer.runs.lineage.events: the OpenLineage RunEvent of a real run validates against the spec and tells the truth.

The JSON Schema below restates the parts of the OpenLineage 2-0-2 spec (RunEvent, Run, Job, datasets,
BaseFacet) and of the standard facets the event uses; it is checked with ``jsonschema`` (a dependency of
Great Expectations), formats included (uuid, date-time, uri).
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import sys
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest

from conftest import digit_ids, load_json, run_cli, write_digits_parquet, write_rows
from sanitizer.runs.lineage import events as lineage
from sanitizer.runs.lineage import emit as lineage_emit
from sanitizer.runs.lineage import parts as lineage_parts

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
                    "items": {  # DataQualityAssertionsDatasetFacet 1-1-0: these keys and no others
                        "type": "object",
                        "required": ["assertion", "success"],
                        "properties": {
                            "assertion": {"type": "string"},
                            "success": {"type": "boolean"},
                            "column": {"type": "string"},
                            **{k: {"type": "string"} for k in ("severity", "name", "description", "expected",
                                                               "actual", "content", "contentType")},
                            "params": {"type": "object"},
                        },
                        "additionalProperties": False,
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
RUN_REF = {"type": "object", "required": ["runId"], "properties": {"runId": {"type": "string", "format": "uuid"}}}
JOB_REF = {"type": "object", "required": ["namespace", "name"],
           "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}}}
PARENT = {  # ParentRunFacet 1-2-0
    "type": "object",
    "required": ["run", "job"],
    "properties": {"run": RUN_REF, "job": JOB_REF,
                   "root": {"type": "object", "required": ["run", "job"], "properties": {"run": RUN_REF, "job": JOB_REF}}},
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
                        "parent": {"allOf": [FACET, PARENT]},
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


class Receiver:
    """An OpenLineage HTTP endpoint on 127.0.0.1 that records every request it is sent."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, json.loads(body)))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> list[dict]:
        """The events received since the last take."""
        events = [body for _, body in self.requests]
        self.requests.clear()
        return events

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@contextmanager
def lineage_env(tmp_path: Path, **env: str):
    """Only ``env`` of the OpenLineage settings (no openlineage.yml in the working folder or home either);
    the process environment restored afterwards (the client adds OPENLINEAGE__* aliases of its own)."""
    saved, cwd = dict(os.environ), os.getcwd()
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[key]
    os.environ.update(env, HOME=str(tmp_path))
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


PARENT_RUN, ROOT_RUN = str(uuid.uuid4()), str(uuid.uuid4())
PARENT_ENV = {"OPENLINEAGE_PARENT_ID": f"airflow/sanitize_dag.sanitize/{PARENT_RUN}",
              "OPENLINEAGE_ROOT_PARENT_ID": f"airflow/sanitize_dag/{ROOT_RUN}"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits, receiver):
    """A run that publishes (the demo suite passes), sending to ``receiver`` through OPENLINEAGE_URL with
    Airflow's parent-run variables; one the suite stops (too few rows), configured by an openlineage.yml;
    one with no OpenLineage configuration at all. Each keeps the events the receiver got."""
    X, y = digits
    d = tmp_path_factory.mktemp("lineage")
    config = d / "fast.yaml"
    config.write_text(FAST)
    (d / "ol.yml").write_text(f"transport:\n  type: http\n  url: {receiver.url}\n")
    full = write_digits_parquet(d / "in" / "digits.parquet", X, y, ids=digit_ids(len(y)))
    small = write_digits_parquet(d / "small" / "few_digits.parquet", X[:400], y[:400], ids=digit_ids(400))
    envs = {"ok": {"OPENLINEAGE_URL": receiver.url, **PARENT_ENV},
            "stopped": {"OPENLINEAGE_CONFIG": str(d / "ol.yml")},
            "quiet": {}}
    results = {}
    for key, inp in (("ok", full), ("stopped", small), ("quiet", small)):
        out = d / key
        home = d / f"home-{key}"
        home.mkdir()
        with lineage_env(home, **envs[key]):
            rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column",
                         "image_id", "--expectations", DEMO_SUITE, "--config", config, "-q")
        results[key] = (rc, out, load_json(out / "provenance.json"), inp)
        receiver.sent = getattr(receiver, "sent", {})
        receiver.sent[key] = receiver.take()
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
    as_pairs = lambda items: sorted((a["assertion"], a["params"]["on"], a["success"]) for a in items)  # noqa: E731
    assert as_pairs(on_input) == sorted((c["expectation"], c["on"], c["success"]) for c in checks
                                        if c["on"] != "clean output")
    assert as_pairs(on_clean) == sorted((c["expectation"], c["on"], c["success"]) for c in checks
                                        if c["on"] == "clean output")
    shares = [a for a in on_input if a["assertion"] == "sanitizer:class_share_between"]
    assert len(shares) == 10 and {a["column"] for a in shares} == {"label"}
    assert sorted(a["params"]["class"] for a in shares) == [str(v) for v in range(10)]
    row_count = [a for a in on_input if a["assertion"] == "expect_table_row_count_to_be_between"]
    assert row_count and all("column" not in a and a["actual"] == "1797" for a in row_count)
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


# --------------------------------------------------------------------------- sent through openlineage-python


def test_a_run_sends_start_then_complete_with_one_run_id(runs, receiver):
    rc, out, provenance, inp = runs["ok"]
    assert rc == 0
    sent = receiver.sent["ok"]
    assert [e["eventType"] for e in sent] == ["START", "COMPLETE"]
    run_id = lineage.run_uuid(provenance["run_id"])
    assert {e["run"]["runId"] for e in sent} == {run_id}
    assert {(e["job"]["namespace"], e["job"]["name"]) for e in sent} == {("sanitizer", "sanitize.digits")}
    for event in sent:
        assert validation_errors(event) == [], event["eventType"]
        assert event["producer"] == lineage.producer()
    assert {path for path, _ in receiver.requests} <= {"/api/v1/lineage"}


def test_the_start_event_names_the_datasets_as_planned(runs, receiver):
    _, out, provenance, inp = runs["ok"]
    start = receiver.sent["ok"][0]
    assert start["eventTime"] == provenance["started_at"]
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [("file", str(inp.resolve()))]
    assert [d["name"] for d in start["outputs"]] == [str(out.resolve() / "clean"), str(out.resolve() / "quarantine")]
    assert [f["name"] for f in start["inputs"][0]["facets"]["schema"]["fields"]] == ["image_id", "pixels", "label"]
    assert all("outputFacets" not in d or not d["outputFacets"] for d in start["outputs"])  # nothing counted yet
    assert start["run"]["facets"]["sanitizer"]["status"] == "started"


def test_the_complete_event_carries_the_typed_facets(runs, receiver):
    _, out, provenance, _ = runs["ok"]
    complete = receiver.sent["ok"][1]
    assert set(complete["job"]["facets"]) >= {"jobType", "documentation"}
    assert set(complete["run"]["facets"]) >= {"processing_engine", "parent", "sanitizer"}
    assert "errorMessage" not in complete["run"]["facets"]
    source = complete["inputs"][0]
    assert set(source["facets"]) >= {"schema", "version"}
    assert set(source["inputFacets"]) >= {"inputStatistics", "dataQualityMetrics", "dataQualityAssertions"}
    clean, quarantine = complete["outputs"]
    assert clean["outputFacets"]["outputStatistics"]["rowCount"] == provenance["counts"]["clean"]
    assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == provenance["counts"]["quarantined"]
    assert "dataQualityAssertions" in clean["facets"] and "schema" in clean["facets"]
    for where, name, facet in all_facets(complete):
        if name in lineage.FACET_SCHEMAS:
            assert facet["_schemaURL"] == lineage.FACET_SCHEMAS[name], (where, name)
    # what lineage.json holds is the event that was sent (the client adds its own facets, e.g. tags)
    written = load_json(out / "lineage.json")
    assert written["eventType"] == "COMPLETE" and written["run"]["runId"] == complete["run"]["runId"]
    assert written["outputs"] == complete["outputs"] and written["inputs"] == complete["inputs"]
    assert set(written["run"]["facets"]) <= set(complete["run"]["facets"])


def test_airflow_s_parent_run_becomes_the_parent_facet(runs, receiver):
    for event in receiver.sent["ok"]:
        parent = strip_empty(event["run"]["facets"]["parent"])  # the client's classes send "facets": {} too
        assert parent["run"] == {"runId": PARENT_RUN}
        assert parent["job"] == {"namespace": "airflow", "name": "sanitize_dag.sanitize"}
        assert parent["root"] == {"run": {"runId": ROOT_RUN}, "job": {"namespace": "airflow", "name": "sanitize_dag"}}
        assert parent["_schemaURL"] == lineage.FACET_SCHEMAS["parent"]


def test_a_stopped_run_sends_one_fail_with_its_error(runs, receiver):
    """Configured by openlineage.yml (OPENLINEAGE_CONFIG): START, then FAIL once - the publish stage sends it
    and the launcher, seeing the job fail, does not send another."""
    rc, out, provenance, _ = runs["stopped"]
    assert rc == 2 and not (out / "manifest.json").exists()
    sent = receiver.sent["stopped"]
    assert [e["eventType"] for e in sent] == ["START", "FAIL"]
    assert {e["run"]["runId"] for e in sent} == {lineage.run_uuid(provenance["run_id"])}
    fail = sent[1]
    assert validation_errors(fail) == []
    error = fail["run"]["facets"]["errorMessage"]
    assert "data-set-level expectations failed" in error["message"] and error["programmingLanguage"] == "PYTHON"
    assert fail["outputs"] == [] and "parent" not in fail["run"]["facets"]
    assert load_json(out / "lineage.json")["eventType"] == "FAIL"


def test_with_no_transport_nothing_is_sent_and_lineage_json_is_written(runs, receiver):
    rc, out, provenance, _ = runs["quiet"]
    assert rc == 2 and receiver.sent["quiet"] == []
    written = load_json(out / "lineage.json")
    assert validation_errors(written) == [] and written["eventType"] == "FAIL"
    assert written["run"]["runId"] == lineage.run_uuid(provenance["run_id"])


def test_the_launcher_sends_fail_when_the_job_fails_outside_publication(tmp_path, receiver, complete):
    """A job that failed before publication recorded anything: job_failed records and sends FAIL itself."""
    ctx = lineage_emit.LineageContext("20261203T000000Z-abc", "sanitizer", "sanitize.x",
                                      transport={"type": "http", "url": receiver.url})
    receiver.take()
    with lineage_env(tmp_path):
        lineage_emit.job_failed(ctx, str(tmp_path), "the pipeline failed, nothing was published: boom")
        lineage_emit.job_failed(ctx, str(tmp_path), "again")  # recorded: not sent twice
    sent = receiver.take()
    assert [e["eventType"] for e in sent] == ["FAIL"]
    assert sent[0]["run"]["facets"]["errorMessage"]["message"].endswith("boom")
    assert validation_errors(sent[0]) == [] and load_json(tmp_path / "lineage.json")["eventType"] == "FAIL"


def test_lineage_that_cannot_be_sent_is_a_warning_not_a_failure(tmp_path, complete, caplog):
    event, out, provenance, _, _ = complete
    closed = Receiver()
    closed.close()  # nothing listens there any more
    ctx = lineage_emit.LineageContext(provenance["run_id"], "sanitizer", "sanitize.digits",
                                      transport={"type": "http", "url": closed.url, "retry": {"total": 0}})
    with lineage_env(tmp_path), caplog.at_level(logging.WARNING, logger="sanitizer"):
        typed = lineage.make_event(lineage_emit._parts(), provenance, str(out))
        assert lineage_emit.send(typed, ctx) is False
    assert "could not send the OpenLineage COMPLETE event" in caplog.text


def test_parent_variables_are_parsed_as_airflow_writes_them(caplog):
    parent = lineage_emit.parent_from_env(PARENT_ENV)
    assert parent == {"namespace": "airflow", "name": "sanitize_dag.sanitize", "runId": PARENT_RUN,
                      "root": {"namespace": "airflow", "name": "sanitize_dag", "runId": ROOT_RUN}}
    assert lineage_emit.parent_from_env({}) is None
    with caplog.at_level(logging.WARNING, logger="sanitizer"):
        assert lineage_emit.parent_from_env({"OPENLINEAGE_PARENT_ID": "airflow/dag.task/not-a-uuid"}) is None
    assert "OPENLINEAGE_PARENT_ID" in caplog.text


def test_the_transport_is_the_client_s_own_configuration(tmp_path):
    with lineage_env(tmp_path):
        assert lineage_emit.resolve_transport() is None  # nothing configured: nothing is sent
    with lineage_env(tmp_path, OPENLINEAGE_URL="http://marquez:5000", OPENLINEAGE_API_KEY="k"):
        assert lineage_emit.resolve_transport() == {"type": "http", "url": "http://marquez:5000",
                                                    "endpoint": "api/v1/lineage",
                                                    "auth": {"type": "api_key", "apiKey": "k"}}
    (tmp_path / "openlineage.yml").write_text("transport:\n  type: file\n  log_file_path: /tmp/ol.jsonl\n")
    with lineage_env(tmp_path):  # openlineage.yml in the working folder
        assert lineage_emit.resolve_transport() == {"type": "file", "log_file_path": "/tmp/ol.jsonl"}
    with lineage_env(tmp_path, OPENLINEAGE__TRANSPORT__TYPE="kafka", OPENLINEAGE_DISABLED="true"):
        assert lineage_emit.resolve_transport() is None


# --------------------------------------------------------------------------- with and without the extra


def strip_empty(value):
    """The JSON without empty lists and objects (the client's classes default some fields to [] / {})."""
    if isinstance(value, dict):
        return {k: strip_empty(v) for k, v in value.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [strip_empty(v) for v in value]
    return value


def test_the_event_has_one_shape_with_or_without_the_client(complete, runs):
    _, out, provenance, _, _ = complete
    typed = lineage.build_run_event(provenance, str(out), typed=True)
    plain = lineage.build_run_event(provenance, str(out), typed=False)
    assert validation_errors(plain) == []
    assert strip_empty(typed) == strip_empty(plain)
    rc, stopped, failed, _ = runs["stopped"]
    assert strip_empty(lineage.build_run_event(failed, str(stopped), "FAIL", typed=True)) == strip_empty(
        lineage.build_run_event(failed, str(stopped), "FAIL", typed=False))


def test_the_schema_urls_without_the_client_are_the_client_s(complete):
    for kind, (module, cls, schema) in lineage_parts.FACETS.items():
        assert lineage_parts._class(module, cls)._get_schema() == schema, kind


def test_lineage_json_is_written_without_the_extra_installed(tmp_path, complete, monkeypatch, caplog):
    """openlineage-python not importable: lineage.json is still the spec-shaped event; nothing is sent."""
    _, out, provenance, _, _ = complete
    for name in [m for m in sys.modules if m == "openlineage" or m.startswith("openlineage.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openlineage", None)  # import openlineage... raises ImportError
    assert not lineage_parts.client_available()
    with lineage_env(tmp_path, OPENLINEAGE_URL="http://127.0.0.1:9"), \
            caplog.at_level(logging.WARNING, logger="sanitizer"):
        assert lineage_emit.resolve_transport() is None
        ctx = lineage_emit.context_for(provenance["run_id"], provenance["config"]["input"])
        event = lineage_emit.record_run(provenance, str(tmp_path), context=ctx)
    assert "openlineage-python is not installed" in caplog.text
    assert isinstance(event, dict) and ctx.transport is None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sanitizer"):  # a launcher with the client, a worker without
        launched = lineage_emit.LineageContext(provenance["run_id"], "sanitizer", "sanitize.digits",
                                               transport={"type": "http", "url": "http://127.0.0.1:9"})
        assert lineage_emit.send(event, launched) is False
    assert "not installed here" in caplog.text
    written = load_json(tmp_path / "lineage.json")
    assert validation_errors(written) == [] and written["eventType"] == "COMPLETE"


def test_the_transport_travels_with_the_job_to_its_workers(tmp_path, receiver):
    """The launcher's configuration is what the publish stage uses: the workers here (separate processes,
    started after the launcher's variables are gone) see no OpenLineage variable, yet COMPLETE arrives."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from sanitizer.beam import Sanitize

    data = write_rows(tmp_path / "data.parquet")
    receiver.take()
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                               "--direct_num_workers=1", "--default_sdk_harness_log_level=WARNING"])
    p = beam.Pipeline(options=options)
    with lineage_env(tmp_path, OPENLINEAGE_URL=receiver.url):
        sanitize = Sanitize(input=str(data), output=str(tmp_path / "out"), label_column="label", id_column="rid")
        _ = p | sanitize
    assert [e["eventType"] for e in receiver.take()] == ["START"]
    with lineage_env(tmp_path):
        p.run().wait_until_finish()
    sent = receiver.take()
    assert [e["eventType"] for e in sent] == ["COMPLETE"]
    assert sent[0]["run"]["runId"] == lineage.run_uuid(sanitize.run_id)
    assert sent[0]["job"]["name"] == "sanitize.data"
