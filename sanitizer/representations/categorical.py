"""Categorical codes: each value of a categorical column (or of a boolean stored as text, a categorical of
two levels) becomes an integer code by the column's bounded vocabulary
(:func:`sanitizer.data.column_kinds.vocabulary` and :func:`~sanitizer.data.column_kinds.codebook`):

* a level of the vocabulary: its code, ``0 .. size - 1`` (the most frequent first);
* a value seen in the first rows but beyond the vocabulary bound: the ``other`` code (``size``);
* a value never seen: the ``unseen`` code;
* a null: the ``missing`` code, the largest of the vocabulary's codes.

That is the training loader's view, where training and serving must agree. The detectors read the
values ``by_value`` instead: every value's code is derived from its text alone (:func:`distinct_code`,
``UNSEEN_BASE`` or above) and a null is ``NULL_CODE``, so two values never share a code whether or not
the vocabulary holds them (a level the first rows missed is counted like any other level of the sample;
a value seen nowhere in the sample stands out), and one value has the same code in every column (a
column holding another column's values can be seen). The detectors treat codes as opaque labels: equal
codes, equal values.

Values are compared as text, ``str`` of each value, as the vocabulary was built: ``"Yes"``, ``"yes"`` and
``"YES"`` are three values, and an integer column declared categorical has the levels ``"1"``, ``"2"``.
Only the distinct values of a batch become Python objects (through a dictionary encoding); the rows are
mapped in numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import CATEGORICAL, string_hash
from sanitizer.data.column_kinds import ColumnKind


UNSEEN_BASE = 1 << 30
"""Codes from here up stand for values by their text (``by_value``), one code per value."""
NULL_CODE = 0
"""A null's code when values are coded ``by_value`` (in every column)."""


def distinct_code(text: str) -> int:
    """A value's code by its text alone (``by_value``): the same in every column."""
    return UNSEEN_BASE + string_hash(text) % UNSEEN_BASE


@dataclass(frozen=True)
class CategoricalCodes:
    """The encoder of one categorical column: ``codes`` maps a value (as text) to its code; any other
    value gets ``unseen_code`` and a null ``missing_code``; ``other_code`` is the code the levels beyond
    the vocabulary bound share (None when every level has its own)."""

    kind: ClassVar[str] = CATEGORICAL
    name: str
    codes: Mapping[str, int] = field(repr=False)
    unseen_code: int
    missing_code: int
    other_code: int | None = None
    by_value: bool = False
    """True (the detectors' view): every value gets :func:`distinct_code` and a null ``NULL_CODE``; the
    vocabulary's codes are not used."""

    @classmethod
    def of(cls, column: ColumnKind, by_value: bool = False) -> "CategoricalCodes":
        """The encoder of a planned categorical or boolean column (its vocabulary and codebook)."""
        vocabulary = column.vocabulary or {}
        if column.codes is None or "unseen_code" not in vocabulary:
            raise ValueError(f"column {column.name!r} (kind {column.kind}) has no vocabulary to encode by")
        unseen = int(vocabulary["unseen_code"])
        other = vocabulary.get("other")
        return cls(column.name, dict(column.codes), unseen, int(vocabulary.get("missing_code", unseen + 1)),
                   None if other is None else int(other["code"]), by_value)

    @property
    def null_code(self) -> int:
        """The code a null gets."""
        return NULL_CODE if self.by_value else self.missing_code

    def code(self, value) -> int:
        """One value's code (None: the null code)."""
        if value is None:
            return self.null_code
        text = str(value)
        if self.by_value:
            return distinct_code(text)
        code = self.codes.get(text)
        return self.unseen_code if code is None else code

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """(n,) int32: the code of every value of ``column``."""
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        parts = [self._encode_chunk(chunk) for chunk in chunks if len(chunk)]
        if not parts:
            return np.zeros(0, dtype=np.int32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode_chunk(self, chunk: pa.Array) -> np.ndarray:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        dictionary = encoded.dictionary
        if pa.types.is_dictionary(dictionary.type):
            dictionary = dictionary.cast(dictionary.type.value_type)
        lookup = np.fromiter((self.code(v) for v in dictionary.to_pylist()), dtype=np.int32,
                             count=len(dictionary))
        lookup = np.append(lookup, np.int32(self.null_code))  # the index a null row reads
        index = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
        return lookup[index]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Object array of the level each code stands for (the levels with their own code); None for the
        other, unseen and missing codes, which stand for more than one value or none, and for the codes of
        values outside the vocabulary."""
        if self.by_value:
            known = {distinct_code(value): value for value, code in self.codes.items() if code != self.other_code}
            return np.array([known.get(int(c)) for c in np.asarray(codes).ravel()], dtype=object)
        levels = np.full(self.missing_code + 2, None, dtype=object)
        for value, code in self.codes.items():
            if code != self.other_code:
                levels[code] = value
        codes = np.asarray(codes, dtype=np.int64)
        return levels[np.where((codes >= 0) & (codes <= self.missing_code), codes, self.missing_code + 1)]
