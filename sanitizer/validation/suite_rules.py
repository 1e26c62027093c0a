"""What a Great Expectations suite may not do, checked when it is loaded (before any pipeline).

Names that are unsafe in paths or markup, malformed ``meta``, suite parameters a run cannot supply,
expectations that need SQL or another table, kwargs sanitize sets itself, regexes that do not compile, and
JSON schemas whose references would fetch a URL or read a file. ``sanitizer.validation.suite.load_suite`` calls
these; each problem is a ConfigError naming the suite, the expectation and the fix.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from sanitizer.errors import ConfigError

SEVERITIES = ("critical", "warning", "info")  # Great Expectations' FailureSeverity
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


def safe_suite_name(text: str) -> str:
    """``text`` as a suite name ``load_suite`` accepts: other characters become '_' (for ``profile``)."""
    name = re.sub(r"[^\w.\- ]", "_", str(text)).strip(" .-_")[:128]
    return name if NAME.fullmatch(name) else "suite"


def suite_name(path: str, name: Any) -> str:
    if name is None or name == "":  # GX suites always have one; a hand-written file may not
        return safe_suite_name(os.path.splitext(os.path.basename(path.rstrip("/")))[0])
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(
            f"expectation suite {path!r}: name {name!r:.80} is not a safe name (results are stored under it): "
            "use letters, digits, '_', '.', '-' and spaces, starting with a letter or digit, at most 128 characters"
        )
    return name


def suite_meta(path: str, meta: Any) -> dict:
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


def check_expectation(path: str, i: int, kind: str, kwargs: dict) -> None:
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
