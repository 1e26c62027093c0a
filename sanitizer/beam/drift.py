"""The drift stage: the baseline's and the new data's column profiles, compared (``sanitizer.drift``).

::

    ReadForSample (the baseline) ─► ProfileBaseline ─┐
    Read (the new data) ─────────► ProfileNew ───────┴─► Compare ─► provenance ``drift``, the verdict

Both profiles come from reads the run makes anyway (the baseline's for the detectors' sample, the new data's
for scoring), one bounded, mergeable profile per worker. Every score is recorded, alarming or not; a
``critical`` alarm withholds publication.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np

from sanitizer.beam.plan import Plan
from sanitizer.data.batch import KEY_COLUMN
from sanitizer.drift import DriftConfig, Profile, build_profile, drift_report, merge_profiles

PROFILED = ("numeric", "date", "categorical", "boolean")


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


def compare(baseline: Profile, new: Profile, drift: dict, source: str) -> dict[str, Any]:
    """The drift report (every score, threshold and alarm, and the verdict) with where the baseline came from."""
    report = drift_report(baseline, new, DriftConfig.from_dict(drift))
    return {"baseline": source, "baseline_rows": baseline.rows, "new_rows": new.rows, **report}


def add_stage(sample_tables, new_tables, plan: Plan, baseline_plan: Plan, config):
    """The drift report's PCollection (one dict)."""
    kinds = kinds_of(plan, baseline_plan.read_columns())
    base = ((sample_tables, sample_tables.pipeline | "NoBaselineRows" >> beam.Create([None]))
            | "BaselineTables" >> beam.Flatten()
            | "ProfileBaseline" >> beam.CombineGlobally(ProfileFn(kinds, config.seed)).without_defaults())
    new = ((new_tables, new_tables.pipeline | "NoNewTables" >> beam.Create([None]))
           | "NewTables" >> beam.Flatten()
           | "ProfileNew" >> beam.CombineGlobally(ProfileFn(kinds, config.seed)).without_defaults())
    return base | "CompareProfiles" >> beam.Map(compare, beam.pvalue.AsSingleton(new), dict(config.baseline.drift),
                                                 config.baseline.source)
