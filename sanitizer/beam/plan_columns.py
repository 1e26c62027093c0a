"""Planning the columns: which input columns are features, which are not judged and why, and every
column's kind (sanitizer.data.column_kinds), from the schema, the first rows and what the config declares.

Used by :mod:`sanitizer.beam.plan`; every problem a user can fix is raised as a ConfigError or InputError.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import FeatureColumn
from sanitizer.data.column_kinds import (
    TEXT_WORDS,
    ColumnKind,
    codebook,
    date_range,
    infer_text,
    is_text,
    kind_of_type,
    prose_words,
    vocabulary,
)
from sanitizer.data.column_roles import IgnoredColumn, id_like, unsupported
from sanitizer.errors import ConfigError, InputError
from sanitizer.io.input_schema import inexact_detail, no_values, numeric_share
from sanitizer.settings.config import Config

# A string column counts as numeric-looking when at least this share of its values parse as numbers.
NUMERIC_LOOKING = 0.9


def value_type_of(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def list_width(schema_type: pa.DataType, name: str, first_batch: pa.Table | None) -> int | None:
    if pa.types.is_fixed_size_list(schema_type):
        return schema_type.list_size if is_numeric(schema_type.value_type) else None
    if (pa.types.is_list(schema_type) or pa.types.is_large_list(schema_type)) and is_numeric(schema_type.value_type):
        if first_batch is None or first_batch.num_rows == 0:
            return None
        lengths = pc.list_value_length(first_batch.column(name)).drop_null().to_numpy(zero_copy_only=False)
        if len(lengths) and np.all(lengths == lengths[0]) and lengths[0] > 0:
            return int(lengths[0])
    return None


def resolve_features(config: Config, schema: pa.Schema, first_batch, warnings: list[str],
                     path: str = "", ignored: list[IgnoredColumn] | None = None,
                     inexact: dict[str, str] | None = None,
                     embedding_columns: frozenset[str] = frozenset()) -> list[FeatureColumn]:
    """The feature columns; every other column except the label, id and embedding goes to ``ignored``
    with its reason. A column holding integers beyond +-2^53 (``inexact``: column -> example) is
    never a feature: named in --feature-columns it is refused, otherwise ignored as ``inexact-integer``."""
    inexact = inexact or {}
    skip = {config.label_column, config.id_column}
    skip.update(embedding_columns)
    features: list[FeatureColumn] = []
    ignored = [] if ignored is None else ignored
    declared = config.columns
    unknown = [n for n in declared if n not in schema.names]
    if unknown:
        raise ConfigError(
            f"columns names {unknown[0]!r} (declared {declared[unknown[0]]}), which is not in the input; columns "
            f"are: {', '.join(schema.names)}. Fix 'columns' in the config or --column-kind"
        )
    if config.feature_columns:
        ignored.extend(IgnoredColumn(n, "not-selected", "not named in --feature-columns")
                       for n in schema.names if n not in skip and n not in config.feature_columns)
        for name in config.feature_columns:
            if name not in schema.names:
                raise ConfigError(
                    f"feature column {name!r} is not in the input; columns are: {', '.join(schema.names)}. "
                    "Fix --feature-columns (comma-separated) or leave it out to use every numeric column"
                )
            t = schema.field(name).type
            if pa.types.is_null(t):
                raise InputError(no_values(name, path))
            kind = declared.get(name)
            if kind == "id-like":
                raise ConfigError(
                    f"feature column {name!r} is declared id-like; the detectors do not judge id-like columns: "
                    "leave it out of --feature-columns, or declare it categorical or text"
                )
            if kind is None and first_batch is not None:
                media = _media(name, t, first_batch.column(name).combine_chunks())
                if media is not None:
                    ignored.append(media)
                    continue
            if kind in ("categorical", "date", "text", "image") or (kind == "boolean" and is_text(t)):
                ignored.append(_declared(schema.field(name), kind, first_batch.column(name).combine_chunks()
                                         if first_batch is not None else None, first_batch, warnings, inexact))
                continue
            if name in inexact:
                raise ConfigError(
                    f"feature column {name!r} holds {inexact_detail(inexact[name])}; leave it out of "
                    "--feature-columns (it is published unchanged)"
                )
            if is_numeric(t):
                features.append(FeatureColumn(name, 1))
                continue
            width = list_width(t, name, first_batch)
            if width:
                features.append(FeatureColumn(name, width, is_list=True))
                continue
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                column = first_batch.column(name) if first_batch is not None else None
                share = numeric_share(column)
                if share >= 0.5:
                    features.append(FeatureColumn(name, 1, coerce=True))
                    warnings.append(
                        f"feature column {name!r} is stored as text; values that do not parse as numbers "
                        "are quarantined as invalid:non_numeric (the outputs keep its text; NA and the like "
                        "read as missing)"
                    )
                    continue
                chosen = _not_judged(name, t, column, config.categorical_max_levels)
                if chosen.reason in CARRIED:
                    ignored.append(chosen)
                    continue
                sample = [v for v in (column.to_pylist() if column is not None else []) if v is not None][:3]
                what = "short free text" if chosen.reason == "text" else chosen.reason
                raise ConfigError(
                    f"feature column {name!r} is {what} (type {t}, values like {sample}): "
                    f"{chosen.detail}; the detectors judge numeric, boolean, categorical, date, image and text "
                    f"columns. Declare it categorical (--column-kind {name}=categorical) or text "
                    f"(--column-kind {name}=text), or leave it out of --feature-columns"
                )
            if pa.types.is_dictionary(t) or pa.types.is_temporal(t):  # categories or dates
                ignored.append(_not_judged(name, t, None, config.categorical_max_levels))
                continue
            raise ConfigError(
                f"feature column {name!r} has type {t}; the detectors judge numbers, fixed-size lists of numbers, "
                "categories (text, dictionary-encoded) and dates"
            )
        return features

    for f in schema:
        if f.name in skip:
            continue
        column = first_batch.column(f.name).combine_chunks() if first_batch is not None else None
        if f.name in declared:
            chosen = _declared(f, declared[f.name], column, first_batch, warnings, inexact)
            (features if isinstance(chosen, FeatureColumn) else ignored).append(chosen)
            continue
        media = _media(f.name, f.type, column)
        if media is not None:
            ignored.append(media)
            continue
        numeric_text = (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and column is not None \
            and numeric_share(column) >= NUMERIC_LOOKING
        why = id_like(f.name, f.type, column, numeric_text)
        if why:
            ignored.append(IgnoredColumn(f.name, "id-like", why))
            continue
        if f.name in inexact:
            ignored.append(IgnoredColumn(f.name, "inexact-integer", inexact_detail(inexact[f.name])))
            continue
        if is_numeric(f.type):
            features.append(FeatureColumn(f.name, 1))
            continue
        width = list_width(f.type, f.name, first_batch)
        if width:
            features.append(FeatureColumn(f.name, width, is_list=True))
            continue
        if numeric_text:
            features.append(FeatureColumn(f.name, 1, coerce=True))
            warnings.append(
                f"column {f.name!r} is stored as text but holds numbers; it is used as a feature and "
                "values that do not parse are quarantined as invalid:non_numeric (the outputs keep its text; "
                "NA and the like read as missing)"
            )
            continue
        ignored.append(_not_judged(f.name, f.type, column, config.categorical_max_levels))
    if not features and not any(c.reason in CARRIED for c in ignored):
        listed = "; ".join(f"{c.name} ({c.reason})" for c in ignored) or "none"
        raise ConfigError(
            "no numeric, boolean, categorical, date, image or text columns found besides the label and id; name "
            "the columns to judge with --feature-columns or declare their kinds with --column-kind "
            f"(columns are: {', '.join(schema.names)}; left out: {listed})"
        )
    return features


def _media(name: str, t: pa.DataType, column) -> IgnoredColumn | None:
    """An image column (by its type and first values) or a text column of prose, judged through a
    representation; None for any other column."""
    if column is None:
        return None
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_struct(t) or is_text(t):
        from sanitizer.representations.images import image_layout

        layout = image_layout(column)
        if layout in ("bytes", "struct"):
            problem = _none_readable(column, layout)
            if problem:
                return IgnoredColumn(name, "unsupported-type", f"bytes that start like image files, but none of "
                                                               f"the first values can be read ({problem})")
        if layout is not None:
            return IgnoredColumn(name, "image", f"{LAYOUTS.get(layout, layout)}; {JUDGED_AS['image']}")
    if is_text(t):
        words = prose_words(column)
        present = 1.0 - column.null_count / len(column) if len(column) else 0.0
        if words >= TEXT_WORDS and present >= PROSE_PRESENT:
            return IgnoredColumn(name, "prose", f"values average {words:.1f} words (prose); {JUDGED_AS['prose']}")
        if words >= TEXT_WORDS:
            return IgnoredColumn(name, "text", f"prose ({words:.1f} words on average) in {present:.0%} of the "
                                                     "first rows (a note on some rows); not judged (declare it "
                                                     f"text, --column-kind {name}=text, to judge it)")
    return None


PROSE_PRESENT = 0.5
"""A prose column is judged as text when at least this share of the first rows hold a value: a note most rows
lack would make every row that has one look unusual."""


def _none_readable(column, layout: str, probe: int = 20) -> str | None:
    """The first problem when none of a column's first ``probe`` non-null images can be decoded, else None."""
    from sanitizer.representations.images import decode_images

    values = column.drop_null()[:probe]
    if len(values) == 0:
        return None
    _, problems = decode_images(values, layout, 16)
    return next(iter(problems.values())) if len(problems) == len(values) else None


LAYOUTS = {"bytes": "image files stored as bytes", "struct": "images as {bytes, path} (the Hugging Face layout)",
           "path": "paths of image files", "pixels": "pixel values with a declared shape"}


def _not_judged(name: str, t: pa.DataType, column, max_levels: int) -> IgnoredColumn:
    """The entry of a column that is not a numeric feature, its reason being its kind (categorical, boolean
    stored as text and date: CARRIED, judged from their codes and days; text: not judged) or why it has
    none (empty, unsupported-type)."""
    kind = kind_of_type(t)
    if is_text(t):
        kind, why = infer_text(column, max_levels)
        if kind == "text":
            return IgnoredColumn(name, "text", f"text: {why}; not judged (declare it text, "
                                               f"--column-kind {name}=text, to judge it as text)")
        return IgnoredColumn(name, kind, f"{why}; {JUDGED_AS[kind]}")
    if kind == "categorical":
        return IgnoredColumn(name, "categorical", f"dictionary-encoded ({t}); {JUDGED_AS['categorical']}")
    if kind == "date":
        return IgnoredColumn(name, "date", f"dates and times ({t}); {JUDGED_AS['date']}")
    return unsupported(name, t)


def _declared(f: pa.Field, kind: str, column, first_batch, warnings: list[str],
              inexact: dict[str, str]) -> FeatureColumn | IgnoredColumn:
    """A declared column's place: a feature (numeric, boolean stored as 0/1 or true/false, embedding) or
    an ignored entry with its kind; a kind its type cannot hold is refused."""
    name, t = f.name, f.type
    value_type = value_type_of(t)
    integer, text = pa.types.is_integer(t), is_text(t)
    if kind in ("numeric", "boolean", "embedding") and name in inexact:
        raise ConfigError(f"column {name!r} is declared {kind} but holds {inexact_detail(inexact[name])}")
    if kind == "numeric":
        if is_numeric(t):
            return FeatureColumn(name, 1)
        width = list_width(t, name, first_batch)
        if width:
            return FeatureColumn(name, width, is_list=True)
        if text and column is not None and numeric_share(column) >= 0.5:
            warnings.append(f"column {name!r} is declared numeric and stored as text; values that do not parse as "
                            "numbers are quarantined as invalid:non_numeric (the outputs keep its text)")
            return FeatureColumn(name, 1, coerce=True)
    elif kind == "embedding":
        width = list_width(t, name, first_batch)
        if width:
            return FeatureColumn(name, width, is_list=True)
    elif kind == "boolean":
        if pa.types.is_boolean(t):
            return FeatureColumn(name, 1)
        if integer:
            seen = set(pc.unique(column.drop_null()).to_pylist()) if column is not None else set()
            if seen <= {0, 1}:
                return FeatureColumn(name, 1)
            raise ConfigError(f"column {name!r} is declared boolean but holds {sorted(seen)[:5]} in its first rows; "
                              "a boolean stored as integers holds only 0 and 1")
        if text or pa.types.is_dictionary(t):
            return IgnoredColumn(name, "boolean", f"declared boolean, stored as text; {JUDGED_AS['boolean']}")
    elif kind == "categorical":
        if integer or text or pa.types.is_boolean(t) or pa.types.is_dictionary(t):
            return IgnoredColumn(name, "categorical", f"declared categorical; {JUDGED_AS['categorical']}")
    elif kind == "date":
        if pa.types.is_temporal(t) or text:
            return IgnoredColumn(name, "date", f"declared date; {JUDGED_AS['date']}")
    elif kind == "text":
        if not pa.types.is_nested(value_type):
            return IgnoredColumn(name, "prose", f"declared text; {JUDGED_AS['prose']}")
    elif kind == "image":
        from sanitizer.representations.images import image_layout

        layout = image_layout(column, declared=True) if column is not None else None
        if layout is not None:
            return IgnoredColumn(name, "image", f"declared image, {LAYOUTS.get(layout, layout)}; {JUDGED_AS['image']}")
    elif kind == "id-like":
        return IgnoredColumn(name, "id-like", "declared id-like")
    raise ConfigError(f"column {name!r} is declared {kind}, but its type is {t}: "
                      + {"numeric": "not numbers, a fixed-size list of numbers, or text that holds numbers",
                         "embedding": "not a fixed-size list of numbers",
                         "boolean": "not booleans, 0/1 integers or text",
                         "categorical": "categories are text, integers, booleans or dictionary-encoded values "
                                        "(store codes as integers or text, or declare it numeric)",
                         "date": "not dates, timestamps or text",
                         "text": "nested values are not text",
                         "image": "not image bytes, {bytes, path} structs, image file paths or lists of pixel "
                                  "values"}.get(kind, "not allowed")
                      + ". Fix 'columns' in the config or --column-kind")


CARRIED = ("categorical", "boolean", "date", "prose", "image")
"""The kinds judged from the representation the batch carries (codes, days, texts, decoded images) rather
than as numeric features (a boolean listed so is stored as text: an Arrow boolean is a numeric feature)."""
JUDGED_AS = {"categorical": "judged as categories (codes by its vocabulary)",
             "boolean": "judged as a category of two levels",
             "date": "judged as days since 1970-01-01",
             "prose": "judged through its text representation",
             "image": "judged through its image representation"}


_REASON_KIND = {"id-like": "id-like", "categorical": "categorical", "boolean": "boolean", "date": "date",
                "text": "text", "prose": "text", "image": "image", "inexact-integer": "numeric",
                "empty": "empty", "unsupported-type": "unsupported"}


def _inferred_kind(f: pa.Field, column, first_batch, max_levels: int) -> str:
    """The kind a column not chosen by --feature-columns would have been inferred as."""
    if id_like(f.name, f.type, column, is_text(f.type) and column is not None
               and numeric_share(column) >= NUMERIC_LOOKING):
        return "id-like"
    base = kind_of_type(f.type)
    if base:
        return base
    if list_width(f.type, f.name, first_batch):
        return "numeric"
    if is_text(f.type):
        if column is not None and numeric_share(column) >= NUMERIC_LOOKING:
            return "numeric"
        return infer_text(column, max_levels)[0]
    return "empty" if pa.types.is_null(f.type) else "unsupported"


def column_kinds(config: Config, schema: pa.Schema, first_batch, id_column: str | None, id_inferred: bool,
                  embedding: FeatureColumn | None, features: list[FeatureColumn],
                  ignored: list[IgnoredColumn]) -> tuple[ColumnKind, ...]:
    """Every input column's kind, in input order, with a bounded vocabulary (categorical, boolean) and the
    observed range (date) from the first rows."""
    declared, max_levels = config.columns, config.categorical_max_levels
    by_feature = {fc.name: fc for fc in features}
    by_ignored = {c.name: c for c in ignored}
    if embedding is not None and declared.get(embedding.name, "embedding") != "embedding":
        raise ConfigError(f"column {embedding.name!r} is the detectors' embedding column; it cannot be declared "
                          f"{declared[embedding.name]}")
    out = []
    position = {} if first_batch is None else {name: i for i, name in enumerate(first_batch.column_names)}
    for f in schema:
        column = first_batch.column(position[f.name]).combine_chunks() if f.name in position else None
        judged, detail = False, ""
        if f.name == config.label_column:
            kind, detail = "label", "the label (--label-column)"
        elif f.name == id_column:
            kind = "id-like"
            detail = "the record id" + (" (inferred: id-like and unique)" if id_inferred else " (--id-column)")
        elif embedding is not None and f.name == embedding.name:
            kind, judged, detail = "embedding", True, f"a list of {embedding.width} numbers the detectors read"
        elif f.name in by_feature:
            fc = by_feature[f.name]
            kind = declared.get(f.name) or ("boolean" if pa.types.is_boolean(f.type) else "numeric")
            judged = True
            detail = (f"a list of {fc.width} numbers" if fc.is_list else "stored as text, parsed as numbers"
                      if fc.coerce else "judged as 0/1" if kind == "boolean" else "")
        else:
            c = by_ignored.get(f.name)
            reason = c.reason if c is not None else "not-selected"
            kind = declared.get(f.name) or _REASON_KIND.get(reason) \
                or _inferred_kind(f, column, first_batch, max_levels)
            detail = c.detail if c is not None else ""
            judged = reason in CARRIED
        vocab = vocabulary(column, max_levels) if kind in ("categorical", "boolean") else None
        codes = codebook(column, max_levels) if vocab is not None else None
        span = date_range(column) if kind == "date" else None
        extra = {}
        if kind == "image" and judged and column is not None:
            from sanitizer.representations.images import image_layout

            extra["layout"] = image_layout(column, declared=f.name in declared)
            if f.name in config.media.image_shapes:
                extra["shape"] = list(config.media.image_shapes[f.name])
        out.append(ColumnKind(f.name, kind, judged, f.name in declared, detail, vocab, span, extra, codes=codes))
    return tuple(out)
