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
* **Dates**: an ``expect_column_values_to_be_between`` whose bounds are dates
  or times (ISO text such as ``"2007-11-09"`` or ``"2007-11-09T12:00:00+00:00"``,
  which Great Expectations reads as dates and times) compares the column's
  values as dates or times, whether it stores them as dates, timestamps or ISO
  text (sanitizer.validation.dates); a value that is not a date fails it. A row-level
  expectation that cannot be evaluated on a batch (bounds of another type than
  the column's values) stops the run with a ConfigError naming it: it is never
  skipped silently.
* **Table-shape** expectations (column count, column set or order, a column's
  existence or type: ``SHAPE``) run on the input's real columns, in order, with
  their real types; row counts on the rows read.
* After the run, the clean output is validated against the rest of the suite;
  the publication checks run through one Checkpoint (see
  sanitizer.validation.checkpoint).

Every problem with a suite is found by ``load_suite``, before the pipeline
starts: unsafe names, malformed ``meta``, unknown expectation types, bad kwargs,
suite parameters (``{"$PARAMETER": ...}``) the run cannot supply, expectations
that need a SQL source or another table, and JSON schemas whose ``$ref`` would
fetch a URL or read a file (only references inside the schema, ``#...``, are
accepted).

Results land in ``OUT/validation/`` as Great Expectations result JSON (no Data
Docs: see sanitizer.validation.checkpoint); provenance and ``report.html`` record the
suite, its sha256 and every check with its severity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sanitizer.errors import ConfigError
from sanitizer.validation.dates import BETWEEN, as_dates, temporal_columns, with_date_views, without_date_views
from sanitizer.validation.suite_rules import SEVERITIES, check_expectation, suite_meta, suite_name

ROW_PREFIX = "expect_column_values_"
ROW_COUNT = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
SHAPE = ("expect_table_column_count_to_equal", "expect_table_column_count_to_be_between",
         "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
         "expect_column_to_exist", "expect_column_type_to_be")
"""Expectations on the table's columns (names, order, count, types): checked on the input's real columns."""
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
    name = suite_name(path, raw.get("name"))
    meta = suite_meta(path, raw.get("meta"))
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
        check_expectation(path, i, e["type"], e.get("kwargs", {}))
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


def _exception(result) -> str | None:
    """The message of the exception Great Expectations caught while evaluating one expectation, or None."""
    info = getattr(result, "exception_info", None) or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "an error").strip().splitlines()
            return message[0] if message else "an error"
    return None


class RowValidator:
    """Row-level expectations on Arrow batches. Build once per worker; call ``issues(table)`` per batch."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self._runner = None
        self._temporal = temporal_columns(suite.row_level)

    def __getstate__(self):
        return {"suite": self.suite, "_runner": None, "_temporal": self._temporal}

    def _get(self):
        if self._runner is None:
            self._runner = _Runner(self.suite, with_date_views(self.suite.row_level, self._temporal))
        return self._runner

    def issues(self, table: pa.Table) -> list[tuple[str, np.ndarray, dict]]:
        if not self.suite.row_level or table.num_rows == 0:
            return []
        df, unparsed = as_dates(to_pandas(table, self.suite.columns()), self._temporal)
        result = self._get().run(df)
        out = []
        for r in result.results:
            config = r.expectation_config
            column = without_date_views(config.kwargs.get("column"))
            failed = _exception(r)
            if failed is not None:
                raise ConfigError(
                    f"expectation suite {self.suite.path!r}: {config.type} on column {column!r} cannot be checked on "
                    f"this input ({failed}); its kwargs do not fit the column's values: fix the suite"
                )
            mask = np.zeros(table.num_rows, dtype=bool)
            if not r.success:
                mask[np.asarray(r.result.get("unexpected_index_list") or [], dtype=np.int64)] = True
            if config.type == BETWEEN and column in unparsed:
                mask |= unparsed[column]  # present, but not a date: not between two dates
            if not mask.any():
                continue
            evidence = {k: without_date_views(v) for k, v in config.kwargs.items() if k not in ("batch_id",)}
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

