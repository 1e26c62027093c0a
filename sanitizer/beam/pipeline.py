"""The sanitize pipeline graph.

::

    ReadForSample ─► Sample (CombineGlobally) ─► FitDetectors ──────────────┐ side input
    Read ───────────────────────────────────────────────────────────► Score ─┴─► WriteClean
                                                                        ├──────► WriteQuarantine
                                                                        └─stats► CombineStats ─► _work/stats.json

The data is read twice - once (only the columns the detectors need) to draw the
sample, once to score - so no runner has to hold the whole data set while the
detectors are fitted.
"""

from __future__ import annotations

import apache_beam as beam

from sanitizer.beam.transforms import (
    ReadBatches,
    SampleFn,
    ScoreFn,
    find_duplicate_ids,
    fit_detectors,
    id_buckets,
    merge_duplicates,
    fit_summary,
    merge_stats,
    quarantine_schema,
    validate_sample,
    write_json,
)
from sanitizer.config import Config
from sanitizer.fs import check_output_path
from sanitizer.plan import Plan


def work_dir(output: str) -> str:
    return output.rstrip("/") + "/_work"


def build(p: beam.Pipeline, plan: Plan, config: Config, output: str) -> None:
    """Add the sanitize stages to pipeline ``p``, writing under ``output``."""
    from apache_beam.io.parquetio import WriteToParquetBatched

    out = output.rstrip("/")
    check_output_path(out)  # the sinks below use f"{out}/clean/part" as a name and as a glob
    work = work_dir(out)

    sample_tables = p | "ReadForSample" >> ReadBatches(plan, columns=plan.read_columns())
    sample = sample_tables | "Sample" >> beam.CombineGlobally(SampleFn(plan, config))
    states = sample | "FitDetectors" >> beam.Map(fit_detectors, plan, config)
    (
        sample
        | "SummariseFit" >> beam.Map(lambda s, st: fit_summary(st, s), beam.pvalue.AsSingleton(states))
        | "WriteFitSummary" >> beam.Map(write_json, f"{work}/fit.json")
    )

    if plan.suite is not None:
        (
            sample
            | "ValidateSample" >> beam.Map(validate_sample, plan)
            | "WriteSampleValidation" >> beam.Map(write_json, f"{work}/validation_sample.json")
        )

    read = p | "Read" >> ReadBatches(plan, count_rows=True)
    scored = read.batches | "Score" >> beam.ParDo(
        ScoreFn(plan, config), beam.pvalue.AsSingleton(states)
    ).with_outputs("quarantine", "stats", main="clean")

    scored.clean | "WriteClean" >> WriteToParquetBatched(
        f"{out}/clean/part",
        schema=plan.output_schema,
        file_name_suffix=".parquet",
        shard_name_template="-SSSSS-of-NNNNN",
    )
    scored.quarantine | "WriteQuarantine" >> WriteToParquetBatched(
        f"{out}/quarantine/part",
        schema=quarantine_schema(plan, config.enabled_detectors()),
        file_name_suffix=".parquet",
        shard_name_template="-SSSSS-of-NNNNN",
    )
    (
        scored.stats
        | "CombineStats" >> beam.CombineGlobally(merge_stats)
        | "WriteStats" >> beam.Map(write_json, f"{work}/stats.json")
    )
    if plan.id_column:
        (
            read.batches
            | "BucketIds" >> beam.FlatMap(id_buckets, plan.id_column)
            | "GroupIdBuckets" >> beam.GroupByKey()
            | "FindDuplicateIds" >> beam.FlatMap(find_duplicate_ids)
            | "CombineDuplicateIds" >> beam.CombineGlobally(merge_duplicates)
            | "WriteDuplicateIds" >> beam.Map(write_json, f"{work}/duplicate_ids.json")
        )
    (
        read.file_rows
        | "CombineFileRows" >> beam.CombineGlobally(_merge_file_rows)
        | "WriteFileRows" >> beam.Map(write_json, f"{work}/file_rows.json")
    )


def _merge_file_rows(parts) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        if isinstance(part, tuple):
            part = {str(part[0]): part[1]}
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total
