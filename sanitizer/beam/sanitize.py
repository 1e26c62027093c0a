"""``Sanitize``: the whole job as one PTransform, publication included.

::

    import apache_beam as beam
    from sanitizer.beam import Sanitize

    with beam.Pipeline() as p:
        manifest = p | Sanitize(input="data/*.parquet", output="out/", label_column="label")
        manifest | beam.Map(print)          # the published manifest's URI, once it exists

The graph::

    ReadForSample ─► Sample (CombineGlobally) ─► FitDetectors ────────────────┐ side input
    Read ─────────────────────────────────────────────────────────────► Score ─┴─► WriteClean ──────┐
                                                                          ├──────► WriteQuarantine ─┤
                                                                          └─stats► CombineStats ────┤
    HashInputs, DescribeShards, fit summary, sample validation, duplicate ids ──────────────────────┤
                                                                                   Publish ◄────────┘
                                                                    (provenance, report, lineage, manifest)

The data is read twice - once (only the columns the detectors need) to draw the
sample, once to score - so no runner has to hold the whole data set while the
detectors are fitted. Publication (``sanitizer.beam.publish``) is a stage of
the graph that waits for every write, so nothing is left for the launching
process to do after it submits the job.

What happens when the transform is applied (at pipeline construction, in the
process that builds the pipeline, before anything runs): the output lock is
taken (``sanitizer.runs.output_lock``; a launcher such as ``sanitize run`` that
already holds it keeps it), the config is checked, the input is planned (files
listed, schema read), the paths are checked, and the output folder is claimed
(``--overwrite`` removes the earlier run of ours there). A lock this transform
took itself is released by the publish stage, once the manifest is written or
publication failed. A problem the user can fix raises ``SanitizerError`` then,
and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam

from sanitizer.beam.publish import Publish, RunContext
from sanitizer.beam.fit import (
    SampleFn, describe_fit, describe_sample, describe_states, fit_summary, fit_timed, missing_fill, validate_sample,
)
from sanitizer.beam.baseline import Baseline, baseline_plan
from sanitizer.beam.drift import add_stage as add_drift
from sanitizer.beam.duplicates import NAME as DUPLICATES, add_stage as add_duplicates, read_columns as duplicate_columns
from sanitizer.beam.holdout import holdout_plan
from sanitizer.beam.ids import find_duplicate_ids, id_buckets, merge_duplicates
from sanitizer.beam.read import ReadBatches
from sanitizer.beam.score import ScoreFn
from sanitizer.data import layout
from sanitizer.detectors import REGISTRY
from sanitizer.settings.config import Config, build_config, load_config_file
from sanitizer.errors import ConfigError
from sanitizer.beam.plan import Plan, make_plan
from sanitizer.runs.record import Counts
from sanitizer.io import fs
from sanitizer.runs import claim, output_lock, progress, provenance as prov
from sanitizer.runs.lineage import emit as lineage_emit


def as_config(config: Config | dict | str | os.PathLike | None = None, **keys: Any) -> Config:
    """A validated Config from a Config, a mapping, a config file path or nothing, with ``keys`` on top."""
    if isinstance(config, Config):
        if not keys:
            return config
        raw = config.to_dict()
    elif config is None:
        raw = {}
    elif isinstance(config, dict):
        raw = dict(config)
    elif isinstance(config, (str, os.PathLike)):
        raw = load_config_file(os.fspath(config))
    else:
        raise ConfigError(
            f"Sanitize(config=...) takes a Config, a mapping or a config file path, not {type(config).__name__}"
        )
    for key, value in keys.items():
        if value is not None:
            raw[key] = value
    return build_config(raw)


def run_id_for(started: datetime, config: Config, plan: Plan) -> str:
    """Start time plus a digest of the config and the planned files (path, size, modification time)."""
    files = [[f.path, f.size, f.mtime] for f in plan.files]
    digest = hashlib.sha256(
        json.dumps({"config": config.to_dict(), "files": files}, sort_keys=True, default=str).encode()
    ).hexdigest()[:10]
    return started.strftime("%Y%m%dT%H%M%SZ") + "-" + digest


def _recorded_options(options, beam_args: list[str] | None) -> list[str]:
    if beam_args is None:
        given = options.get_all_options(drop_default=True, retain_unknown_options=True)
        beam_args = [f"--{k}={v}" for k, v in sorted(given.items())]
    return prov.redact(list(beam_args))


class Sanitize(beam.PTransform):
    """Read, sample, fit, score, write and publish one sanitize run; emits the published manifest's URI.

    Keyword arguments mirror the config keys (``input``, ``output``,
    ``label_column``, ``id_column``, ``feature_columns``, ``format``, ``seed``,
    ``overwrite``, ``decisions``, ``sample``, ``detectors``, ``policy``,
    ``validation``, ...); ``config=`` also takes a config file path, a mapping
    or a ``Config``, which the keyword arguments override. ``beam_args`` is only
    what provenance records as the run's pipeline options (``sanitize run``
    passes its command line); by default the pipeline's non-default options.
    """

    def __init__(self, config: Config | dict | str | os.PathLike | None = None, *,
                 beam_args: list[str] | None = None, label: str | None = None, **keys: Any):
        super().__init__(label)
        self.config = as_config(config, **keys)
        self.beam_args = beam_args
        self.run_id: str | None = None  # known once the transform is applied
        self.lineage_context = None  # sanitizer.runs.lineage.emit.LineageContext, once the transform is applied

    def expand(self, pbegin):
        config = self.config
        config.require_runnable()
        out = config.output.rstrip("/")
        fs.check_output_path(out)
        lock = output_lock.held(out)  # a launcher's (sanitize run); else this transform takes it
        own = lock is None
        if own:
            try:
                lock = output_lock.acquire(out, "run")
            except OSError as exc:
                raise claim.write_failure(out, exc) from None
        try:
            return self._expand(pbegin, config, out, lock["token"] if own or lock.get("release_in_pipeline") else None)
        except BaseException:
            if own:
                output_lock.release(out, lock)
            raise

    def _expand(self, pbegin, config: Config, out: str, lock_token: str | None):
        from apache_beam.options.pipeline_options import StandardOptions

        started = datetime.now(timezone.utc)
        t0 = time.time()
        claim.check_paths(config.input, out)  # before planning reads a byte
        plan: Plan = make_plan(config)
        claim.check_paths(config.input, out, plan.files)
        warnings = list(plan.warnings) + claim.input_warnings(plan.files)
        for warning in warnings:
            claim.log.warning(warning)
        claim.check_identical_files(plan.files)
        baseline = baseline_plan(config, plan)  # verified before anything is deleted
        claim.prepare_output(out, config.overwrite)  # nothing is deleted for a run that cannot start
        options = pbegin.pipeline.options
        self.run_id = run_id_for(started, config, plan)
        self.lineage_context = lineage_emit.context_for(self.run_id, config.input)
        ctx = RunContext(
            run_id=self.run_id,
            out=out,
            started_at=started.isoformat(),
            started_wall=t0,
            plan_s=round(time.time() - t0, 3),
            runner=_runner_name(options.view_as(StandardOptions).runner),
            pipeline_options=_recorded_options(options, self.beam_args),
            warnings=warnings,
            lineage=self.lineage_context,
            lock_token=lock_token,
            baseline=None if baseline is None else baseline.record,
        )
        progress.stage("pipeline: sampling, fitting, scoring, publishing")
        parts = _stages(pbegin, plan, config, out, baseline)
        published = pbegin | "Publish" >> Publish(ctx, plan, config, parts)
        lineage_emit.start(self.lineage_context, ctx.started_at, config.to_dict(), plan, out, ctx.runner)
        return published


def _runner_name(runner) -> str:
    if runner is None:
        return "DirectRunner"
    return runner if isinstance(runner, str) else type(runner).__name__


def _stages(p, plan: Plan, config: Config, out: str, baseline: Baseline | None = None) -> dict[str, Any]:
    """Add the reading, fitting, scoring and writing stages; the PCollections publication needs. With a
    ``baseline``, the detectors' sample is drawn from it (``sanitizer.beam.baseline``)."""
    from apache_beam.io.parquetio import WriteToParquetBatched

    source = plan if baseline is None else baseline.plan
    # the duplicates stage's chance and vector samples share the read of the new data's sample
    content = duplicate_columns(plan) if DUPLICATES in config.enabled_detectors() else []
    sample_tables = p | "ReadForSample" >> ReadBatches(
        source, columns=_union(source.read_columns(), content if baseline is None else []), none=True)
    own_tables = sample_tables if baseline is None else (
        p | "ReadNewSample" >> ReadBatches(plan, columns=_union(plan.read_columns(), content), none=True))
    # The sample is the combine's main output, fitted on where it is merged: a combine's default value
    # travels as a side input, which a runner keeps for the whole run (the read's None element gives the
    # combine an input when no row is read). Only a few numbers about the sample go further
    # (DescribeSample), so no stage holds it while the data is scored.
    sample = sample_tables | "Sample" >> beam.CombineGlobally(SampleFn(source, config)).without_defaults()
    fill = sample | "MissingFill" >> beam.Map(missing_fill, plan)
    own = sample if baseline is None else (  # the new data's own sample: data-set checks, recalibration
        own_tables | "NewSample" >> beam.CombineGlobally(SampleFn(plan, config)).without_defaults())
    # with a baseline the detectors fit on its sample and recalibrate on the new data's, in one stage
    fitted = sample | "FitDetectors" >> beam.Map(
        fit_timed, plan, config, *([] if baseline is None else [beam.pvalue.AsSingleton(own)]))
    states = fitted | "States" >> beam.Map(lambda f: f[0])
    states = add_duplicates(p, plan, config, states, holdout_plan(config, plan),  # verdicts from every record's content
                            own_tables if content else None)
    described = sample | "DescribeSample" >> beam.Map(describe_sample)
    parts: dict[str, Any] = {
        "fit": described | "SummariseFit" >> beam.Map(
            fit_summary, beam.pvalue.AsSingleton(states | "DescribeStates" >> beam.Map(describe_states)),
            beam.pvalue.AsSingleton(fitted | "DescribeFit" >> beam.Map(describe_fit))),
    }
    if plan.suite is not None:  # the data-set checks judge the new data, not the baseline
        parts["sample_validation"] = own | "ValidateSample" >> beam.Map(validate_sample, plan)

    read = p | "Read" >> ReadBatches(plan, count_rows=True)
    media = fitted | "Representations" >> beam.Map(lambda f: f[2])
    scored = read.batches | "Score" >> beam.ParDo(
        ScoreFn(plan, config), beam.pvalue.AsSingleton(states), beam.pvalue.AsSingleton(fill),
        beam.pvalue.AsSingleton(media),
    ).with_outputs("quarantine", "stats", main="clean")
    parts["clean_files"] = scored.clean | "WriteClean" >> WriteToParquetBatched(
        layout.shard_base(out, layout.CLEAN_DIR),
        schema=plan.output_schema,
        file_name_suffix=layout.SHARD_SUFFIX,
        shard_name_template=layout.SHARD_TEMPLATE,
        codec=config.compression,
    )
    parts["quarantine_files"] = scored.quarantine | "WriteQuarantine" >> WriteToParquetBatched(
        layout.shard_base(out, layout.QUARANTINE_DIR),
        schema=layout.quarantine_schema(plan.output_schema, list(REGISTRY)),
        file_name_suffix=layout.SHARD_SUFFIX,
        shard_name_template=layout.SHARD_TEMPLATE,
        codec=config.compression,
    )
    parts["stats"] = scored.stats | "CombineStats" >> beam.CombineGlobally(Counts.total)
    if baseline is not None:
        vectors = fitted | "MediaVectors" >> beam.Map(lambda f: f[3])
        parts["drift"] = add_drift(sample_tables, read.batches, plan, baseline.plan, config, vectors)
    if plan.id_column:
        parts["duplicates"] = (
            read.batches
            | "BucketIds" >> beam.FlatMap(id_buckets, plan.id_column)
            | "GroupIdBuckets" >> beam.GroupByKey()
            | "FindDuplicateIds" >> beam.FlatMap(find_duplicate_ids)
            | "CombineDuplicateIds" >> beam.CombineGlobally(merge_duplicates)
        )
    parts["file_rows"] = read.file_rows | "CombineFileRows" >> beam.CombineGlobally(_merge_file_rows)
    return parts


def _union(*lists: list[str]) -> list[str]:
    return list(dict.fromkeys(c for names in lists for c in names))


def _merge_file_rows(parts) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        if isinstance(part, tuple):
            part = {str(part[0]): part[1]}
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total
