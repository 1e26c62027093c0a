"""The PTransforms and DoFns of the sanitize pipeline.

Elements are Arrow tables (one record batch each, ``scoring.batch_rows`` rows),
never a Python dict per row. Each stage has a stable, readable label.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.pvalue import TaggedOutput

from sanitizer import progress
from sanitizer.config import Config
from sanitizer.detectors import REGISTRY, Batch, Scores, Skipped
from sanitizer.errors import SanitizerError
from sanitizer.plan import Plan
from sanitizer.policy import decide, reasons_json
from sanitizer.layout import CODES_COLUMN, CONTENT_COLUMN, REASONS_COLUMN, quarantine_schema, score_column
from sanitizer.review.decisions import content_sha256
from sanitizer.records import ID_COLUMN, KEY_COLUMN, extract, keys_for_ids, label_strings, mix64, string_hash
from sanitizer.sampling import ClassAwareSampler
from sanitizer.sources import iter_file_batches

NULL_CLASS = "<null>"


# --------------------------------------------------------------------------- read


def add_ids(table: pa.Table, plan: Plan, file_index: int, first_row: int) -> pa.Table:
    """Append the record id (when generated) and the internal 64-bit key column."""
    n = table.num_rows
    if plan.id_column is None:
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        rel = plan.files[file_index].relpath
        ids = pc.binary_join_element_wise(f"{rel}:", pc.cast(pa.array(rows), pa.string()), "")
        table = table.append_column(ID_COLUMN, ids)
        keys = mix64(np.uint64(string_hash(rel)) ^ rows.astype(np.uint64))
    else:
        keys = keys_for_ids(table.column(plan.id_column).combine_chunks())
    return table.append_column(KEY_COLUMN, pa.array(keys, type=pa.uint64()))


class ReadSplitFn(beam.DoFn):
    """Read one split as Arrow tables with ids; also emit ('file_rows', (file index, rows))."""

    def __init__(self, plan: Plan, columns: list[str] | None = None, count_rows: bool = False):
        self.plan = plan
        self.columns = columns
        self.count_rows = count_rows

    def process(self, split):
        f = self.plan.files[split.file_index]
        schema = self.plan.schema
        if self.columns is not None:
            schema = pa.schema([schema.field(c) for c in self.columns])
        row = split.first_row
        for table in iter_file_batches(f, self.plan.batch_rows, schema, split, self.columns):
            out = add_ids(table, self.plan, split.file_index, row)
            row += table.num_rows
            if self.count_rows:
                progress.add("read", table.num_rows)
            yield out
        if self.count_rows:
            yield TaggedOutput("file_rows", (split.file_index, row - split.first_row))


class ReadBatches(beam.PTransform):
    def __init__(self, plan: Plan, columns: list[str] | None = None, count_rows: bool = False):
        super().__init__()
        self.plan, self.columns, self.count_rows = plan, columns, count_rows

    def expand(self, pbegin):
        splits = pbegin | "ListSplits" >> beam.Create(list(self.plan.splits))
        fn = ReadSplitFn(self.plan, self.columns, self.count_rows)
        if self.count_rows:
            return splits | "ReadSplits" >> beam.ParDo(fn).with_outputs("file_rows", main="batches")
        return splits | "ReadSplits" >> beam.ParDo(fn)


# --------------------------------------------------------------------------- sample + fit


class _LockedValidator:
    """One RowValidator per worker process, used by one thread at a time."""

    def __init__(self, suite):
        from sanitizer.validation import RowValidator

        self.validator = RowValidator(suite)
        self.lock = threading.Lock()

    def __getstate__(self):
        return {"suite": self.validator.suite}

    def __setstate__(self, state):
        self.__init__(state["suite"])

    def issues(self, table):
        with self.lock:
            return self.validator.issues(table)


def _row_validator(plan: Plan):
    if plan.suite is None or not plan.suite.row_level:
        return None
    return _LockedValidator(plan.suite)



def to_detector_batch(table: pa.Table, plan: Plan, validator=None) -> tuple[Batch, Any]:
    extra = validator.issues(table) if validator is not None else None
    ex = extract(table, list(plan.features), plan.label_column, plan.id_output, plan.embedding, extra)
    batch = Batch(ex.X, ex.labels, ex.keys, ex.ids, tuple(plan.feature_names), ex.embedding)
    return batch, ex


class SampleFn(beam.CombineFn):
    """CombineFn: Arrow tables -> the bounded, seeded, class-aware sample (see sanitizer.sampling)."""

    def __init__(self, plan: Plan, config: Config):
        self.plan = plan
        self.validator = _row_validator(plan)
        self.sampler = ClassAwareSampler(
            size=config.sample.size,
            min_per_class=config.sample.min_per_class,
            seed=config.seed,
            n_features=len(plan.feature_names) + (plan.embedding.width if plan.embedding else 0),
        )

    def create_accumulator(self):
        return self.sampler.create()

    def add_input(self, acc, table):
        keys = table.column(KEY_COLUMN).to_numpy()
        labels = label_strings(table.column(self.plan.label_column))
        mask = self.sampler.candidates(acc, labels, keys)
        if not mask.any():
            return acc
        if not mask.all():
            table = table.filter(pa.array(mask))
        batch, _ = to_detector_batch(table, self.plan, self.validator)
        X = batch.X if batch.embedding is None else np.hstack([batch.X, batch.embedding])  # split again in fit
        return self.sampler.add(acc, X, batch.labels, batch.keys, batch.ids)

    def merge_accumulators(self, accs):
        return self.sampler.merge(list(accs))

    def extract_output(self, acc):
        return self.sampler.extract(acc)


def fit_detectors(sample, plan: Plan, config: Config) -> dict[str, Any]:
    """Fit every enabled detector on the sample.

    A detector that cannot run on this data by its own rules (one class, too few
    rows) returns Skipped and provenance says why: that is the only way a detector
    is skipped (see sanitizer.detectors.contract). A detector whose fit *raises*, or
    returns something that is neither a state nor Skipped, fails the run naming it:
    skipping it would publish data it normally screens as clean, and a poisoned
    value that breaks a fit must never switch the defence off.
    """
    from sanitizer.detectors.contract import fitted  # local: this function is the contract's one user here

    progress.stage(f"fitting detectors on {sample.n:,} sample rows")
    d = len(plan.feature_names)
    X, E = (sample.X, None) if plan.embedding is None else (sample.X[:, :d], sample.X[:, d:])
    batch = Batch(X, sample.labels, sample.keys, sample.ids, tuple(plan.feature_names), E)
    states: dict[str, Any] = {}
    for name in config.enabled_detectors():
        detector = REGISTRY[name]()
        try:
            state = detector.fit(batch, config.detectors[name], config.seed)
        except SanitizerError as exc:  # already says what to fix; make sure it says which detector
            if name in str(exc):
                raise
            raise type(exc)(f"detector {name!r}: {exc}") from exc
        except Exception as exc:
            raise SanitizerError(fit_failure(name, exc, sample.n)) from exc
        states[name] = fitted(name, state)
    return states


def fit_failure(name: str, exc: BaseException, rows: int) -> str:
    """One-line message for a detector whose fit raised: which detector, the cause, and the ways out."""
    cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
    return (
        f"detector {name!r} failed to fit on the {rows:,}-row sample ({cause}); nothing was published. "
        f"Fix its settings under detectors.{name}, or switch it off with detectors.{name}.enabled: false"
    )


def fit_summary(states: dict[str, Any], sample) -> dict[str, Any]:
    classes = pd.Series(sample.labels).value_counts().sort_index()
    out: dict[str, Any] = {
        "sample": {"rows": int(sample.n), "per_class": {str(k): int(v) for k, v in classes.items()}},
        "detectors": {},
    }
    for name, state in states.items():
        if isinstance(state, Skipped):
            out["detectors"][name] = {"status": "skipped", "reason": state.reason}
        else:
            out["detectors"][name] = {"status": "fitted", **REGISTRY[name]().summary(state)}
    return out


# --------------------------------------------------------------------------- score + split


def _score_threaded(detector, batch: Batch, state, pool: ThreadPoolExecutor | None, threads: int) -> Scores:
    if pool is None or threads <= 1 or batch.n < 4096 or getattr(detector, "internal_threads", False):
        return detector.score(batch, state)
    bounds = np.linspace(0, batch.n, threads + 1).astype(int)
    chunks = [
        Batch(batch.X[a:b], batch.labels[a:b], batch.keys[a:b], batch.ids[a:b], batch.feature_names,
              None if batch.embedding is None else batch.embedding[a:b])
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    parts = list(pool.map(lambda c: detector.score(c, state), chunks))
    evidence = {}
    for offset, part in zip(bounds[:-1], parts):
        evidence.update({int(offset) + i: e for i, e in part.evidence.items()})
    return Scores(
        np.concatenate([p.score for p in parts]),
        np.concatenate([p.flagged for p in parts]),
        parts[0].threshold,
        evidence,
        None if parts[0].thresholds is None else np.concatenate([p.thresholds for p in parts]),
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


class ScoreFn(beam.DoFn):
    """Score a batch with every fitted detector, apply the policy and split it.

    Main output: clean tables. Tagged outputs: 'quarantine' tables and 'stats' dicts.

    Scoring a batch runs on a background thread (itself fanning out over
    ``scoring.threads`` threads) while the runner reads the next batch, so
    reading, scoring and writing overlap and every core is busy. At most
    ``MAX_IN_FLIGHT`` batches are held; everything is flushed in
    ``finish_bundle``, so no output outlives its bundle.
    """

    MAX_IN_FLIGHT = 3

    def __init__(self, plan: Plan, config: Config):
        self.plan = plan
        self.config = config
        self.pool = None
        self.runner_pool = None

    def setup(self):
        self.threads = self.config.scoring.threads or os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.runner_pool = ThreadPoolExecutor(2)
        self.detectors = {name: REGISTRY[name]() for name in self.config.enabled_detectors()}
        self.validator = _row_validator(self.plan)

    def start_bundle(self):
        self.pending = []
        progress.stage("scoring")

    def teardown(self):
        for pool in (self.pool, self.runner_pool):
            if pool is not None:
                pool.shutdown(wait=False)

    def process(self, table: pa.Table, states: dict[str, Any], window=beam.DoFn.WindowParam,
                timestamp=beam.DoFn.TimestampParam):
        self.pending.append((self.runner_pool.submit(self.score_table, table, states), window, timestamp))
        while len(self.pending) > self.MAX_IN_FLIGHT or (self.pending and self.pending[0][0].done()):
            future, _, _ = self.pending.pop(0)
            yield from future.result()

    def finish_bundle(self):
        from apache_beam.utils.windowed_value import WindowedValue

        pending, self.pending = self.pending, []
        for future, window, timestamp in pending:
            for out in future.result():
                if isinstance(out, TaggedOutput):
                    yield TaggedOutput(out.tag, WindowedValue(out.value, timestamp, [window]))
                else:
                    yield WindowedValue(out, timestamp, [window])

    def score_table(self, table: pa.Table, states: dict[str, Any]) -> list:
        plan = self.plan
        n = table.num_rows
        batch, ex = to_detector_batch(table, plan, self.validator)
        results: dict[str, Scores] = {}
        for name, detector in self.detectors.items():
            state = states.get(name)
            if state is None or isinstance(state, Skipped):
                continue
            results[name] = _score_threaded(detector, batch, state, self.pool, self.threads)
        ids = content = None
        if plan.decisions is not None:  # review decisions are looked up by record id, checked on content
            ids = pc.cast(table.column(plan.id_output), pa.string()).to_numpy(zero_copy_only=False)
            content = np.full(n, None, dtype=object)
            decided = plan.decisions.rows_with_decisions(ids)
            if len(decided):
                content[decided] = content_sha256(table, decided)
        decision = decide(n, ex, results, self.config.policy, plan.decisions, ids, content)
        progress.add("scored", n)
        progress.add("quarantined", int(decision.quarantine.sum()))

        keep = list(plan.output_schema.names)
        q = decision.quarantine
        outputs: list = [table.filter(pa.array(~q)).select(keep).cast(plan.output_schema)]
        detector_names = self.config.enabled_detectors()
        if q.any():
            rows = np.flatnonzero(q)
            quarantined = table.take(pa.array(rows)).select(keep)
            entries = [decision.reasons.get(int(i), []) for i in rows]
            quarantined = quarantined.append_column(
                REASONS_COLUMN, pa.array([reasons_json(e) for e in entries], type=pa.string())
            )
            quarantined = quarantined.append_column(
                CODES_COLUMN, pa.array([[r["code"] for r in e] for e in entries], type=pa.list_(pa.string()))
            )
            quarantined = quarantined.append_column(
                CONTENT_COLUMN, pa.array(_content_of(table, rows, content), type=pa.string())
            )
            for name in detector_names:
                values = decision.scores.get(name, np.full(n, np.nan))[rows]
                quarantined = quarantined.append_column(score_column(name), pa.array(values, type=pa.float64()))
            schema = quarantine_schema(plan.output_schema, detector_names)
            outputs.append(TaggedOutput("quarantine", quarantined.cast(schema)))
        outputs.append(TaggedOutput("stats", self._stats(n, ex, decision, results)))
        return outputs

    def _stats(self, n, ex, decision, results) -> dict[str, Any]:
        q = decision.quarantine
        labels = ex.labels_all
        by_reason: dict[str, int] = {}
        overridden = decision.overridden if decision.overridden is not None else np.zeros(n, dtype=bool)
        for row in np.flatnonzero((q | decision.reported) & ~overridden):
            for code in {r["code"] for r in decision.reasons.get(int(row), [])}:
                by_reason[code] = by_reason.get(code, 0) + 1
        by_detector = {}
        for name, result in results.items():
            flagged = int(result.flagged.sum())
            by_detector[name] = {
                "scored": int(np.isfinite(result.score).sum()),
                "flagged": flagged,
                "action": self.config.policy.get(name, "quarantine"),
            }
        stats = {
            "rows_in": int(n),
            "clean": int((~q).sum()),
            "quarantined": int(q.sum()),
            "invalid": int((~ex.valid).sum()),
            "reported_kept_clean": int(decision.reported.sum()),
            "by_reason": by_reason,
            "by_detector": by_detector,
            "by_class": {
                "rows": _count(labels),
                "quarantined": _count(labels[q]),
            },
        }
        if decision.released is not None:
            flags: dict[str, int] = {}
            for row in np.flatnonzero(overridden):
                for r in decision.reasons.get(int(row), []):
                    if r.get("action") == "quarantine":
                        flags[r["code"]] = flags.get(r["code"], 0) + 1
            stats["review"] = {
                "released_seen": int(decision.released.sum()),
                "released_kept_clean": int((decision.released & ~q).sum()),
                "released_overridden": int(overridden.sum()),
                "overridden_flags": flags,
                "confirmed_held": int(decision.confirmed.sum()),
                "confirmed_held_unflagged": int(decision.held_by_review.sum()),
                "stale": int(decision.stale.sum()),  # decided for other content (or unbound): not applied
                "stale_unbound": int(decision.unbound.sum()),
            }
        return stats


def merge_stats(parts) -> dict[str, Any]:
    """Sum nested count dicts (used as a CombineGlobally function)."""
    total: dict[str, Any] = {}
    for part in parts:
        _add_into(total, part)
    return total


def _add_into(total: dict, part: dict) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_into(total.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total.setdefault(key, value)


def write_json(obj: Any, path: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as fh:
        fh.write(json.dumps(obj, indent=2, sort_keys=True, default=str).encode("utf-8"))
    return path


# --------------------------------------------------------------------------- id uniqueness

ID_BUCKETS = 64
MAX_REPORTED_DUPLICATES = 20


def id_buckets(table: pa.Table, id_column: str):
    """Split a batch's (key, id) pairs into hash buckets, so duplicates meet in one place."""
    keys = table.column(KEY_COLUMN).to_numpy()
    ids = table.column(id_column).combine_chunks()
    bucket = (keys % np.uint64(ID_BUCKETS)).astype(np.int64)
    for b in np.unique(bucket):
        rows = np.flatnonzero(bucket == b)
        yield int(b), (keys[rows], ids.take(pa.array(rows)))


def find_duplicate_ids(item) -> list[dict[str, Any]]:
    """Ids that occur more than once in one bucket (exact: hash matches are checked on the ids)."""
    _, parts = item
    parts = list(parts)
    keys = np.concatenate([p[0] for p in parts])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if len(repeated) == 0:
        return []
    candidates = np.unique(sorted_keys[repeated])
    ids = pa.concat_arrays([p[1].cast(pa.string()) for p in parts])
    rows = np.flatnonzero(np.isin(keys, candidates))
    counts = pd.Series(ids.take(pa.array(rows)).to_pylist()).value_counts()
    return [{"id": str(k), "count": int(v)} for k, v in counts.items() if v > 1]


def merge_duplicates(parts) -> dict[str, Any]:
    total = 0
    examples: list[dict[str, Any]] = []
    for part in parts:
        if "duplicated_ids" in part:  # an earlier merge
            total += part["duplicated_ids"]
            examples.extend(part["examples"])
        else:
            total += 1
            examples.append(part)
    examples = sorted(examples, key=lambda e: (-e["count"], e["id"]))[:MAX_REPORTED_DUPLICATES]
    return {"duplicated_ids": total, "examples": examples}


def validate_sample(sample, plan: Plan) -> dict[str, Any]:
    """Data-set-level expectations (other than row counts) on the bounded sample."""
    from sanitizer.validation import ROW_COUNT, sample_frame, summarise, validate_frame

    frame = sample_frame(sample, plan)
    # The sample holds the scalar features and the label; checks on other columns run on the clean output.
    expectations = [
        e for e in plan.suite.dataset_level
        if e["type"] not in ROW_COUNT and _columns_of(e) <= set(frame.columns)
    ]
    result = validate_frame(plan.suite, frame, expectations)
    return {"result": result, "summary": summarise(result, "input sample")}


def _columns_of(expectation: dict) -> set[str]:
    kw = expectation.get("kwargs", {})
    cols = {kw[k] for k in ("column", "column_A", "column_B") if k in kw}
    return cols | set(kw.get("column_list", []))
