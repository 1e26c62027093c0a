"""Column kinds as the manifest records them, and the encodings the torch stream applies.

A manifest's ``columns`` lists every input column's kind; a categorical (or boolean) column carries its
whole vocabulary and a date column its range. :class:`Vocabulary` maps values to integer codes exactly as
recorded (training and serving read the same manifest, so they agree): a value seen in the run's first
rows has its code (values beyond the vocabulary bound share the ``other`` code), a value the run never
saw gets ``unseen_code`` and a null ``missing_code``. Dates become floats: ``"days"`` since
1970-01-01 UTC (the time of day as the fraction), or ``"parts"``: year, month and day.

Imports neither Apache Beam nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.representations.categorical import CategoricalCodes
from sanitizer.training.shards import ManifestError

DATE_FORMS = ("days", "parts")
"""How the torch stream gives a date column: one float (days since the epoch) or three (year, month, day)."""
CODED_KINDS = ("categorical", "boolean")
"""Kinds whose manifest entry carries a vocabulary."""


@dataclass(frozen=True)
class Vocabulary:
    """One categorical column's codes, as the manifest records them.

    ``codes``: every value the run's clean rows hold, as text, -> its code. Values of their own have
    codes ``0 .. size-1`` (most frequent first); values beyond the vocabulary bound share ``other_code``
    (None when none were folded); a value not in ``codes`` gets ``unseen_code`` and a null ``missing_code``.
    ``cardinality`` is the number of codes there are (the size of an embedding table).
    """

    column: str
    codes: dict[str, int]
    size: int
    unseen_code: int
    missing_code: int
    other_code: int | None = None

    @classmethod
    def from_manifest(cls, column: str, entry: dict[str, Any]) -> "Vocabulary":
        other = entry.get("other")
        return cls(column, dict(entry["codes"]), int(entry["size"]), int(entry["unseen_code"]),
                   int(entry["missing_code"]), int(other["code"]) if isinstance(other, dict) else None)

    @property
    def cardinality(self) -> int:
        return max([self.size, self.unseen_code + 1, self.missing_code + 1]
                   + ([self.other_code + 1] if self.other_code is not None else []))

    @property
    def values(self) -> list[str]:
        """The values of codes ``0 .. size-1``, in code order."""
        out: list[str | None] = [None] * self.size
        for value, code in self.codes.items():
            if code < self.size:
                out[code] = value
        return [v for v in out if v is not None]

    def encode(self, values: Iterable[Any] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """int64 codes of ``values`` (an Arrow array, a pandas Series or any iterable)."""
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pa.array([None if _is_null(v) else str(v) for v in values], pa.string())
        return encode(values, self)

    def decode(self, codes: Iterable[int]) -> list[str | None]:
        """The value of each code; None for the ``other``, ``unseen`` and ``missing`` codes (no value of their own)."""
        values = self.values
        return [values[int(c)] if 0 <= int(c) < len(values) else None for c in codes]


def _is_null(value: Any) -> bool:
    """None, NaN, pandas' NA and NaT."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:  # pandas.NA: its comparisons are NA
        return True


def kinds_of(manifest: dict) -> dict[str, str]:
    """Column -> kind from a manifest's ``columns`` ({} for a manifest written before kinds existed)."""
    return {c["name"]: c["kind"] for c in manifest.get("columns") or []}


def vocabularies_of(manifest: dict) -> dict[str, Vocabulary]:
    """Column -> :class:`Vocabulary` for every column the manifest records one for."""
    return {c["name"]: Vocabulary.from_manifest(c["name"], c["vocabulary"])
            for c in manifest.get("columns") or [] if isinstance(c.get("vocabulary"), dict)}


def categorical_columns_of(manifest: dict, features: Sequence[str] = ()) -> list[str]:
    """The columns the torch stream can give as codes, in input order: categorical columns, and boolean
    columns that are not numeric features (booleans stored as text: two levels)."""
    return [c["name"] for c in manifest.get("columns") or []
            if isinstance(c.get("vocabulary"), dict)
            and (c["kind"] == "categorical" or (c["kind"] == "boolean" and c["name"] not in features))]


def date_columns_of(manifest: dict) -> list[str]:
    return [c["name"] for c in manifest.get("columns") or [] if c["kind"] == "date"]


# --------------------------------------------------------------------------- choosing columns


def check_feature_kinds(features: list[str], kinds: dict[str, str]) -> None:
    """A categorical or date column named as a float feature: say where it belongs."""
    for c in features:
        if kinds.get(c) == "categorical":
            raise ValueError(f"column {c!r} is categorical: ask for its codes with categorical_columns=[{c!r}] "
                             "(or 'all'), not features=")
        if kinds.get(c) == "date":
            raise ValueError(f"column {c!r} is a date: ask for it with dates='days' or 'parts' "
                             f"(date_columns=[{c!r}]), not features=")
        if kinds.get(c) in ("image", "text"):
            raise ValueError(f"column {c!r} is {kinds[c]}: ask for it with {kinds[c]}_columns=[{c!r}], not features=")


def _no_kinds(asked: str) -> ValueError:
    return ValueError(f"{asked}, but the manifest records no column kinds (written by a sanitizer before "
                      "column kinds existed): run the sanitizer again to publish them")


def choose_categorical(manifest: dict, features: Sequence[str], asked) -> list[str] | None:
    """The torch stream's ``categorical_columns``: None (not asked for), every categorical column ("all" /
    True), or the columns named, each with a vocabulary in the manifest."""
    if asked is None or asked is False:
        return None
    kinds = kinds_of(manifest)
    available = categorical_columns_of(manifest, features)
    if not kinds:
        raise _no_kinds("categorical_columns is given")
    if asked is True or asked == "all":
        return available
    names = [asked] if isinstance(asked, str) else list(asked)
    for c in names:
        if c not in available:
            raise ValueError(f"categorical_columns names {c!r}, which the manifest records as "
                             f"{kinds.get(c, 'no column')!r}; its categorical columns are {available}")
    return names


def choose_dates(manifest: dict, dates, asked) -> tuple[str, list[str]]:
    """The torch stream's (date form, date columns): none unless ``dates`` or ``date_columns`` is given."""
    if dates is None and not asked:
        return "days", []
    form = dates or "days"
    if form not in DATE_FORMS:
        raise ValueError(f"dates must be one of {', '.join(map(repr, DATE_FORMS))}, got {dates!r}")
    kinds = kinds_of(manifest)
    if not kinds:
        raise _no_kinds("dates is given")
    available = date_columns_of(manifest)
    if asked is None or asked == "all":
        return form, available
    names = [asked] if isinstance(asked, str) else list(asked)
    for c in names:
        if c not in available:
            raise ValueError(f"date_columns names {c!r}, which the manifest records as "
                             f"{kinds.get(c, 'no column')!r}; its date columns are {available}")
    return form, names


# --------------------------------------------------------------------------- encodings


def encode(column: pa.Array | pa.ChunkedArray, vocab: Vocabulary) -> np.ndarray:
    """int64 codes of an Arrow column by ``vocab``: unseen values -> unseen_code, nulls -> missing_code
    (the encoder the run's detectors use, fed the manifest's vocabulary)."""
    encoder = CategoricalCodes(vocab.column, vocab.codes, vocab.unseen_code, vocab.missing_code, vocab.other_code)
    return encoder.encode(column).astype(np.int64)


def _parse_text_dates(arr: pa.Array, name: str) -> pa.Array:
    """ISO dates and times as timestamp[us] (UTC where they carry a zone); ManifestError naming a value that
    is not one."""
    for target in (pa.timestamp("us"), pa.timestamp("us", "UTC")):
        try:
            return pc.cast(arr, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    out = []
    for value in arr.to_pylist():
        if value is None:
            out.append(None)
            continue
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ManifestError(f"date column {name!r} holds {value!r}, which is not an ISO 8601 date") from None
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        out.append(when)
    return pa.array(out, pa.timestamp("us"))


def _timestamps(column: pa.Array | pa.ChunkedArray, name: str) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _parse_text_dates(pc.utf8_trim_whitespace(arr.cast(pa.string())), name)
    if pa.types.is_timestamp(t):
        return arr.cast(pa.timestamp("us", t.tz))
    if pa.types.is_date(t):
        return arr.cast(pa.timestamp("us"))
    raise ManifestError(f"date column {name!r} has type {t}, which holds no dates")


def date_matrix(column: pa.Array | pa.ChunkedArray, name: str, form: str) -> np.ndarray:
    """float64 ``[n, 1]`` (``"days"``: days since 1970-01-01 UTC, time of day as the fraction) or ``[n, 3]``
    (``"parts"``: year, month, day, in the column's own time zone), NaN where a value is null."""
    ts = _timestamps(column, name)
    if form == "days":
        micros = ts.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return (np.asarray(micros, dtype=np.float64) / 86_400e6).reshape(-1, 1)
    parts = [np.asarray(f(ts).to_numpy(zero_copy_only=False), dtype=np.float64)
             for f in (pc.year, pc.month, pc.day)]
    return np.stack(parts, axis=1) if len(ts) else np.zeros((0, 3))
