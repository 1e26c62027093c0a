"""Fault injection: Great Expectations suites as an attacker or a careless user writes them (issue 30).

What they pin:

* No expectation reaches the network or the filesystem: a JSON schema whose ``$ref`` names a URL
  (http://, file://) or a nested ``$id`` is refused when the suite is loaded, naming the suite, the
  expectation and the reference, and a local HTTP server counting requests sees none. References inside
  the schema (``#/$defs/...``) still work.
* Data values never become markup: no Great Expectations Data Docs are written, the report shows a
  failed check's unexpected values escaped (under its Content-Security-Policy), and a headless browser
  loading every HTML page of the output runs no script.
* Every suite problem is found when the suite is loaded, before the pipeline starts: exit 2, one line,
  no traceback, nothing written.
* Table-shape expectations see the input's real columns and row count, so a correct suite publishes and
  a wrong one blocks, naming what it saw.

Real Parquet files, the real suite loader and the real CLI; a few hundred rows.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.errors import ConfigError
from sanitizer.validation.suite import load_suite, validate_frame
from conftest import load_json, run_cli, synthetic_rows, write_rows

COLUMNS = ["rid", "a", "b", "c", "label"]  # what write_rows writes, in order
ROWS = 240
SCRIPT = "<script>document.title='pwned'</script>"


def write_suite(path: Path, expectations: list, name="suite", **extra) -> Path:
    path.write_text(json.dumps({"name": name, "expectations": expectations, **extra}))
    return path


def run(inp, out, suite, *extra) -> int:
    return run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", "rid",
                   "--expectations", suite, "-q", *extra)


@pytest.fixture
def server():
    """A local HTTP server on a free port that serves a schema and counts the requests it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = b'{"type": "number"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


# --------------------------------------------------------------------------- no network, no files


def json_schema(column: str, schema: dict) -> dict:
    return {"type": "expect_column_values_to_match_json_schema", "kwargs": {"column": column, "json_schema": schema}}


def write_docs(path: Path) -> Path:
    """write_rows' table plus ``doc``, a column of JSON documents (what a JSON-schema check reads)."""
    rid, X, y = synthetic_rows(ROWS)
    docs = [json.dumps({"n": int(i)}) for i in range(ROWS)]
    pq.write_table(pa.table({"rid": rid, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y, "doc": docs}), path)
    return path


def test_a_json_schema_ref_to_a_url_is_refused_before_the_run_and_nothing_is_fetched(tmp_path, server, capfd):
    url, hits = server
    inp = write_docs(tmp_path / "in.parquet")
    suite = write_suite(tmp_path / "s.json", [json_schema("doc", {"$ref": f"{url}/ref.json"})])
    rc = run(inp, tmp_path / "out", suite)
    err = capfd.readouterr().err.strip()
    assert hits == []  # not one request
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "s.json" in err and "expect_column_values_to_match_json_schema" in err and f"{url}/ref.json" in err
    assert not (tmp_path / "out").exists()  # refused before anything ran or was written


@pytest.mark.parametrize("schema", [
    {"$ref": "file://{marker}"},
    {"properties": {"x": {"$ref": "{url}/ref.json"}}},
    {"$defs": {"x": {"$dynamicRef": "{url}/dyn.json"}}, "$ref": "#/$defs/x"},
    {"$defs": {"x": {"$id": "{url}/base/", "$ref": "ref.json"}}, "$ref": "#/$defs/x"},
    {"allOf": [{"$ref": "ref.json"}]},  # relative: resolved against a base URI
], ids=["file", "nested-http", "dynamic-ref", "nested-id", "relative"])
def test_every_reference_outside_the_schema_is_refused_at_load(tmp_path, server, schema):
    url, hits = server
    marker = tmp_path / "secret.json"
    marker.write_text('{"type": "number"}')
    text = json.dumps(schema).replace("{marker}", str(marker)).replace("{url}", url)
    suite = write_suite(tmp_path / "s.json", [json_schema("a", json.loads(text))])
    with pytest.raises(ConfigError, match=r"json_schema.*(would be fetched or read|changes where references)"):
        load_suite(str(suite), COLUMNS)
    assert hits == []


def test_a_reference_inside_the_schema_still_validates(tmp_path, server):
    url, hits = server
    schema = {"$id": f"{url}/root.json", "$defs": {"n": {"type": "object", "required": ["n"]}}, "$ref": "#/$defs/n"}
    suite = load_suite(str(write_suite(tmp_path / "s.json", [json_schema("doc", schema)])), ["doc"])
    frame = pd.DataFrame({"doc": ['{"n": 1}', '{"m": 2}', '{"n": 3}']})
    result = validate_frame(suite, frame, suite.expectations)
    assert result["results"][0]["result"]["unexpected_index_list"] == [1]
    assert hits == []


# --------------------------------------------------------------------------- no markup from the data


@pytest.fixture(scope="module")
def hostile_values(tmp_path_factory):
    """One published run whose clean rows carry a script in a text column that a warning check flags."""
    d = tmp_path_factory.mktemp("suite_xss")
    rid, X, y = synthetic_rows(ROWS)
    note = [SCRIPT if i % 3 == 0 else "ok" for i in range(ROWS)]
    pq.write_table(pa.table({"rid": rid, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y,
                             "note": pa.array(note)}), d / "in.parquet")
    suite = write_suite(d / "s.json", [{"type": "expect_column_values_to_be_in_set", "severity": "warning",
                                        "kwargs": {"column": "note", "value_set": ["ok"]}}])
    rc = run(d / "in.parquet", d / "out", suite)
    return rc, d / "out"


def test_no_data_docs_and_the_report_shows_unexpected_values_escaped(hostile_values):
    rc, out = hostile_values
    assert rc == 0 and (out / "manifest.json").is_file()
    assert not (out / "validation" / "data_docs").exists()
    pages = list(out.rglob("*.html"))
    assert pages == [out / "report.html"], pages
    report = (out / "report.html").read_text()
    assert SCRIPT not in report
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in report  # shown, as text
    assert 'http-equiv="Content-Security-Policy"' in report
    check = next(c for c in load_json(out / "provenance.json")["validation"]["checks"]
                 if c["on"] == "clean output" and c["column"] == "note")
    assert check["success"] is False and check["unexpected"] == [SCRIPT]
    assert check["observed"].endswith("rows unexpected")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium for a headless load")
def test_a_headless_browser_runs_no_script_from_the_output(hostile_values, tmp_path):
    _, out = hostile_values
    for page in out.rglob("*.html"):
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, check=False,
        ).stdout
        assert "<html" in dom.lower(), page
        assert "<title>pwned</title>" not in dom, page


def test_a_suite_name_with_markup_or_a_path_is_refused_at_load(tmp_path):
    for name in ("<img src=x onerror=alert(1)>", "a/../b", "..", "x\\y", "café<b>"):
        suite = write_suite(tmp_path / "s.json", [], name=name)
        with pytest.raises(ConfigError, match="is not a safe name"):
            load_suite(str(suite), COLUMNS)
    assert load_suite(str(write_suite(tmp_path / "ok.json", [], name="train v2.1-café"))).name == "train v2.1-café"
    assert load_suite(str(write_suite(tmp_path / "my suite (v2).json", [], name=""))).name == "my suite _v2"


# --------------------------------------------------------------------------- found at load, before the run

NOT_NULL = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}
LOAD_TIME = {
    "name-with-slash": ({"name": "a/../b", "expectations": [NOT_NULL]}, "is not a safe name"),
    "row-parameter": ({"expectations": [{"type": "expect_column_values_to_be_between",
                                         "kwargs": {"column": "a", "min_value": {"$PARAMETER": "lo"}}}]},
                      r"suite parameter 'lo'"),
    "set-parameter": ({"expectations": [{"type": "expect_column_values_to_be_in_set",
                                         "kwargs": {"column": "label", "value_set": {"$PARAMETER": "labels"}}}]},
                      r"suite parameter 'labels'"),
    "meta-string": ({"meta": "oops", "expectations": [NOT_NULL]}, "'meta' must be a JSON object"),
    "meta-sanitizer-list": ({"meta": {"sanitizer": ["x"]}, "expectations": [NOT_NULL]},
                            "meta.sanitizer must be a JSON object"),
    "class-shares-string": ({"meta": {"sanitizer": {"class_shares": {"0": "x"}}}, "expectations": [NOT_NULL]},
                            r"class_shares\['0'\] must be \[low, high\]"),
    "class-shares-upside-down": ({"meta": {"sanitizer": {"class_shares": {"0": [0.9, 0.1]}}}, "expectations": []},
                                 r"class_shares\['0'\]"),
    "bad-regex": ({"expectations": [{"type": "expect_column_values_to_match_regex",
                                     "kwargs": {"column": "a", "regex": "("}}]}, "does not compile"),
    "min-above-max": ({"expectations": [{"type": "expect_column_values_to_be_between",
                                         "kwargs": {"column": "a", "min_value": 5, "max_value": 1}}]},
                      "above max_value"),
    "result-format": ({"expectations": [{"type": "expect_column_values_to_be_in_set",
                                         "kwargs": {"column": "label", "value_set": [0, 1, 2],
                                                    "result_format": "BOOLEAN_ONLY"}}]},
                      "'result_format', which sanitize sets itself"),
    "other-table": ({"expectations": [{"type": "expect_table_row_count_to_equal_other_table",
                                       "kwargs": {"other_table_name": "t"}}]}, "another table"),
    "invalid-json-schema": ({"expectations": [json_schema("a", {"type": 5})]}, "invalid json_schema"),
    "expectation-meta-list": ({"expectations": [dict(NOT_NULL, meta=["x"])]}, "'meta' that is not an object"),
}


@pytest.mark.parametrize("case", sorted(LOAD_TIME))
def test_a_suite_problem_is_a_config_error_at_load(tmp_path, case):
    suite, message = LOAD_TIME[case]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(ConfigError, match=message):
        load_suite(str(path), COLUMNS)


@pytest.mark.parametrize("case", ["name-with-slash", "set-parameter", "meta-string", "class-shares-string"])
def test_a_run_with_a_bad_suite_exits_2_with_one_line_before_anything_is_written(tmp_path, capfd, case):
    inp = write_rows(tmp_path / "in.parquet", n=ROWS)
    suite = tmp_path / "s.json"
    suite.write_text(json.dumps(LOAD_TIME[case][0]))
    rc = run(inp, tmp_path / "out", suite)
    err = capfd.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "s.json" in err, err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the real table's shape

SHAPE_OK = [
    {"type": "expect_table_column_count_to_equal", "kwargs": {"value": len(COLUMNS)}},
    {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": COLUMNS}},
    {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": COLUMNS}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "rid", "column_index": 0}},
    {"type": "expect_column_type_to_be", "kwargs": {"column": "label", "type_": "int64"}},
    {"type": "expect_table_row_count_to_equal", "kwargs": {"value": ROWS}},  # rows read, 5 of them outliers
]


def test_a_correct_table_shape_suite_publishes(tmp_path):
    inp = write_rows(tmp_path / "in.parquet", n=ROWS)
    rc = run(inp, tmp_path / "out", write_suite(tmp_path / "s.json", SHAPE_OK))
    assert rc == 0
    assert (tmp_path / "out" / "manifest.json").is_file()
    checks = load_json(tmp_path / "out" / "provenance.json")["validation"]["checks"]
    assert all(c["success"] for c in checks), [c for c in checks if not c["success"]]
    assert {c["on"] for c in checks} == {"input columns", "input totals"}


def test_a_wrong_table_shape_suite_blocks_naming_the_real_shape(tmp_path, capfd):
    inp = write_rows(tmp_path / "in.parquet", n=ROWS)
    wrong = [{"type": "expect_table_column_count_to_equal", "kwargs": {"value": 4}},
             {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["a", "b", "c", "label"]}}]
    rc = run(inp, tmp_path / "out", write_suite(tmp_path / "s.json", wrong))
    err = capfd.readouterr().err
    assert rc == 2
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert "expect_table_column_count_to_equal(table) on input columns: observed 5" in err, err
    assert "expect_table_columns_to_match_set(table) on input columns" in err
