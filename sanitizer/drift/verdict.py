"""The drift report: every statistic of every column shared by a baseline and a new profile, against
its threshold, and one verdict.

:func:`drift_report` returns plain JSON (NaN and infinity as ``null``)::

    {"verdict": "ok" | "warning" | "critical",
     "alpha": 0.01, "tests": 31, "alpha_per_test": 0.00032, "seed": 0,
     "rows": {"baseline": 25000, "new": 25000},
     "columns": {"price": {"kind": "numeric", "severity": "warning", "alarm": false,
                           "statistics": {"js_distance": {"value": 0.021, "threshold": 0.077,
                                                          "null_threshold": 0.077, "min_effect": 0.05,
                                                          "p_value": 0.83, "alarm": false}, ...}}},
     "alarms": [{"column": ..., "statistic": ..., "severity": ..., "value": ..., "threshold": ...}],
     "not_compared": {"comment": "text columns are compared through their representation vectors"}}

Each statistic is recorded whether or not it alarms. ``threshold`` is the larger of ``null_threshold``
(what two samples of these sizes from one distribution exceed with probability ``alpha_per_test``)
and ``min_effect``; the statistic alarms when its value is above it and its column's severity is not
``off``. The verdict is the highest severity among the alarms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sanitizer.drift import statistics as st
from sanitizer.drift import thresholds as th
from sanitizer.drift.config import DriftConfig
from sanitizer.drift.profile import NUMERIC_KINDS, LevelCounts, Profile, ValueSample
from sanitizer.drift.vectors import vector_drift

_TESTS = {"numeric": ("js_distance", "wasserstein", "missing_rate"),
          "date": ("js_distance", "wasserstein", "missing_rate"),
          "categorical": ("linf", "new_categories", "missing_rate"),
          "boolean": ("linf", "missing_rate"),
          "label": ("class_shares", "missing_rate"),
          "vectors": ("vector_js",)}


def _number(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def _entry(value: float, null_threshold: float, min_effect: float, p_value: float | None,
           expected: float = 0.0, **extra: Any) -> dict[str, Any]:
    """One statistic; ``expected`` (new categories) is what the value is under no drift, so both
    thresholds count from it."""
    threshold = expected + max(null_threshold, min_effect)
    alarm = bool(math.isfinite(value) and value > threshold)
    out = {"value": value, "threshold": threshold, "null_threshold": expected + null_threshold,
           "min_effect": min_effect, "p_value": p_value, "alarm": alarm, **extra}
    if expected:
        out["expected"] = expected
    return {k: _number(v) for k, v in out.items()}


def _numeric(name: str, base: ValueSample, new: ValueSample, alpha: float, config: DriftConfig) -> dict:
    edges = st.quantile_edges(base.values, config.bins)
    p, q = st.bin_counts(base.values, edges), st.bin_counts(new.values, edges)
    occupied = int(((p + q) > 0).sum())
    n1, n2 = len(base.values), len(new.values)
    js = st.js_distance(p, q)
    out = {"js_distance": _entry(js, th.js_threshold(n1, n2, occupied, alpha), config.min_effect_of(name, "js_distance"),
                                 th.js_p_value(js, n1, n2, occupied), bins=len(p), sample=[n1, n2])}
    if n1 and n2:
        mean, var = th.wasserstein_null(base.values, new.values, config.permutations, config.seed)
        w = st.normalised_wasserstein(base.values, new.values)
        null, p_value = th.gamma_tail(mean, var, alpha), th.gamma_p_value(w, mean, var)
    else:
        w, null, p_value = math.nan, math.inf, None
    out["wasserstein"] = _entry(w, null, config.min_effect_of(name, "wasserstein"), p_value,
                                scale=st.scale_of(base.values))
    return out


def _levels(name: str, base: LevelCounts, new: LevelCounts, alpha: float, config: DriftConfig) -> dict:
    names, b, n = st.aligned_levels(base, new)
    linf = st.linf_distance(b, n)
    moved = names[int(np.argmax(np.abs(b / max(b.sum(), 1) - n / max(n.sum(), 1))))] if len(b) else None
    statistic = "class_shares" if base.kind == "label" else "linf"
    out = {statistic: _entry(linf, th.linf_threshold(b, n, alpha), config.min_effect_of(name, statistic),
                             None, level=moved)}
    if base.kind == "categorical":
        n_base, n_new = base.rows - base.missing, new.rows - new.missing
        candidates = sum(1 for k in new.levels if k not in base.levels)
        rows, levels = st.unseen_levels(base, new, th.tail_bound(base, n_new, candidates, alpha))
        expected = th.expected_unseen(base)
        margin = th.unseen_margin(expected, n_base, n_new, alpha)
        out["new_categories"] = _entry(rows / n_new if n_new else math.nan, margin,
                                       config.min_effect_of(name, "new_categories"), None, expected,
                                       new_levels=levels[:10])
    return out


def _missing(name: str, base, new, alpha: float, config: DriftConfig) -> dict:
    r1 = base.missing / base.rows if base.rows else math.nan
    r2 = new.missing / new.rows if new.rows else math.nan
    null = th.proportion_threshold(base.missing, base.rows, new.missing, new.rows, alpha)
    return {"missing_rate": _entry(abs(r2 - r1), null, config.min_effect_of(name, "missing_rate"), None,
                                   baseline=r1, new=r2)}


def _compared(baseline: Profile, new: Profile, vectors: Mapping) -> tuple[dict[str, str], dict[str, str]]:
    kinds, reasons = {}, {}
    for name in sorted(set(baseline.columns) | set(new.columns) | set(vectors)):
        if name in vectors:
            kinds[name] = "vectors"
            continue
        b, n = baseline.columns.get(name), new.columns.get(name)
        if b is None or n is None:
            reasons[name] = "not in the baseline" if b is None else "not in the new data"
        elif b.kind != n.kind:
            reasons[name] = f"{b.kind} in the baseline, {n.kind} in the new data"
        else:
            kinds[name] = b.kind
    for name, why in {**baseline.skipped, **new.skipped}.items():
        if name not in kinds:
            reasons.setdefault(name, why)
    return kinds, reasons


def drift_report(baseline: Profile, new: Profile, config: DriftConfig | None = None, *,
                 vectors: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
    """Every drift statistic between ``baseline`` and ``new``, its threshold, alarm and severity, and
    the overall verdict. ``vectors`` maps a text, image or embedding column to its (baseline, new)
    representation vectors, two (n, d) float arrays."""
    config = config or DriftConfig()
    vectors = dict(vectors or {})
    kinds, not_compared = _compared(baseline, new, vectors)
    tests = sum(len(_TESTS[kind]) for name, kind in kinds.items() if config.severity_of(name) != "off")
    alpha = config.alpha / max(1, tests)
    columns: dict[str, Any] = {}
    alarms: list[dict[str, Any]] = []
    for name, kind in kinds.items():
        severity = config.severity_of(name)
        if kind == "vectors":
            found = vector_drift(*vectors[name], components=config.components, bins=config.bins, alpha=alpha)
            value = math.nan if found["value"] is None else found["value"]
            null = math.inf if found["null_threshold"] is None else found["null_threshold"]
            statistics = {"vector_js": _entry(value, null, config.min_effect_of(name, "vector_js"), found["p_value"],
                                              component=found["component"])}
        else:
            b, n = baseline.columns[name], new.columns[name]
            found = _numeric(name, b, n, alpha, config) if kind in NUMERIC_KINDS else _levels(name, b, n, alpha, config)
            statistics = {**found, **_missing(name, b, n, alpha, config)}
        if severity == "off":
            for entry in statistics.values():
                entry["alarm"] = False
        alarm = any(entry["alarm"] for entry in statistics.values())
        columns[name] = {"kind": kind, "severity": severity, "alarm": alarm, "statistics": statistics}
        alarms += [{"column": name, "statistic": stat, "severity": severity, "value": entry["value"],
                    "threshold": entry["threshold"]} for stat, entry in statistics.items() if entry["alarm"]]
    severities = {a["severity"] for a in alarms}
    verdict = "critical" if "critical" in severities else "warning" if alarms else "ok"
    return {"verdict": verdict, "alpha": config.alpha, "tests": tests, "alpha_per_test": alpha,
            "seed": config.seed, "rows": {"baseline": baseline.rows, "new": new.rows},
            "columns": columns, "alarms": alarms, "not_compared": not_compared}
