"""Scoring every batch with every fitted detector, the policy's split into clean and quarantine, and the run's counts.

Elements are Arrow tables (one record batch each, ``scoring.batch_rows`` rows),
never a Python dict per row.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.pvalue import TaggedOutput

from sanitizer.runs import progress
from sanitizer.beam.allocator import release_freed_memory
from sanitizer.beam.fit import row_validator, to_detector_batch
from sanitizer.beam.evidence_values import fill_values
from sanitizer.beam.media import with_media
from sanitizer.beam.metrics import MetricUpdates
from sanitizer.beam.overlap import OverlappedDoFn
from sanitizer.beam.threads import one_thread_per_library_call
from sanitizer.settings.config import Config
from sanitizer.detectors import REGISTRY, Scores, Skipped
from sanitizer.beam.plan import Plan
from sanitizer.runs.level_counts import count_levels
from sanitizer.runs.record import Counts, DetectorCounts, ReviewCounts
from sanitizer.runs.score_histogram import ScoreHistogram
from sanitizer.beam.policy import decide
from sanitizer.data.layout import (
    CODES_COLUMN, CONTENT_COLUMN, REASONS_COLUMN, quarantine_schema, score_column,
)
from sanitizer.data.reasons import to_arrow as reasons_arrow
from sanitizer.data.batch import CATEGORICAL, Batch, RowChecks
from sanitizer.data.content_hash import content_sha256

NULL_CLASS = "<null>"



def _score_threaded(detector, batch: Batch, state, pool: ThreadPoolExecutor | None, threads: int) -> Scores:
    # Splitting a batch across threads is only sound for scoring that treats every row on its own.
    if (pool is None or threads <= 1 or batch.n < 4096 or getattr(detector, "internal_threads", False)
            or not getattr(detector, "row_independent", False)):
        return detector.score(batch, state)
    bounds = np.linspace(0, batch.n, threads + 1).astype(int)
    chunks = [batch.take(slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
    parts = list(pool.map(lambda c: detector.score(c, state), chunks))
    evidence, codes = {}, {}
    for offset, part in zip(bounds[:-1], parts):
        evidence.update({int(offset) + i: e for i, e in part.evidence.items()})
        codes.update({int(offset) + i: c for i, c in (part.codes or {}).items()})
    return Scores(
        np.concatenate([p.score for p in parts]),
        np.concatenate([p.flagged for p in parts]),
        parts[0].threshold,
        evidence,
        None if parts[0].thresholds is None else np.concatenate([p.thresholds for p in parts]),
        codes or None,
    )


def _count(values: np.ndarray) -> dict[str, int]:
    if len(values) == 0:
        return {}
    counts = pd.Series(values, dtype=object).fillna(NULL_CLASS).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _content_of(table: pa.Table, rows: np.ndarray, known: np.ndarray | None) -> list[str]:
    """content_sha256 of ``rows``, reusing the hashes already computed for rows with a decision."""
    out = np.full(len(rows), None, dtype=object) if known is None else known[rows]
    todo = np.flatnonzero(np.fromiter((v is None for v in out), dtype=bool, count=len(out)))
    if len(todo):
        out[todo] = content_sha256(table, rows[todo])
    return list(out)


class ScoreFn(OverlappedDoFn):
    """Score a batch with every fitted detector, apply the policy and split it.

    Main output: clean tables. Tagged outputs: 'quarantine' tables and 'stats' dicts.

    Scoring a batch runs on a background thread (itself fanning out over
    ``scoring.threads`` threads) while the runner reads the next batch, so
    reading, scoring and writing overlap and every core is busy. At most
    ``MAX_IN_FLIGHT`` batches are held; everything is flushed in
    ``finish_bundle``, so no output outlives its bundle.
    """

    def __init__(self, plan: Plan, config: Config):
        self.plan = plan
        self.config = config
        self.pool = None

    def setup(self):
        super().setup()
        self.threads = self.config.scoring.threads or os.cpu_count() or 1
        one_thread_per_library_call()  # batches already run side by side (sanitizer.beam.threads)
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.detectors = {name: REGISTRY[name]() for name in self.config.enabled_detectors()}
        self.validator = row_validator(self.plan)

    def start_bundle(self):
        super().start_bundle()
        progress.stage("scoring")

    def teardown(self):
        super().teardown()
        if self.pool is not None:
            self.pool.shutdown(wait=False)

    def process(self, table: pa.Table, states: dict[str, Any], fill, media, window=beam.DoFn.WindowParam,
                timestamp=beam.DoFn.TimestampParam):
        """``states``: the fitted detectors; ``fill``: the sample's per-feature medians; ``media``: the image and
        text columns' fitted representations (side inputs)."""
        yield from self.overlapped(window, timestamp, table, states, fill, media)

    def work(self, table: pa.Table, states: dict[str, Any], fill=None, media=None) -> list:
        return self.score_released(table, states, fill, media)

    def score_released(self, table: pa.Table, states: dict[str, Any], fill=None, media=None) -> list:
        """:meth:`score_table`, then the memory its working copies took handed back to the system
        (:mod:`sanitizer.beam.allocator`): a worker holds what the batches in flight need, however many
        it has scored."""
        outputs = self.score_table(table, states, fill, media)
        release_freed_memory()
        return outputs

    def score_table(self, table: pa.Table, states: dict[str, Any], fill=None, media=None) -> list:
        """``fill``: the sample's per-feature medians, what missing values are judged as; ``media``: the fitted
        representations of the image and text columns (:mod:`sanitizer.beam.media`)."""
        plan = self.plan
        n = table.num_rows
        t0 = time.perf_counter()
        batch = to_detector_batch(table, plan, self.validator, fill)
        seconds = {"row_checks": time.perf_counter() - t0}
        if media:
            t0 = time.perf_counter()
            batch = with_media(batch, media)
            seconds["representations"] = time.perf_counter() - t0
        results: dict[str, Scores] = {}
        for name, detector in self.detectors.items():
            state = states.get(name)
            if state is None or isinstance(state, Skipped):
                continue
            t0 = time.perf_counter()
            results[name] = _score_threaded(detector, batch, state, self.pool, self.threads)
            seconds[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fill_values(results, table, batch.checks.valid)
        ids = content = None
        if plan.decisions is not None:  # review decisions are looked up by record id, checked on content
            ids = pc.cast(table.column(plan.id_output), pa.string()).to_numpy(zero_copy_only=False)
            content = np.full(n, None, dtype=object)
            decided = plan.decisions.rows_with_decisions(ids)
            if len(decided):
                content[decided] = content_sha256(table, decided)
        decision = decide(n, batch.checks, results, self.config.policy, plan.decisions, ids, content)
        progress.add("scored", n)
        progress.add("quarantined", int(decision.quarantine.sum()))

        keep = list(plan.output_schema.names)
        q = decision.quarantine
        outputs: list = [table.filter(pa.array(~q)).select(keep).cast(plan.output_schema)]
        if q.any():
            rows = np.flatnonzero(q)
            quarantined = table.take(pa.array(rows)).select(keep)
            entries = [decision.reasons.get(int(i), []) for i in rows]
            quarantined = quarantined.append_column(REASONS_COLUMN, reasons_arrow(entries))
            quarantined = quarantined.append_column(
                CODES_COLUMN, pa.array([[r["code"] for r in e] for e in entries], type=pa.list_(pa.string()))
            )
            quarantined = quarantined.append_column(
                CONTENT_COLUMN, pa.array(_content_of(table, rows, content), type=pa.string())
            )
            for name in REGISTRY:  # every built-in detector: null where it is off or did not judge
                values = decision.scores[name][rows] if name in decision.scores else np.full(len(rows), np.nan)
                quarantined = quarantined.append_column(
                    score_column(name), pa.array(values, type=pa.float64(), mask=np.isnan(values)))
            q_schema = quarantine_schema(plan.output_schema, list(REGISTRY))
            outputs.append(TaggedOutput("quarantine", quarantined.cast(q_schema)))
        counts = self._stats(n, batch.checks, decision, results)
        if batch.columns.get(CATEGORICAL):  # the clean rows' values: the vocabularies training gets
            counts.levels = count_levels(outputs[0], list(batch.columns[CATEGORICAL]))
        seconds["split"] = time.perf_counter() - t0  # policy, reasons and the clean / quarantine tables
        counts.seconds = seconds
        outputs.append(TaggedOutput("stats", counts))
        outputs.append(MetricUpdates.of(counts, results))  # applied by process / finish_bundle, not emitted
        return outputs

    def _stats(self, n, checks: RowChecks, decision, results) -> Counts:
        q = decision.quarantine
        labels = checks.labels_all
        by_reason: dict[str, int] = {}
        overridden = decision.overridden if decision.overridden is not None else np.zeros(n, dtype=bool)
        for row in np.flatnonzero((q | decision.reported) & ~overridden):
            for code in {r["code"] for r in decision.reasons.get(int(row), [])}:
                by_reason[code] = by_reason.get(code, 0) + 1
        by_detector = {
            name: DetectorCounts(scored=int(np.isfinite(result.score).sum()), flagged=int(result.flagged.sum()),
                                 action=self.config.policy.get(name, "quarantine"),
                                 histogram=ScoreHistogram.of(result.score, *self.detectors[name].score_range))
            for name, result in results.items()
        }
        review = None
        if decision.released is not None:
            flags: dict[str, int] = {}
            for row in np.flatnonzero(overridden):
                for r in decision.reasons.get(int(row), []):
                    if r.get("action") == "quarantine":
                        flags[r["code"]] = flags.get(r["code"], 0) + 1
            review = ReviewCounts(
                released_seen=int(decision.released.sum()),
                released_kept_clean=int((decision.released & ~q).sum()),
                released_overridden=int(overridden.sum()),
                overridden_flags=flags,
                confirmed_held=int(decision.confirmed.sum()),
                confirmed_held_unflagged=int(decision.held_by_review.sum()),
                stale=int(decision.stale.sum()),
                stale_unbound=int(decision.unbound.sum()),
            )
        return Counts(
            rows_in=int(n),
            clean=int((~q).sum()),
            quarantined=int(q.sum()),
            invalid=int((~checks.valid).sum()),
            reported_kept_clean=int(decision.reported.sum()),
            by_reason=by_reason,
            by_detector=by_detector,
            class_rows=_count(labels),
            class_quarantined=_count(labels[q]),
            review=review,
        )
