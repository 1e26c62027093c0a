"""The drift stage: the baseline's and the new data's column profiles, compared (``sanitizer.drift``).

::

    ReadForSample (the baseline) ─► ProfileBaseline ─┐
    Read (the new data) ─────────► ProfileNew ───────┴─► Compare ─► provenance ``drift``, the verdict

Both profiles come from reads the run makes anyway (the baseline's for the detectors' sample, the new data's
for scoring), one bounded, mergeable profile per worker. Every score is recorded, alarming or not; a
``critical`` alarm withholds publication. Each alarmed column also carries what the report draws: a numeric
or date column's sampled values counted on the baseline's quantile bins (``histogram``), a categorical,
boolean or label column's level counts side by side (``shares``). The comparison's counts go to the run's
Beam metrics (``sanitizer.beam.metrics.record_drift``).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np

from sanitizer.beam.metrics import record_drift
from sanitizer.beam.plan import Plan
from sanitizer.data.batch import KEY_COLUMN
from sanitizer.drift import DriftConfig, Profile, build_profile, drift_report, merge_profiles
from sanitizer.drift.profile import ValueSample
from sanitizer.drift.statistics import aligned_levels, bin_counts, quantile_edges

PROFILED = ("numeric", "date", "categorical", "boolean")
DRAWN_LEVELS = 12  # the levels of an alarmed column whose shares the report draws; the rest are summed


def kinds_of(plan: Plan, columns: list[str]) -> dict[str, str]:
    """The columns of ``columns`` a profile compares, by kind; the label as ``label``."""
    kinds = {k.name: k.kind for k in plan.kinds if k.name in columns and k.kind in PROFILED}
    return {**kinds, plan.label_column: "label"}


class ProfileFn(beam.CombineFn):
    """Arrow tables -> one :class:`sanitizer.drift.Profile`."""

    def __init__(self, kinds: dict[str, str], seed: int):
        self.kinds, self.seed = kinds, seed

    def create_accumulator(self):
        return Profile(self.seed)

    def add_input(self, acc, table):
        if table is None or table.num_rows == 0:
            return acc
        keys = np.asarray(table.column(KEY_COLUMN).to_numpy(), dtype=np.uint64)
        return merge_profiles(acc, build_profile(table, keys, self.kinds, seed=self.seed))

    def merge_accumulators(self, accumulators):
        return merge_profiles(*accumulators)

    def extract_output(self, acc):
        return acc


def compare(baseline: Profile, new: Profile, drift: dict, source: str, vectors: dict | None = None) -> dict[str, Any]:
    """The drift report (every score, threshold and alarm, and the verdict) with where the baseline came from;
    ``vectors``: each image and text column's (baseline, new) representation vectors
    (:func:`sanitizer.beam.fit.fit_timed`'s last part)."""
    config = DriftConfig.from_dict(drift)
    report = drift_report(baseline, new, config, vectors=vectors or None)
    for name, column in report["columns"].items():
        b, n = baseline.columns.get(name), new.columns.get(name)
        if column["alarm"] and b is not None and n is not None:
            column.update(_drawn(b, n, config.bins))
    return {"baseline": source, "baseline_rows": baseline.rows, "new_rows": new.rows, **report}


def _drawn(base, new, bins: int) -> dict[str, Any]:
    """What the report draws for one alarmed column: sampled values on the baseline's quantile bins (the
    outer edges are the smallest and largest value of either side), or the most moved levels' counts."""
    if isinstance(base, ValueSample):
        edges = quantile_edges(base.values, bins)
        lows = [x for x in (base.low, new.low) if x is not None]
        highs = [x for x in (base.high, new.high) if x is not None]
        if not lows:
            return {}
        outer = [min(lows), *edges.tolist(), max(highs)]
        return {"histogram": {"edges": outer, "baseline": bin_counts(base.values, edges).tolist(),
                              "new": bin_counts(new.values, edges).tolist()}}
    names, b, n = aligned_levels(base, new)
    moved = np.abs(b / max(b.sum(), 1) - n / max(n.sum(), 1))[:-1]
    keep = sorted(np.argsort(-moved, kind="stable")[:DRAWN_LEVELS].tolist())
    rest = [i for i in range(len(names)) if i not in set(keep)]  # "(other)", the last, among them
    summed = [] if b[rest].sum() + n[rest].sum() == 0 else [(int(b[rest].sum()), int(n[rest].sum()))]
    return {"shares": {"levels": [names[i] for i in keep] + ["(other)"] * len(summed),
                       "baseline": [int(b[i]) for i in keep] + [s[0] for s in summed],
                       "new": [int(n[i]) for i in keep] + [s[1] for s in summed]}}


def _compare_counted(baseline: Profile, new: Profile, drift: dict, source: str, vectors=None) -> dict[str, Any]:
    report = compare(baseline, new, drift, source, vectors)
    record_drift(report)
    return report


def add_stage(sample_tables, new_tables, plan: Plan, baseline_plan: Plan, config, vectors=None):
    """The drift report's PCollection (one dict); ``vectors``: a PCollection of one dict, each image and text
    column's (baseline, new) representation vectors."""
    kinds = kinds_of(plan, baseline_plan.read_columns())
    # A profile is small, so an empty one as the combine's default is cheap; no Flatten beside another source,
    # which the FnApiRunner would materialise whole (every table the run scores, held at once).
    base = sample_tables | "ProfileBaseline" >> beam.CombineGlobally(ProfileFn(kinds, config.seed))
    new = new_tables | "ProfileNew" >> beam.CombineGlobally(ProfileFn(kinds, config.seed))
    return base | "CompareProfiles" >> beam.Map(_compare_counted, beam.pvalue.AsSingleton(new),
                                                 dict(config.baseline.drift), config.baseline.source,
                                                 None if vectors is None else beam.pvalue.AsSingleton(vectors))
