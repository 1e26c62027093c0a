"""The output layout of a run, in one Beam-free place: file and folder names, column names, the quarantine schema.

::

    OUT/
      clean/part-SSSSS-of-NNNNN.parquet     original columns (+ record id column)
      quarantine/part-*.parquet             + reasons, reason codes, content hash, one score column per built-in detector
      manifest.json                         written last; what training reads
      provenance.json  report.html  lineage.json  validation/  review/

Everything that reads or writes an output (the pipeline, publication, the
report, review, the training loader) takes these names from here.
"""

from __future__ import annotations

import pyarrow as pa

from sanitizer.data.reasons import REASONS_TYPE

MANIFEST = "manifest.json"
PROVENANCE = "provenance.json"
REPORT = "report.html"
LINEAGE = "lineage.json"
MARKER = ".sanitizer-run.json"  # written when a run claims its output folder, removed once it publishes
LOCK = ".sanitizer.lock"  # held by a run (claim to manifest) or a publish: sanitizer.runs.output_lock
CLEAN_DIR = "clean"
QUARANTINE_DIR = "quarantine"
VALIDATION_DIR = "validation"
REVIEW_DIR = "review"
SHARD_PREFIX = "part"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"  # Beam's shard_name_template: part-00000-of-00004.parquet
SHARD_SUFFIX = ".parquet"

REASONS_COLUMN = "sanitizer_reasons"  # list<struct<detector, code, action, score, threshold, evidence_json>>
CODES_COLUMN = "sanitizer_reason_codes"  # list<string>: the reasons' codes
CONTENT_COLUMN = "sanitizer_content_sha256"  # the row's content hash: binds review decisions to what was seen
SCORE_PREFIX = "sanitizer_score_"


def score_column(detector: str) -> str:
    return SCORE_PREFIX + detector


def shard_base(out: str, folder: str) -> str:
    """The file name prefix Beam's sink writes ``folder``'s shards under (also matched as a glob when finalising)."""
    return f"{out.rstrip('/')}/{folder}/{SHARD_PREFIX}"


def quarantine_schema(output_schema: pa.Schema, detectors: list[str]) -> pa.Schema:
    """The clean output's schema plus the quarantine columns: reasons (see ``sanitizer.data.reasons``), codes,
    content hash and one score column per detector of ``detectors`` (the run passes every built-in detector, enabled
    or not, so the schema is the same from run to run)."""
    schema = output_schema
    schema = schema.append(pa.field(REASONS_COLUMN, REASONS_TYPE))
    schema = schema.append(pa.field(CODES_COLUMN, pa.list_(pa.string())))
    schema = schema.append(pa.field(CONTENT_COLUMN, pa.string()))
    for name in detectors:
        schema = schema.append(pa.field(score_column(name), pa.float64()))
    return schema
