"""The one batch type: read from a table, sampled, cut, joined, filled and pickled without losing a feature
kind (numeric, embedding, categorical codes, date days), its column names or a role."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pyarrow as pa
import pytest

from sanitizer.beam.sample import ClassAwareSampler
from sanitizer.data.batch import CATEGORICAL, DATE, EMBEDDING, KEY_COLUMN, NUMERIC, Batch, FeatureColumn, mix64
from sanitizer.data.extract import extract
from sanitizer.detectors.base import bounded_sample


EVERY_KIND = {NUMERIC, EMBEDDING, CATEGORICAL, DATE}
COLUMNS = {CATEGORICAL: ("Island", "Sex"), DATE: ("Date Egg",)}


def batch_of_every_kind(n: int = 400) -> Batch:
    rng = np.random.default_rng(0)
    labels = np.array([str(i % 3) for i in range(n)], dtype=object)
    labels[:5] = "rare"
    features = {NUMERIC: rng.normal(size=(n, 2)), EMBEDDING: rng.normal(size=(n, 4)),
                CATEGORICAL: rng.integers(0, 5, size=(n, 2)).astype(np.int32),
                DATE: rng.uniform(13_000, 14_000, size=(n, 1))}
    return Batch(features=features, labels=labels, keys=mix64(np.arange(n, dtype=np.uint64)),
                 ids=np.array([f"r{i}" for i in range(n)], dtype=object), feature_names=("a", "b"), columns=COLUMNS)


def same_rows(part: Batch, whole: Batch) -> None:
    """Every field of ``part`` holds the rows of ``whole`` that its ids name."""
    where = {rid: i for i, rid in enumerate(whole.ids)}
    rows = np.array([where[rid] for rid in part.ids])
    assert set(part.features) == set(whole.features) == EVERY_KIND
    for kind, values in whole.features.items():
        np.testing.assert_array_equal(part.features[kind], values[rows])
        assert part.features[kind].dtype == values.dtype
    np.testing.assert_array_equal(part.labels, whole.labels[rows])
    np.testing.assert_array_equal(part.keys, whole.keys[rows])
    assert part.feature_names == whole.feature_names and part.columns == whole.columns == COLUMNS


def test_a_bounded_sample_keeps_every_field_every_kind_too():
    whole = batch_of_every_kind()
    part = bounded_sample(whole, rows=50, per_class=10)
    assert 50 <= part.n < whole.n and "rare" in set(part.labels)
    same_rows(part, whole)


def test_the_class_aware_sample_keeps_every_field():
    whole = batch_of_every_kind()
    sampler = ClassAwareSampler(size=60, min_per_class=5, seed=1,
                                widths={NUMERIC: 2, EMBEDDING: 4, CATEGORICAL: 2, DATE: 1}, columns=COLUMNS)
    accs = [sampler.add(sampler.create(), whole.take(slice(a, a + 100))) for a in range(0, whole.n, 100)]
    sample = sampler.extract(pickle.loads(pickle.dumps(sampler.merge(accs))))  # as a runner ships it
    assert 60 <= sample.n < whole.n
    same_rows(sample, whole)
    empty = sampler.extract(sampler.create())
    assert empty.n == 0 and empty.X.shape == (0, 2) and empty.embedding.shape == (0, 4)
    assert empty.categorical.shape == (0, 2) and empty.categorical.dtype == np.int32 and empty.dates.shape == (0, 1)
    assert empty.columns == COLUMNS


def test_concat_and_pickling_keep_every_kind_and_its_column_names():
    whole = batch_of_every_kind(30)
    parts = [whole.take(slice(0, 10)), whole.take(np.arange(10, 30))]
    same_rows(Batch.concat(parts), whole)
    same_rows(pickle.loads(pickle.dumps(whole)), whole)
    with pytest.raises(ValueError, match="columns\\['categorical'\\] names 1 columns"):
        Batch(features=dict(whole.features), labels=whole.labels, keys=whole.keys, ids=whole.ids,
              columns={CATEGORICAL: ("Island",)})


def test_a_batch_is_immutable_and_derives_new_ones():
    batch = batch_of_every_kind(10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.labels = batch.labels[::-1]
    relabelled = dataclasses.replace(batch, labels=batch.labels[::-1])
    assert relabelled.embedding is batch.embedding and list(relabelled.labels) == list(batch.labels[::-1])
    holed = dataclasses.replace(batch, features={**batch.features, NUMERIC: np.where(np.eye(10, 2) > 0, np.nan, batch.X)})
    filled = holed.filled(np.array([7.0, 8.0]))
    assert filled.X[0, 0] == 7.0 and filled.X[1, 1] == 8.0 and np.isnan(holed.X[0, 0])
    assert filled.embedding is batch.embedding and batch.filled(np.zeros(2)) is batch  # nothing to fill
    assert filled.categorical is batch.categorical and filled.columns == COLUMNS


def test_reading_a_table_gives_the_kinds_the_roles_and_the_row_checks():
    vectors = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], type=pa.list_(pa.float32(), 2))
    table = pa.table({"rid": ["a", "b", "c"], "x": [1.0, float("inf"), 3.0], "emb": vectors, "label": [0, 1, 0],
                      KEY_COLUMN: pa.array(np.arange(3, dtype=np.uint64))})
    batch = extract(table, [FeatureColumn("x", 1)], "label", "rid", FeatureColumn("emb", 2, is_list=True))
    assert batch.feature_names == ("x",) and list(batch.ids) == ["a", "c"] and list(batch.labels) == ["0", "0"]
    np.testing.assert_array_equal(batch.X, [[1.0], [3.0]])
    np.testing.assert_array_equal(batch.embedding, [[1.0, 2.0], [5.0, 6.0]])
    assert list(batch.checks.valid) == [True, False, True] and list(batch.checks.labels_all) == ["0", "1", "0"]
    assert [code for code, _, _ in batch.checks.issues] == ["invalid:inf:x"]
    assert batch.take([1]).checks is None  # the checks describe the whole table, not some of its rows
    assert set(batch.features) == {NUMERIC, EMBEDDING} and batch.columns == {}  # no encoders, no such kinds
