"""The duplicates stage's sample of the new data: one bottom-k draw (:func:`chance.priorities` of the record
keys) that gives the chance model its column hashes and the vector space its vectors, and the records counted,
in one pass over the read the detectors' sample shares."""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from sanitizer.beam import near as near_stage
from sanitizer.beam.plan import Plan
from sanitizer.data.batch import KEY_COLUMN
from sanitizer.detectors.duplicates.chance import ChanceModel, ChanceSample, priorities
from sanitizer.detectors.duplicates.content import row_hashes


@dataclass(frozen=True)
class Samples:
    """The stage's bottom-k sample of the new data (:func:`chance.priorities`): each sampled record's column
    hashes (the chance model's) and numeric vector (the vector space's), and the records counted."""

    chance: ChanceSample
    vectors: np.ndarray  # (s, d) float64, row i the vector of chance.keys[i]
    records: int

    @staticmethod
    def merge(parts: list["Samples"], rows: int) -> "Samples":
        parts = [p for p in parts if len(p.chance.priority)] or parts[:1]
        prio = np.concatenate([p.chance.priority for p in parts])
        keys = np.concatenate([p.chance.keys for p in parts])
        keep = np.lexsort((keys, prio))[:rows]  # one order whatever the merge order
        values = np.concatenate([p.chance.values for p in parts])[keep]
        held = [p.vectors for p in parts if len(p.vectors)]
        vectors = np.concatenate(held)[keep] if held else np.zeros((len(keep), 0))
        return Samples(ChanceSample(prio[keep], keys[keep], values), vectors, sum(p.records for p in parts))


class SamplesFn(beam.CombineFn):
    """One pass over the new data for the stage's estimates: the bottom ``rows`` records by
    :func:`chance.priorities` with their column hashes and numeric vectors, and the records counted. Its
    output is ``(ChanceModel, VectorSpace, records)``."""

    def __init__(self, columns: list[str], plan: Plan, rows: int, seed: int, params):
        self.columns, self.plan, self.rows, self.seed, self.params = columns, plan, rows, seed, params

    def create_accumulator(self):
        return Samples(ChanceSample.empty(len(self.columns)), np.zeros((0, 0)), 0)

    def add_input(self, acc, table: pa.Table | None):
        if table is None:  # the read's marker (ReadBatches(none=True))
            return acc
        keys = table.column(KEY_COLUMN).to_numpy()
        prio = priorities(keys, self.seed)
        take = np.argsort(prio, kind="stable")[: self.rows]
        if len(acc.chance.priority) >= self.rows:  # only rows below the current cutoff can enter
            take = take[prio[take] < acc.chance.priority.max()]
        if len(take) == 0:
            return Samples(acc.chance, acc.vectors, acc.records + table.num_rows)
        taken = table.take(pa.array(take))
        _, _, values = row_hashes(taken, self.columns, rows=False)
        part = Samples(ChanceSample(prio[take], keys[take], values), near_stage.vectors_of(taken, self.plan)[1],
                       table.num_rows)
        return Samples.merge([acc, part], self.rows)

    def merge_accumulators(self, accumulators):
        return Samples.merge(list(accumulators), self.rows)

    def extract_output(self, acc):
        space = near_stage.fit_space(acc.vectors, acc.records, self.params)
        return ChanceModel.fit(acc.chance), space, acc.records
