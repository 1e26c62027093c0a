"""The holdout set (``detectors.duplicates.holdout``, ``--holdout PATH``): an evaluation set the training
records must not copy.

It may be in any supported format (a CSV holdout beside Parquet training data is fine): its content columns
are read as the training data's types, so ``1.5`` in a CSV and ``1.5`` in Parquet are one value. It must
have every content column of the training data (other columns are ignored); its ids are its id column's
when it has the training data's, else generated like the training data's (``file:row``).
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from sanitizer.beam.duplicates import NAME, columns_of
from sanitizer.beam.plan import Plan
from sanitizer.errors import ConfigError, InputError
from sanitizer.io.discover import survey
from sanitizer.io.input_schema import unified_schema
from sanitizer.io.readers import reader_for


def holdout_plan(config, plan: Plan) -> Plan | None:
    """A plan that reads the holdout set's content columns (and id) as the training data's types; None when
    no holdout is configured or the duplicates detector is off."""
    params = config.detectors.get(NAME)
    if params is None or not params.enabled or not params.holdout:
        return None
    found = survey(params.holdout, "auto", config.ignore)
    files = found.files
    if not files:
        raise InputError(f"holdout {params.holdout!r} matched no readable files")
    schema = unified_schema(files)
    names = set(schema.names) if schema is not None else set()
    columns = columns_of(plan)
    missing = [c for c in columns if c not in names]
    if missing:
        raise ConfigError(
            f"holdout {params.holdout!r} lacks the training data's column(s) {missing}: a record is a copy only "
            "when every column but the id and the label matches; give the holdout the same columns")
    id_column = plan.id_column if plan.id_column and plan.id_column in names else None
    fields = [plan.schema.field(c) for c in columns]
    if id_column:
        fields.append(pa.field(id_column, schema.field(id_column).type))
    splits, file_rows = reader_for(files[0].format).splits(files, target_rows=max(plan.batch_rows * 4, 262_144))
    return replace(plan, files=tuple(files), splits=tuple(splits), file_rows=file_rows, schema=pa.schema(fields),
                   id_column=id_column, warnings=(), suite=None, decisions=None,
                   skipped_inputs=tuple(found.skipped))
