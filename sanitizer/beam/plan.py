"""Planning: turn a config into everything a worker needs, checked before any pipeline runs.

:func:`make_plan` expands the input, reads the first shard's schema, resolves
the label, id and feature columns, and splits the work. Every problem a user can
fix (no files, a missing label column, an unknown or non-numeric feature column,
a corrupt Parquet footer) is raised here as a :class:`SanitizerError`, so a bad
run fails before it starts and publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa

from sanitizer.beam.plan_columns import CARRIED, list_width, value_type_of, column_kinds, resolve_features
from sanitizer.data.column_kinds import ColumnKind
from sanitizer.data.column_roles import (
    IgnoredColumn,
    check_role_text,
    check_role_type,
    unique_over,
)
from sanitizer.representations.categorical import CategoricalCodes
from sanitizer.representations.media_columns import IMAGE_SIZE, TEXT_CHARS, ImageValues, TextValues
from sanitizer.representations.dates import DateDays
from sanitizer.runs.decisions import load_decisions
from sanitizer.settings.config import Config
from sanitizer.detectors import REGISTRY
from sanitizer.errors import ConfigError, InputError
from sanitizer.data.batch import ID_COLUMN, INTERNAL_PREFIX, FeatureColumn
from sanitizer.io.input_rules import Skipped
from sanitizer.io.sources import iter_file_batches
from sanitizer.io.discover import InputFile, survey
from sanitizer.io.readers import reader_for
from sanitizer.io.readers.base import Split, check_unique_columns
from sanitizer.io.input_schema import (
    check_features_have_values,
    conformed_schema,
    inexact_integers,
    unified_schema,
)
from sanitizer.validation.suite import load_suite



@dataclass(frozen=True)
class Plan:
    files: tuple[InputFile, ...]
    splits: tuple[Split, ...]
    file_rows: dict[int, int] | None  # known up front for Parquet
    schema: pa.Schema  # the input columns as every batch is conformed to (see input_schema.conformed_schema)
    label_column: str
    id_column: str | None  # the user's id column, if any
    features: tuple[FeatureColumn, ...]
    batch_rows: int
    warnings: tuple[str, ...] = ()
    embedding: FeatureColumn | None = None  # a precomputed embedding column, when configured
    suite: Any = None  # sanitizer.validation.suite.Suite, when --expectations is given
    decisions: Any = None  # sanitizer.review.ReviewDecisions, when --decisions is given (last decision per id)
    ignored: tuple[IgnoredColumn, ...] = ()  # every input column no detector reads (text, id-like, unsupported ...)
    carried: tuple[IgnoredColumn, ...] = ()  # categorical, text-boolean and date columns: judged from codes and days
    id_inferred: bool = False  # id_column is an id-like input column the run chose (no --id-column given)
    missing_features: str = "report"  # what a missing scalar feature value does (records.MISSING_ACTIONS)
    skipped_inputs: tuple[Skipped, ...] = ()  # files under the input that are not read, each with the reason
    kinds: tuple[ColumnKind, ...] = ()  # every input column's kind, in input order (sanitizer.data.column_kinds)
    media_base: str | None = None  # the folder relative image paths are read from (the first input file's)
    image_size: int = IMAGE_SIZE  # the square images are resized to for the representations
    text_chars: int = TEXT_CHARS  # the characters of a text the representations read

    @property
    def id_output(self) -> str:
        """The id column in every output shard."""
        return self.id_column or ID_COLUMN

    @property
    def feature_names(self) -> list[str]:
        return [name for fc in self.features for name in fc.names()]

    @property
    def output_schema(self) -> pa.Schema:
        schema = self.schema
        if self.id_column is None:
            schema = schema.append(pa.field(ID_COLUMN, pa.string(), nullable=False))
        return schema

    @cached_property
    def encoders(self) -> tuple[CategoricalCodes | DateDays, ...]:
        """The representations of the carried columns, in input order: categorical codes (categorical
        columns, booleans stored as text) and days (dates)."""
        carried = {c.name: c.reason for c in self.carried}
        out = []
        for k in self.kinds:
            reason = carried.get(k.name)
            if reason == "date":
                out.append(DateDays(k.name))
            elif reason == "image":
                shape = k.extra.get("shape")
                out.append(ImageValues(k.name, k.extra.get("layout") or "bytes", self.image_size, self.media_base,
                                       tuple(shape) if shape else None))
            elif reason == "prose":
                out.append(TextValues(k.name, self.text_chars))
            elif reason is not None and k.codes is not None:
                out.append(CategoricalCodes.of(k, by_value=True))
        return tuple(out)

    def read_columns(self) -> list[str]:
        """The columns the sampling branch needs (the suite's columns too: a row failing a row check never
        reaches the detectors)."""
        cols = [fc.name for fc in self.features] + [e.name for e in self.encoders] + [self.label_column]
        if self.embedding is not None:
            cols.append(self.embedding.name)
        if self.id_column:
            cols.append(self.id_column)
        if self.suite is not None and self.suite.row_level:
            cols.extend(c for c in self.schema.names if c in self.suite.columns())
        return list(dict.fromkeys(cols))


def make_plan(config: Config) -> Plan:
    config.require_runnable()
    decisions = None
    if config.decisions:
        decisions = load_decisions(config.decisions)  # a broken line stops the run here, naming the line
    found = survey(config.input, config.format, config.ignore)  # every file under the input: read or skipped
    files = found.files
    schema = unified_schema(files)
    if schema is None or not schema.names:
        raise InputError(f"input file {files[0].path!r} has no columns")
    names = schema.names
    check_unique_columns(names, files[0].path)
    reserved = [n for n in names if n == ID_COLUMN or n.startswith(INTERNAL_PREFIX) or n.startswith("sanitizer_")]
    if reserved:
        raise InputError(
            f"input column(s) {reserved} use the reserved prefix 'sanitizer_'; rename them before sanitizing"
        )
    label = config.label_column
    if label not in names:
        raise ConfigError(
            f"label column {label!r} is not in the input; columns are: {', '.join(names)}. "
            "Pass the right name with --label-column"
        )
    if config.id_column and config.id_column not in names:
        raise ConfigError(
            f"id column {config.id_column!r} is not in the input; columns are: {', '.join(names)}. "
            "Pass the right name with --id-column, or leave it out to generate ids"
        )

    reader = reader_for(files[0].format)
    first_batch = None
    # CSV is read as text and typed by the plan (sanitizer.data.value_types); other formats carry types.
    for batch in iter_file_batches(files[0], batch_rows=2048, schema=schema if reader.values_as_text else None):
        first_batch = batch
        break
    for field in first_batch.schema if first_batch is not None else ():  # text the checks below can read
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            role = {label: "label", config.id_column: "id"}.get(field.name, "text")
            check_role_text(role, field.name, first_batch.column(field.name), files[0].path)

    warnings: list[str] = []
    if decisions is not None:  # none at all, or lines without a content hash (never applied)
        warnings.extend(decisions.warnings())
    embedding = _resolve_embedding(config, schema, first_batch)
    skip = {embedding.name} if embedding else set()
    ignored: list[IgnoredColumn] = []
    inexact = inexact_integers(files, schema, first_batch, {label, config.id_column})
    features = [fc for fc in resolve_features(config, schema, first_batch, warnings, files[0].path, ignored,
                                              inexact, frozenset(_embedding_columns(config)))
                if fc.name not in skip]
    if not features and not any(c.reason in CARRIED for c in ignored):
        raise ConfigError("no feature columns left besides the label, id and embedding columns")
    _check_feature_count(features)
    # Every shard readable before any is read whole (the id inference below reads whole columns).
    # Parquet: runs of row groups, every file's rows known from its footer; others: one split per file,
    # every one of which has been parsed (its types) by input_schema.unified_schema.
    splits, file_rows = reader.splits(files, target_rows=max(config.scoring.batch_rows * 4, 262_144))
    if file_rows is not None and sum(file_rows.values()) == 0:
        raise InputError(f"input {config.input!r} has no rows; there is nothing to sanitize")
    id_column, id_inferred = config.id_column, False
    if id_column is None:
        id_column = _infer_id(files, schema, ignored, warnings)
        if id_column is not None:
            id_inferred = True
            ignored = [c for c in ignored if c.name != id_column]
    kinds = column_kinds(config, schema, first_batch, id_column, id_inferred, embedding, features, ignored)
    schema = conformed_schema(schema, features, files[0].format, {label, id_column}, warnings)
    _check_roles(files, schema, label, id_column)
    images = [c.name for c in ignored if c.reason == "image"]
    _check_embedding_model(config, sum(fc.width for fc in features), images)
    _check_image_model(config, images)
    _check_text_model(config, [c.name for c in ignored if c.reason == "prose"])
    suite = None
    if config.validation.expectations:
        suite = load_suite(config.validation.expectations, list(schema.names))

    if all(f.size == 0 for f in files):
        raise InputError(f"input {config.input!r} is empty (all files have 0 bytes)")
    check_features_have_values(files[0], schema, features)

    return Plan(
        files=tuple(files),
        splits=tuple(splits),
        file_rows=file_rows,
        schema=schema,
        label_column=label,
        id_column=id_column,
        features=tuple(features),
        batch_rows=batch_rows_for(config.scoring.batch_rows, first_batch, decoded_row_bytes(
            sum(c.reason == "image" for c in ignored), config.media.image_size)),
        warnings=tuple(warnings),
        embedding=embedding,
        suite=suite,
        decisions=decisions,
        ignored=tuple(c for c in ignored if c.reason not in CARRIED),
        carried=tuple(c for c in ignored if c.reason in CARRIED),
        id_inferred=id_inferred,
        missing_features=config.missing_features,
        skipped_inputs=tuple(found.skipped),
        kinds=kinds,
        media_base=folder_of(files[0].path),
        image_size=config.media.image_size,
        text_chars=config.media.text_chars,
    )


def _check_image_model(config: Config, images: list[str]) -> None:
    """Refuse, before anything runs, an image backbone without an image column to use it on, or one that is
    not pinned, cannot be read or fails on a batch of zeros (sanitizer.representations.image_cnn.load_backbone)."""
    if not config.media.image_model:
        return
    if not images:
        raise ConfigError(f"media.image_model is {config.media.image_model!r}, but the input has no image column; "
                          "leave it out, or declare the image column (--column-kind NAME=image)")
    from sanitizer.representations.image_cnn import load_backbone

    load_backbone(config.media.image_model, config.media.image_model_sha256, config.media.image_size)


def _check_text_model(config: Config, texts: list[str]) -> None:
    """Refuse, before anything runs, a text encoder without a judged text column, or one that is not pinned,
    not ONNX, or fails on two texts (sanitizer.representations.text_model.load_text_model)."""
    if not config.media.text_model:
        return
    if not texts:
        raise ConfigError(f"media.text_model is {config.media.text_model!r}, but the input has no text column to "
                          "judge; leave it out, or declare the text column (--column-kind NAME=text)")
    from sanitizer.representations.text_model import load_text_model

    load_text_model(config.media.text_model, config.media.text_model_sha256)


BATCH_BYTES = 64 * 2**20
"""The most a batch of wide rows (images, long texts, long vectors) should weigh, as read plus as decoded:
rows are read, scored and written batch by batch, a few batches at a time, and a runner's data channel
complains past 512 MiB an element."""
DECODED_BYTES_PER_CHANNEL = 1 + 4
"""What one channel of one pixel of an image column weighs while its batch is scored: a byte decoded
(uint8) and four as the representation reads it (float32)."""


def decoded_row_bytes(image_columns: int, image_size: int) -> int:
    """What the decoded images of one row weigh while its batch is scored (``image_columns`` columns, each
    resized to ``image_size`` square, RGB): nothing for a table without images."""
    return int(image_columns) * int(image_size) ** 2 * 3 * DECODED_BYTES_PER_CHANNEL


def batch_rows_for(configured: int, first_batch: pa.Table | None, decoded: int = 0) -> int:
    """``scoring.batch_rows``, or fewer when the first rows say a batch of that many would weigh more than
    :data:`BATCH_BYTES`, counting each row as read plus ``decoded`` bytes (:func:`decoded_row_bytes`):
    100,000 64x64 PNG images come in batches of a few thousand, not 65,536, and the pixels a batch decodes
    weigh as much as its files, so a run holds a few such batches whatever its size."""
    if first_batch is None or first_batch.num_rows == 0:
        return configured
    per_row = max(first_batch.nbytes / first_batch.num_rows + decoded, 1.0)
    return int(min(configured, max(64, BATCH_BYTES // per_row)))


def folder_of(path: str) -> str:
    """The folder holding ``path`` (a local path or a Beam filesystem URI)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.split(path)[0]


MAX_FEATURE_VALUES = 1024
"""Most feature values (scalar columns, plus every element of a list column) one run judges. The fitted
state grows with every feature (the outlier detector keeps per-feature reference quantiles for every
cross-fitting fold and class: about 1 MB per feature with three classes) and reaches every worker as
one side input, so a wider table is refused before anything runs (sanitizer.beam.fit also bounds
the measured state)."""


def _check_feature_count(features) -> None:
    """Refuse more than MAX_FEATURE_VALUES feature values, naming the limit and how to choose columns."""
    width = sum(fc.width for fc in features)
    if width > MAX_FEATURE_VALUES:
        lists = [fc for fc in features if fc.is_list]
        counted = f"{len(features):,} feature columns" + (
            f", list columns counted element by element ({', '.join(f'{fc.name!r}: {fc.width}' for fc in lists[:3])})"
            if lists else "")
        raise ConfigError(
            f"the run would judge {width:,} feature values ({counted}); a run judges at most "
            f"{MAX_FEATURE_VALUES:,}, because the detectors' fitted state grows with every feature and is sent to "
            "every worker. Choose the columns to judge with --feature-columns (comma-separated) or feature_columns "
            "in the config"
        )


def _check_roles(files, schema: pa.Schema, label: str, id_column: str | None) -> None:
    """Refuse, before anything runs, a label or id column that cannot name a class or a record: nested
    values or raw bytes (by type), or text that is not UTF-8 (a Parquet input's whole column is read;
    readers that decode text - CSV, JSON Lines, TFRecord - refuse such bytes themselves:
    ``Reader.decodes_text``)."""
    roles = [("label", label)] + ([("id", id_column)] if id_column else [])
    for role, name in roles:
        check_role_type(role, name, schema.field(name).type)
    text = [(role, name) for role, name in roles
            if pa.types.is_string(value_type_of(schema.field(name).type))
            or pa.types.is_large_string(value_type_of(schema.field(name).type))]
    if not text or reader_for(files[0].format).decodes_text:
        return
    fields = pa.schema([schema.field(name) for _, name in text])
    for f in files:
        for table in iter_file_batches(f, 1 << 20, fields, None, fields.names):
            for role, name in text:
                check_role_text(role, name, table.column(name), f.path)


ID_CHECK_TEXT_BYTES = 256 * 2**20
"""A CSV / JSON Lines input larger than this is not read twice to prove an id-like column unique: the
run keeps generated ids and says so."""


def _infer_id(files, schema: pa.Schema, ignored: list[IgnoredColumn], warnings: list[str]) -> str | None:
    """The first id-like column that holds a distinct value in every row of the whole input, or None.

    Uniqueness is proven before the run starts (a repeated id fails a run only at its end): Parquet
    inputs read just that column; text inputs are read when they are small enough.
    """
    candidates = [c for c in ignored if c.reason == "id-like"]
    for c in candidates:
        if not reader_for(files[0].format).columnar and sum(f.size for f in files) > ID_CHECK_TEXT_BYTES:
            warnings.append(f"column {c.name!r} looks like a record id ({c.detail}); it is not used as a feature. "
                            "The input is too large to prove it unique before the run, so ids are generated: "
                            f"pass --id-column {c.name} to use it")
            return None
        field = schema.field(c.name)
        parts = [t.column(0) for f in files
                 for t in iter_file_batches(f, 1 << 20, pa.schema([field]), None, [c.name])]
        values = pa.chunked_array([p for part in parts for p in part.chunks], type=field.type)
        if unique_over(values):
            warnings.append(f"column {c.name!r} looks like a record id ({c.detail}) and is unique: it is used as "
                            "the record id and not as a feature (pass --id-column to choose another)")
            return c.name
        warnings.append(f"column {c.name!r} looks like a record id or counter ({c.detail}); it is not used as a "
                        "feature (name it in --feature-columns to judge it anyway)")
    return None


def _enabled_needs(config: Config) -> list[tuple[str, Any, frozenset[str]]]:
    """(name, params, inputs) of every enabled detector, the inputs as the detector declares them for
    its settings (``Detector.needs_for``)."""
    out = []
    for name in config.enabled_detectors():
        detector = REGISTRY[name]()
        params = config.detectors[name]
        out.append((name, params, detector.needs_for(params)))
    return out


def _embedding_columns(config: Config) -> dict[str, str]:
    """Embedding column -> the detector that reads it, for every enabled detector that needs one
    (the contract: it names the column in ``params.embedding_column``)."""
    columns: dict[str, str] = {}
    for name, params, needs in _enabled_needs(config):
        if "embedding" in needs:
            column = getattr(params, "embedding_column", None)
            if not isinstance(column, str) or not column:
                raise TypeError(f"detector {name!r} needs an embedding but its params name no embedding_column")
            columns.setdefault(column, name)
    if len(columns) > 1:
        named = ", ".join(f"detectors.{d}.embedding_column = {c!r}" for c, d in columns.items())
        raise ConfigError(f"the detectors name different embedding columns ({named}); a run reads one")
    return columns


def _resolve_embedding(config: Config, schema: pa.Schema, first_batch) -> FeatureColumn | None:
    columns = _embedding_columns(config)
    if not columns:
        return None
    (name, detector), = columns.items()
    if name not in schema.names:
        raise ConfigError(
            f"embedding column {name!r} (detectors.{detector}.embedding_column) is not in the input; "
            f"columns are: {', '.join(schema.names)}"
        )
    width = list_width(schema.field(name).type, name, first_batch)
    if not width:
        raise ConfigError(
            f"embedding column {name!r} must be a fixed-size list of numbers, got {schema.field(name).type}"
        )
    return FeatureColumn(name, width, is_list=True)


def _check_embedding_model(config: Config, n_features: int, images: list[str]) -> None:
    """Run every enabled detector's planning-time check (``Detector.preflight``: e.g. load and try a
    TorchScript backbone on the numbers or the images it will embed), so a missing or broken file fails
    before anything runs."""
    import inspect

    for name in config.enabled_detectors():
        detector = REGISTRY[name]()
        if "image_columns" in inspect.signature(detector.preflight).parameters:  # a model that may take images
            detector.preflight(config.detectors[name], n_features, images, config.media.image_size)
        else:
            detector.preflight(config.detectors[name], n_features)

