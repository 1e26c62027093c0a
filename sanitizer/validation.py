"""Great Expectations suites: row checks inside the pipeline, data-set checks around it.

A suite is a plain Great Expectations 1.x suite saved as JSON (see
``validations/README.md``). ``sanitize run --expectations SUITE.json`` splits it:

* **Row-level** expectations (``expect_column_values_*``: not null, between,
  in set, type, regex...) run on every record batch inside the pipeline, with
  the Great Expectations context and suite built once per worker. A failing row
  is quarantined with the reason ``validation:<expectation type>:<column>``
  next to any detector reasons, and the detectors never see it.
* **Data-set-level** expectations run on the whole: row-count expectations on
  the total rows read, the others (mean, spread, ...) on the bounded sample.
  Class-share bounds, which Great Expectations has no expectation for, live in
  the suite's ``meta.sanitizer.class_shares`` and are checked on the totals.
  ``validation.dataset_failure: stop`` (default) refuses to publish when a
  ``critical`` one fails; ``warning`` / ``info`` failures (GX's ``severity``)
  are recorded and publish; ``warn`` downgrades critical to warning.
  A ``warning`` / ``info`` row-level expectation reports its rows (action
  ``report``) and keeps them clean.
* **Table-shape** expectations (column count, column set or order, a column's
  existence or type: ``SHAPE``) run on the input's real columns, in order, with
  their real types; row counts on the rows read.
* After the run, the clean output is validated against the rest of the suite;
  the publication checks run through one Checkpoint (see
  sanitizer.validation_docs).

Every problem with a suite is found by ``load_suite``, before the pipeline
starts: unsafe names, malformed ``meta``, unknown expectation types, bad kwargs,
suite parameters (``{"$PARAMETER": ...}``) the run cannot supply, expectations
that need a SQL source or another table, and JSON schemas whose ``$ref`` would
fetch a URL or read a file (only references inside the schema, ``#...``, are
accepted).

Results land in ``OUT/validation/`` as Great Expectations result JSON (no Data
Docs: see sanitizer.validation_docs); provenance and ``report.html`` record the
suite, its sha256 and every check with its severity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sanitizer.errors import ConfigError

ROW_PREFIX = "expect_column_values_"
SEVERITIES = ("critical", "warning", "info")  # Great Expectations' FailureSeverity
ROW_COUNT = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
SHAPE = ("expect_table_column_count_to_equal", "expect_table_column_count_to_be_between",
         "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
         "expect_column_to_exist", "expect_column_type_to_be")
"""Expectations on the table's columns (names, order, count, types): checked on the input's real columns."""
UNSUPPORTED = {
    "expect_table_row_count_to_equal_other_table": "compares with another table, which a run does not have",
    "expect_query_results_to_match_comparison": "runs SQL queries, which need a SQL data source",
    "unexpected_rows_expectation": "runs a SQL query, which needs a SQL data source",
    "expect_column_values_to_match_like_pattern": "uses SQL LIKE patterns, which need a SQL data source",
    "expect_column_values_to_match_like_pattern_list": "uses SQL LIKE patterns, which need a SQL data source",
    "expect_column_values_to_not_match_like_pattern": "uses SQL LIKE patterns, which need a SQL data source",
    "expect_column_values_to_not_match_like_pattern_list": "uses SQL LIKE patterns, which need a SQL data source",
}
RUN_KWARGS = ("result_format", "catch_exceptions", "include_config", "batch_id")
"""Kwargs sanitize sets itself when it runs a suite (a suite's own would hide failing rows or raise)."""
NAME = re.compile(r"[^\W_][\w.\- ]{0,127}")
"""A suite name: letters, digits, '_', '.', '-' and spaces; it becomes part of result names and paths."""
SCHEMA_REFS = ("$ref", "$dynamicRef", "$recursiveRef")
SCHEMA_IDS = ("$id", "id")
_LOCAL = threading.local()
log = logging.getLogger("sanitizer")
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Suite:
    path: str
    sha256: str
    name: str
    expectations: tuple[dict, ...]
    meta: dict

    @property
    def row_level(self) -> list[dict]:
        return [e for e in self.expectations if e["type"].startswith(ROW_PREFIX)]

    @property
    def dataset_level(self) -> list[dict]:
        return [e for e in self.expectations if not e["type"].startswith(ROW_PREFIX)]

    def columns(self) -> set[str]:
        cols = set()
        for e in self.expectations:
            kw = e.get("kwargs", {})
            for key in ("column", "column_A", "column_B"):
                if key in kw:
                    cols.add(kw[key])
            cols.update(kw.get("column_list", []))
        return cols

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "name": self.name, "expectations": len(self.expectations)}


def load_suite(path: str, columns: list[str] | None = None) -> Suite:
    """Read and check a suite file; ConfigError (before any pipeline) when it is unusable.

    Everything a run could trip on later is checked here: the JSON, the name, ``meta`` and
    ``meta.sanitizer``, every expectation's type, kwargs (Great Expectations builds each one), severity,
    ``row_condition``, suite parameters, regexes and ranges, JSON schemas (no ``$ref`` outside the
    schema: nothing is fetched or read), and the columns named (when ``columns`` is given)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as fh:
            data = fh.read()
    except Exception as exc:
        raise ConfigError(f"expectation suite {path!r} cannot be read ({exc}); check the path") from None
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, invalid UTF-8, nesting too deep
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"expectation suite {path!r} is not valid JSON ({first})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ConfigError(
            f"expectation suite {path!r} must be a JSON object with an 'expectations' list "
            "(a Great Expectations suite: run 'sanitize profile' to make one)"
        )
    name = _suite_name(path, raw.get("name"))
    meta = _suite_meta(path, raw.get("meta"))
    expectations = []
    for i, e in enumerate(raw["expectations"]):
        if not isinstance(e, dict) or not isinstance(e.get("type"), str) or not isinstance(e.get("kwargs", {}), dict):
            raise ConfigError(f"expectation suite {path!r}: expectation #{i} needs a 'type' string and 'kwargs' object")
        if e.get("kwargs", {}).get("row_condition") not in (None, ""):  # issue 10: a suite file must not be code
            raise ConfigError(
                f"expectation suite {path!r}: expectation #{i} ({e['type']}) has a row_condition; Great Expectations "
                "evaluates it with pandas DataFrame.query, which can run code, so sanitize does not accept one: "
                "remove row_condition (and condition_parser) from the suite"
            )
        severity = e.get("severity") or "critical"
        if severity not in SEVERITIES:
            raise ConfigError(f"expectation suite {path!r}: expectation #{i} ({e['type']}) has severity "
                              f"{severity!r}; use one of {', '.join(SEVERITIES)}")
        if e.get("meta") is not None and not isinstance(e.get("meta"), dict):
            raise ConfigError(f"expectation suite {path!r}: expectation #{i} ({e['type']}) has a 'meta' that is "
                              f"not an object ({e.get('meta')!r:.60}); make it a JSON object or remove it")
        _check_expectation(path, i, e["type"], e.get("kwargs", {}))
        expectations.append({"type": e["type"], "kwargs": dict(e.get("kwargs", {})), "meta": e.get("meta") or {},
                             "severity": severity})
    suite = Suite(path, hashlib.sha256(data).hexdigest(), name, tuple(expectations), meta)
    _gx_suite(suite, suite.expectations)  # unknown expectation types or bad kwargs fail here
    if columns is not None:
        missing = sorted(c for c in suite.columns() if c not in columns)
        if missing:
            raise ConfigError(
                f"expectation suite {path!r} names column(s) {missing} that the input does not have; "
                f"columns are: {', '.join(columns)}"
            )
    return suite


def safe_suite_name(text: str) -> str:
    """``text`` as a suite name ``load_suite`` accepts: other characters become '_' (for ``profile``)."""
    name = re.sub(r"[^\w.\- ]", "_", str(text)).strip(" .-_")[:128]
    return name if NAME.fullmatch(name) else "suite"


def _suite_name(path: str, name: Any) -> str:
    if name is None or name == "":  # GX suites always have one; a hand-written file may not
        return safe_suite_name(os.path.splitext(os.path.basename(path.rstrip("/")))[0])
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(
            f"expectation suite {path!r}: name {name!r:.80} is not a safe name (results are stored under it): "
            "use letters, digits, '_', '.', '-' and spaces, starting with a letter or digit, at most 128 characters"
        )
    return name


def _suite_meta(path: str, meta: Any) -> dict:
    """``meta`` and ``meta.sanitizer`` checked: objects, class-share bounds as [low, high] within 0..1."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ConfigError(f"expectation suite {path!r}: 'meta' must be a JSON object, got {meta!r:.60}")
    ours = meta.get("sanitizer")
    if ours is None:
        return dict(meta)
    if not isinstance(ours, dict):
        raise ConfigError(f"expectation suite {path!r}: meta.sanitizer must be a JSON object, got {ours!r:.60}")
    severity = ours.get("class_share_severity") or "critical"
    if severity not in SEVERITIES:
        raise ConfigError(f"expectation suite {path!r}: meta.sanitizer.class_share_severity must be one of "
                          f"{', '.join(SEVERITIES)}")
    shares = ours.get("class_shares")
    if shares is not None:
        if not isinstance(shares, dict):
            raise ConfigError(f"expectation suite {path!r}: meta.sanitizer.class_shares must map each class to "
                              f"[low, high], got {shares!r:.60}")
        for cls, bounds in shares.items():
            if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_share(b) for b in bounds)
                    and bounds[0] <= bounds[1]):
                raise ConfigError(
                    f"expectation suite {path!r}: meta.sanitizer.class_shares[{cls!r}] must be [low, high] with "
                    f"0 <= low <= high <= 1, got {bounds!r:.60}"
                )
    return dict(meta)


def _is_share(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= 1)


def _check_expectation(path: str, i: int, kind: str, kwargs: dict) -> None:
    """What Great Expectations accepts when it builds an expectation but a run would trip on."""
    where = f"expectation suite {path!r}: expectation #{i} ({kind})"
    if kind in UNSUPPORTED:
        raise ConfigError(f"{where} {UNSUPPORTED[kind]}; sanitize validates files through pandas: remove it")
    for key in RUN_KWARGS:
        if key in kwargs:
            raise ConfigError(f"{where} sets {key!r}, which sanitize sets itself when it runs the suite: remove it")
    parameter = _find_parameter(kwargs)
    if parameter is not None:
        raise ConfigError(
            f"{where} uses the suite parameter {parameter!r} ({{\"$PARAMETER\": ...}}), which a run cannot supply: "
            "write the value into the suite"
        )
    for key in ("regex", "regex_list"):
        for pattern in ([kwargs[key]] if key == "regex" else kwargs[key]) if key in kwargs else ():
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ConfigError(f"{where} has the regex {pattern!r:.80}, which does not compile ({exc}); "
                                  "fix it") from None
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if _is_number(low) and _is_number(high) and low > high:
        raise ConfigError(f"{where} has min_value {low} above max_value {high}; swap them")
    if "json_schema" in kwargs:
        _check_json_schema(where, kwargs["json_schema"])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _find_parameter(value: Any, depth: int = 0) -> str | None:
    """The first suite parameter (``{"$PARAMETER": name}``) inside kwargs, or None."""
    if depth > 50:
        return None
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return str(value["$PARAMETER"])
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find_parameter(item, depth + 1)
            if found is not None:
                return found
    return None


def _check_json_schema(where: str, schema: Any) -> None:
    """A JSON schema may only refer inside itself: a ``$ref`` (or ``$dynamicRef`` / ``$recursiveRef``) must be
    a fragment (``#/definitions/x``, ``#name``), and no ``$id`` / ``id`` may move the base URI. jsonschema
    resolves anything else by fetching the URL (http://, https://) or reading the file (file://)."""
    stack = [(schema, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 100:
            raise ConfigError(f"{where} has a json_schema nested more than 100 levels deep; flatten it")
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        for key in SCHEMA_REFS:
            ref = node.get(key)
            if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
                raise ConfigError(
                    f"{where} has a json_schema with {key} {ref!r:.120}, which would be fetched or read; sanitize "
                    "resolves no references outside the schema: copy the referenced schema in (under $defs) and "
                    "refer to it as '#/$defs/...'"
                )
        for key in SCHEMA_IDS:
            ident = node.get(key)
            if isinstance(ident, str) and not ident.startswith("#") and depth > 0:
                raise ConfigError(
                    f"{where} has a json_schema with a nested {key} {ident!r:.120}, which changes where references "
                    "resolve; remove it (sanitize resolves no references outside the schema)"
                )
        stack.extend((value, depth + 1) for value in node.values())
    if not isinstance(schema, dict):
        return
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"{where} has an invalid json_schema ({exc.message:.120}); fix it") from None


def _gx():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # after import: it sets its own
    return gx


def _gx_suite(suite: Suite, expectations) :
    gx = _gx()
    from great_expectations.expectations.registry import get_expectation_impl

    if not getattr(_LOCAL, "context", None):
        _LOCAL.context = gx.get_context(mode="ephemeral")  # suites need an active context
    out = gx.ExpectationSuite(name=suite.name)
    for e in expectations:
        try:
            impl = get_expectation_impl(e["type"])
            out.add_expectation(impl(**e["kwargs"], meta=e.get("meta") or None, severity=e.get("severity") or "critical"))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"expectation suite {suite.path!r}: {e['type']} with {e['kwargs']} is not a valid expectation ({first})"
            ) from None
    return out


def class_share_severity(suite: Suite) -> str:
    """The severity of the class-share bounds: ``meta.sanitizer.class_share_severity`` (default critical)."""
    return str((suite.meta.get("sanitizer") or {}).get("class_share_severity") or "critical")


def _quiet_context():
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


class _Runner:
    """A Great Expectations ephemeral context + one validation definition, reused for every batch."""

    def __init__(self, suite: Suite, expectations):
        gx = _gx()
        self.context = _quiet_context()
        asset = self.context.data_sources.add_pandas("sanitizer").add_dataframe_asset("batches")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("batch")
        self.suite = self.context.suites.add(_gx_suite(suite, expectations))
        self.definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name="sanitizer", data=self.batch_definition, suite=self.suite)
        )

    def run(self, df: pd.DataFrame):
        return self.definition.run(batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"})


def to_pandas(table: pa.Table, columns: set[str]) -> pd.DataFrame:
    """The suite's columns as a pandas frame (list columns become Python lists)."""
    keep = [c for c in table.column_names if c in columns]
    return table.select(keep).to_pandas(types_mapper=None).reset_index(drop=True)


class RowValidator:
    """Row-level expectations on Arrow batches. Build once per worker; call ``issues(table)`` per batch."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self._runner = None

    def __getstate__(self):
        return {"suite": self.suite, "_runner": None}

    def _get(self):
        if self._runner is None:
            self._runner = _Runner(self.suite, self.suite.row_level)
        return self._runner

    def issues(self, table: pa.Table) -> list[tuple[str, np.ndarray, dict]]:
        if not self.suite.row_level or table.num_rows == 0:
            return []
        df = to_pandas(table, self.suite.columns())
        result = self._get().run(df)
        out = []
        for r in result.results:
            if r.success:
                continue
            config = r.expectation_config
            column = config.kwargs.get("column")
            rows = r.result.get("unexpected_index_list") or []
            mask = np.zeros(table.num_rows, dtype=bool)
            mask[np.asarray(rows, dtype=np.int64)] = True
            if not mask.any():
                continue
            evidence = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
            severity = getattr(config, "severity", None) or "critical"
            severity = str(getattr(severity, "value", severity))  # FailureSeverity is a str Enum
            if severity != "critical":  # warning / info: the row is reported (action "report") and stays clean
                evidence["severity"] = severity
            out.append((f"validation:{config.type}:{column}", mask, json.loads(json.dumps(evidence, default=str))))
        return out


def validate_frame(suite: Suite, df: pd.DataFrame, expectations) -> dict[str, Any]:
    """Run the given expectations on a frame; returns the Great Expectations result as a JSON dict."""
    if not expectations:
        return {"success": True, "results": []}
    runner = _Runner(suite, expectations)
    return runner.run(df).to_json_dict()


UNEXPECTED_SHOWN = 5
"""How many of a failed check's sampled unexpected values (distinct, each cut to 200 characters) a check keeps."""


def summarise(result: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """One check per expectation result: on, expectation, column, success, observed, severity, and for a
    failed column check a few of the values it did not expect (``unexpected``; the report shows them)."""
    out = []
    for r in result.get("results", []):
        config = r.get("expectation_config", {})
        extra = ((config.get("meta") or {}).get("sanitizer")) or {}
        found = r.get("result") or {}
        observed = found.get("observed_value")
        if observed is None and found.get("unexpected_count") is not None and found.get("element_count") is not None:
            observed = f"{found['unexpected_count']} of {found['element_count']} rows unexpected"  # a column-map check
        unexpected = list(dict.fromkeys(str(u)[:200] for u in found.get("partial_unexpected_list") or []))
        if extra.get("check") == "class_share_between":  # see validation_docs: a one-row frame of shares
            kind, column = "sanitizer:class_share_between", extra.get("class")
            observed = extra.get("share")
        else:
            kind, column = config.get("type"), config.get("kwargs", {}).get("column")
        out.append(
            {
                "on": label,
                "expectation": kind,
                "column": column,
                "success": bool(r.get("success")),
                "observed": observed,
                "severity": str(config.get("severity") or "critical"),
            }
        )
        if unexpected and not r.get("success"):
            out[-1]["unexpected"] = unexpected[:UNEXPECTED_SHOWN]
    return out



def sample_frame(sample, plan) -> pd.DataFrame:
    """The bounded sample as a frame with the input's scalar feature columns and the label."""
    data: dict[str, Any] = {}
    start = 0
    for fc in plan.features:
        if not fc.is_list:
            data[fc.name] = sample.X[:, start]
        start += fc.width
    data[plan.label_column] = sample.labels
    return pd.DataFrame(data)

