"""The bounded sample and the detectors fitted on it (and the sample's expectation results)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa

from sanitizer.runs import progress
from sanitizer.beam.allocator import release_freed_memory
from sanitizer.beam.threads import finish_warm_imports, one_thread_per_library_call, start_warm_imports
from sanitizer.settings.config import Config
from sanitizer.detectors import REGISTRY, Skipped
from sanitizer.errors import SanitizerError
from sanitizer.beam.plan import Plan
from sanitizer.data.batch import EMBEDDING, KEY_COLUMN, NUMERIC, Batch, column_medians, label_strings
from sanitizer.data.extract import extract
from sanitizer.beam.media import describe as describe_media, fit_media, with_media
from sanitizer.beam.sample import ClassAwareSampler
from sanitizer.detectors.contract import fitted
from sanitizer.validation.suite import ROW_COUNT, RowValidator, SHAPE, sample_frame, summarise, validate_frame

class _LockedValidator:
    """One RowValidator per worker process, used by one thread at a time."""

    def __init__(self, suite):
        self.validator = RowValidator(suite)
        self.lock = threading.Lock()

    def __getstate__(self):
        return {"suite": self.validator.suite}

    def __setstate__(self, state):
        self.__init__(state["suite"])

    def issues(self, table):
        with self.lock:
            return self.validator.issues(table)


def row_validator(plan: Plan):
    if plan.suite is None or not plan.suite.row_level:
        return None
    return _LockedValidator(plan.suite)



def to_detector_batch(table: pa.Table, plan: Plan, validator=None, fill=None) -> Batch:
    """The batch the detectors see (missing values filled with ``fill``, the sample's medians, when
    given), with what the check of every row of ``table`` found (``checks``)."""
    extra = validator.issues(table) if validator is not None else None
    batch = extract(table, list(plan.features), plan.label_column, plan.id_output, plan.embedding, extra,
                    missing=plan.missing_features, encoders=plan.encoders)
    return batch.filled(fill)


def missing_fill(sample: Batch, plan: Plan) -> np.ndarray:
    """What a missing feature value is judged as: each feature's median over the sample."""
    return column_medians(sample.X)


class SampleFn(beam.CombineFn):
    """CombineFn: Arrow tables -> the bounded, seeded, class-aware sample (see sanitizer.beam.sample)."""

    def __init__(self, plan: Plan, config: Config):
        self.plan = plan
        self.validator = row_validator(plan)
        columns: dict[str, list[str]] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for encoder in plan.encoders:
            columns.setdefault(encoder.kind, []).append(encoder.name)
            shapes[encoder.kind] = tuple(getattr(encoder, "row_shape", ()))
        self.sampler = ClassAwareSampler(
            size=config.sample.size,
            min_per_class=config.sample.min_per_class,
            seed=config.seed,
            widths={NUMERIC: len(plan.feature_names), **({EMBEDDING: plan.embedding.width} if plan.embedding else {}),
                    **{kind: (len(names), *shapes[kind]) if shapes[kind] else len(names)
                       for kind, names in columns.items()}},
            columns=columns,
        )

    def setup(self):
        start_warm_imports()  # the detectors' libraries load while the sample is read

    def create_accumulator(self):
        return self.sampler.create()

    def add_input(self, acc, table):
        if table is None:  # the one element every run adds, so the sample exists when no row is read
            return acc
        keys = table.column(KEY_COLUMN).to_numpy()
        labels = label_strings(table.column(self.plan.label_column))
        mask = self.sampler.candidates(acc, labels, keys)
        if not mask.any():
            return acc
        if not mask.all():
            table = table.filter(pa.array(mask))
        return self.sampler.add(acc, to_detector_batch(table, self.plan, self.validator))

    def merge_accumulators(self, accs):
        return self.sampler.merge(list(accs))

    def compact(self, acc):
        return self.sampler.settle(acc)

    def extract_output(self, acc):
        return self.sampler.extract(acc)


def fit_detectors(sample: Batch, plan: Plan, config: Config) -> dict[str, Any]:
    """Fit every enabled detector on the sample; name -> fitted state (see :func:`fit_timed`)."""
    return fit_timed(sample, plan, config)[0]


def prepared(sample: Batch, media: dict[str, Any], fill) -> Batch:
    """``sample`` as scoring prepares a batch: missing values filled with ``fill`` (the sample's medians),
    each image and text column's vectors from its fitted representation (``media``) appended."""
    return with_media(sample.filled(fill), media)


def media_vectors(batch: Batch, media: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each image and text column's representation vectors (n, d) in ``batch``, prepared (:func:`prepared`)."""
    out = {}
    for name in media:
        cols = [j for j, f in enumerate(batch.feature_names) if f.startswith(f"{name}:")]
        if cols:
            out[name] = np.asarray(batch.X[:, cols], dtype=np.float64)
    return out


def fit_timed(sample: Batch, plan: Plan, config: Config, new: Batch | None = None
              ) -> tuple[dict[str, Any], dict[str, float], dict[str, Any], dict[str, tuple]]:
    """Fit every enabled detector on the sample: (name -> fitted state, name -> seconds, image or text column ->
    its fitted representation, image or text column -> its (baseline, new) representation vectors for the
    drift report: only with ``new``, from the samples the fit prepared anyway).

    The image and text columns' representations are fitted first (:mod:`sanitizer.beam.media`); their
    vectors join the sample's numeric features before the detectors fit.

    A detector that cannot run on this data by its own rules (one class, too few
    rows) returns Skipped and provenance says why: that is the only way a detector
    is skipped (see sanitizer.detectors.contract). A detector whose fit *raises*, or
    returns something that is neither a state nor Skipped, fails the run naming it:
    skipping it would publish data it normally screens as clean, and a poisoned
    value that breaks a fit must never switch the defence off.

    The fits are independent, so they run side by side, each with single-threaded
    libraries (sanitizer.beam.threads); each is deterministic on its own (its
    seed, its sample), so the result does not depend on which finishes first.
    Only feature_collision uses torch's global generator.

    With ``new`` (``sample`` is a trusted baseline's; ``new`` the new data's sample), each detector is fitted
    as :func:`fit_against_baseline` says, all side by side: its recalibration on the new sample follows its
    fit on the same thread, while the other detectors fit.
    """
    progress.stage(f"fitting detectors on {sample.n:,} sample rows")
    release_freed_memory()  # what drawing and handing over the sample took
    fill = missing_fill(sample, plan)
    batch = sample.filled(fill)
    finish_warm_imports()
    one_thread_per_library_call()
    t0 = time.perf_counter()
    media = fit_media(batch, config.seed, config.media)
    batch = with_media(batch, media)
    fresh = None if new is None else prepared(new, media, fill)
    media_seconds = time.perf_counter() - t0
    names = config.enabled_detectors()

    def one(name: str):
        if fresh is None:
            return _fit_one(name, batch, config)
        return fit_against_baseline(name, batch, fresh, config.detectors[name], config.seed)

    workers = min(len(names), config.scoring.threads or os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(one, names))
    else:
        outcomes = [one(name) for name in names]
    states: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name, (state, error, took) in zip(names, outcomes):
        if error is not None:  # the first failure in the config's detector order, whichever failed first in time
            raise error
        states[name], seconds[name] = state, took
    check_state_size({**states, **{f"representation of {c}": m for c, m in media.items()}}, batch.X.shape[1])
    if media:
        seconds["representations"] = media_seconds
    vectors: dict[str, tuple] = {}
    if fresh is not None and media and fresh.n and batch.n:
        base, mine = media_vectors(batch, media), media_vectors(fresh, media)
        vectors = {name: (base[name], mine[name]) for name in base if name in mine}
    del batch, fresh, outcomes
    release_freed_memory()  # the fits' working copies: scoring starts from what the states weigh
    return states, seconds, media, vectors


def fit_against_baseline(name: str, baseline: Batch, new: Batch, params: Any, seed: int):
    """(state, None, seconds) or (None, the error to raise, seconds): detector ``name`` for scoring new data
    against a trusted baseline, from the baseline's and the new data's prepared samples.

    A detector that learns from the new data alone (``fits_on_new_data``: ``backdoor``, since a vetted
    baseline holds no trigger to find) is fitted on ``new``; Skipped when it is empty. Every other detector
    is fitted on ``baseline``, then, if it can (``recalibrate(state, new)``: ``label_flip``'s thresholds and
    noise model), recalibrated on ``new``."""
    detector = REGISTRY[name]
    if getattr(detector, "fits_on_new_data", False):
        if not new.n:
            return Skipped("the new data's sample is empty"), None, 0.0
        return fit_one(name, new, params, seed)
    state, error, took = fit_one(name, baseline, params, seed)
    again = getattr(detector(), "recalibrate", None)
    if error is not None or again is None or isinstance(state, Skipped) or not new.n:
        return state, error, took
    state, error, again_took = _guarded(name, new.n, lambda: again(state, new))
    return state, error, took + again_took


MAX_STATE_BYTES = 2**30
"""The most the fitted states may weigh, pickled: they reach every worker as one side input (gRPC, which
carries the runners' data, refuses a buffer over 2 GiB), and every worker holds them in memory."""


def check_state_size(states: dict[str, Any], n_features: int, limit: int | None = None) -> dict[str, int]:
    """Each state's pickled size in bytes; SanitizerError naming the largest when together they exceed ``limit``
    (default MAX_STATE_BYTES).

    The plan already bounds the feature count (sanitizer.beam.plan.MAX_FEATURE_VALUES); the classes, which
    the state also grows with, are known only once the sample is drawn, so the size is measured here."""
    import pickle

    limit = MAX_STATE_BYTES if limit is None else limit

    sizes = {name: len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)) for name, state in states.items()}
    total = sum(sizes.values())
    if total > limit:
        largest = max(sizes, key=sizes.get)
        raise SanitizerError(
            f"the detectors' fitted state is {total / 2**20:,.1f} MiB ({largest}: {sizes[largest] / 2**20:,.1f} MiB), "
            f"over the {limit / 2**20:,.1f} MiB a run sends to its workers; it grows with the {n_features:,} feature "
            f"values and with the classes. Choose fewer columns with --feature-columns, or switch the detector off "
            f"with detectors.{largest}.enabled: false; nothing was published"
        )
    return sizes


def _fit_one(name: str, batch: Batch, config: Config):
    """(state, None, seconds) or (None, the error to raise, seconds) for one detector."""
    return fit_one(name, batch, config.detectors[name], config.seed)


def fit_one(name: str, batch: Batch, params: Any, seed: int):
    """(state, None, seconds) or (None, the error to raise, seconds): detector ``name`` fitted on ``batch``."""
    def fit():
        detector = REGISTRY[name]()
        if getattr(detector, "whole_data", False):  # judged over every record by a stage of its own
            return detector.prepare(params, seed)
        return detector.fit(batch, params, seed)

    return _guarded(name, batch.n, fit)


def _guarded(name: str, rows: int, make):
    """(state, None, seconds) or (None, the error to raise, seconds) of ``make()``, a fit of detector ``name``
    on ``rows`` sample rows: what it raised named as that detector's failure; a state that breaks the
    contract named as the detector's own bug (TypeError)."""
    t0 = time.perf_counter()
    try:
        state = make()
    except SanitizerError as exc:  # already says what to fix; make sure it says which detector
        error = exc if name in str(exc) else type(exc)(f"detector {name!r}: {exc}")
        error.__cause__ = exc
        return None, error, time.perf_counter() - t0
    except Exception as exc:
        error = SanitizerError(fit_failure(name, exc, rows))
        error.__cause__ = exc
        return None, error, time.perf_counter() - t0
    took = time.perf_counter() - t0
    try:
        return fitted(name, state), None, took
    except TypeError as exc:  # a broken contract: the detector's own bug, named as such
        return None, exc, took


def fit_failure(name: str, exc: BaseException, rows: int) -> str:
    """One-line message for a detector whose fit raised: which detector, the cause, and the ways out."""
    cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
    return (
        f"detector {name!r} failed to fit on the {rows:,}-row sample ({cause}); nothing was published. "
        f"Fix its settings under detectors.{name}, or switch it off with detectors.{name}.enabled: false"
    )


def describe_sample(sample: Batch) -> dict[str, Any]:
    """The sample's rows and rows per class, for the fit summary (a few numbers: the summary is assembled
    after scoring, and the sample itself is not kept that long)."""
    classes = pd.Series(sample.labels).value_counts().sort_index()
    return {"rows": int(sample.n), "per_class": {str(k): int(v) for k, v in classes.items()}}


def describe_fit(fit: tuple) -> dict[str, Any]:
    """What :func:`fit_timed`'s output says beside the states: seconds and the representations used."""
    _, seconds, media, _ = fit
    return {"seconds": dict(seconds or {}), "representations": describe_media(media) if media else None}


def describe_states(states: dict[str, Any]) -> dict[str, Any]:
    """Detector name -> its status and summary (fitted) or the reason it was skipped."""
    out: dict[str, Any] = {}
    for name, state in states.items():
        if isinstance(state, Skipped):
            out[name] = {"status": "skipped", "reason": state.reason}
        else:
            out[name] = {"status": "fitted", **REGISTRY[name]().summary(state)}
    return out


def fit_summary(sample: dict[str, Any], detectors: dict[str, Any], fit: dict[str, Any]) -> dict[str, Any]:
    """The fit summary provenance and the report read, from :func:`describe_sample`, :func:`describe_states`
    and :func:`describe_fit` (each computed where its data is, so only these few numbers travel)."""
    out: dict[str, Any] = {
        "sample": {"rows": sample["rows"], "per_class": dict(sample["per_class"])},
        "detectors": dict(detectors),
        "seconds": dict(fit["seconds"]),
    }
    if fit.get("representations"):  # what made each image or text column's vectors: sample.representations
        out["sample"]["representations"] = fit["representations"]
    return out



def validate_sample(sample: Batch, plan: Plan) -> dict[str, Any]:
    """Data-set-level expectations (other than row counts and table shape) on the bounded sample."""
    frame = sample_frame(sample, plan)
    # The sample holds the scalar features and the label; checks on other columns run on the clean output,
    # table-shape checks on the input's real columns (sanitizer.validation.checkpoint).
    expectations = [
        e for e in plan.suite.dataset_level
        if e["type"] not in ROW_COUNT and e["type"] not in SHAPE and _columns_of(e) <= set(frame.columns)
    ]
    result = validate_frame(plan.suite, frame, expectations)
    return {"result": result, "summary": summarise(result, "input sample")}


def _columns_of(expectation: dict) -> set[str]:
    kw = expectation.get("kwargs", {})
    cols = {kw[k] for k in ("column", "column_A", "column_B") if k in kw}
    return cols | set(kw.get("column_list", []))
