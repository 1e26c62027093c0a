"""The training hand-off of a mixed table (palmerpenguins, raw): the manifest records every column's kind with
the whole vocabulary of a categorical column and the range of a date column; pandas gets the original values;
the torch stream gives categorical columns as codes by that vocabulary (counted over the clean rows, so a value
first seen in a later shard has a code of its own; a value no clean row holds: the unseen code; a null: the
missing code) and dates as days or as year/month/day."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from sanitizer import schemas
from sanitizer.training import ManifestError, load_manifest

NEW_ISLAND = "Dream (north)"  # how the second shard spells Dream: never in the first rows the plan reads


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from palmerpenguins import load_penguins_raw

    root = tmp_path_factory.mktemp("handoff")
    frame = load_penguins_raw()
    first, later = frame.iloc[:200], frame.iloc[200:].copy()
    later["Island"] = later["Island"].replace("Dream", NEW_ISLAND)
    (root / "in").mkdir()
    pq.write_table(pa.Table.from_pandas(first, preserve_index=False), root / "in" / "part-0.parquet")
    pq.write_table(pa.Table.from_pandas(later, preserve_index=False), root / "in" / "part-1.parquet")
    out = root / "out"
    assert run_cli("run", "--input", root / "in", "--output", out, "--label-column", "Species", "-q") == 0
    return {"out": out, "root": root}


def test_the_manifest_records_kinds_vocabularies_and_ranges(run):
    manifest = json.loads((run["out"] / "manifest.json").read_text())
    schemas.validate("manifest", manifest)
    columns = {c["name"]: c for c in manifest["columns"]}
    assert columns["Island"]["kind"] == "categorical" and columns["Date Egg"]["kind"] == "date"
    island = columns["Island"]["vocabulary"]
    # Counted over the clean rows, whole: the spelling only the second shard has keeps a code of its own.
    assert set(island["codes"]) == {"Biscoe", "Dream", "Torgersen", NEW_ISLAND}
    assert sorted(island["codes"].values()) == [0, 1, 2, 3]
    assert (island["size"], island["unseen_code"], island["missing_code"]) == (4, 4, 5)
    assert island["counted_rows"] == manifest["clean"]["rows"]  # Island is never null
    assert columns["Date Egg"]["range"]["min"].startswith("2007-11-09")
    assert columns["Culmen Length (mm)"] == {"name": "Culmen Length (mm)", "kind": "numeric"}


def test_pandas_gets_the_original_values_and_torch_the_codes(run):
    data = load_manifest(run["out"])
    frame = data.to_pandas()
    assert NEW_ISLAND in set(frame["Island"])  # pandas: the values as written
    assert {"Island", "Sex", "Clutch Completion"} <= set(data.categorical_columns)  # Yes / No text: two codes
    assert not {"Comments", "Date Egg", "Body Mass (g)"} & set(data.categorical_columns)
    ds = data.torch_dataset(batch_size=64, ids=True, categorical_columns=["Island", "Sex"], fill_missing=0.0)
    batches = list(ds)
    assert all(len(b) == 4 for b in batches)  # (features, codes, labels, ids)
    codes = np.concatenate([b[1].numpy() for b in batches])
    ids = [i for b in batches for i in b[3]]
    assert codes.dtype == np.int64 and codes.shape == (len(frame), 2)
    assert ds.category_sizes == [6, data.vocabulary("Sex").cardinality]
    by_id = frame.set_index(data.id_column)
    island, sex = data.vocabulary("Island"), data.vocabulary("Sex")
    written = by_id.loc[ids, "Island"].tolist()
    assert island.decode(codes[:, 0]) == written and NEW_ISLAND in written  # round trip, every clean value
    assert (codes[:, 0] < island.size).all()
    sexes = by_id.loc[ids, "Sex"].tolist()
    nulls = np.array([v is None or v != v for v in sexes])
    assert nulls.any() and (codes[nulls, 1] == sex.missing_code).all()
    assert sex.decode(codes[~nulls, 1]) == [v for v, n in zip(sexes, nulls) if not n]
    assert island.encode(["Dream", "Mars", None]).tolist() == [island.codes["Dream"], 4, 5]  # serving: unseen


def test_dates_as_days_or_parts(run):
    data = load_manifest(run["out"])
    frame = data.to_pandas()
    days = data.torch_dataset(batch_size=1000, ids=True, dates="days", fill_missing=0.0)
    X, _, ids = next(iter(days))
    assert days.feature_names[-1] == "Date Egg.days" and X.shape[1] == len(days.feature_names)
    expected = (np.array(frame.set_index(data.id_column).loc[ids, "Date Egg"].tolist(), dtype="datetime64[D]")
                - np.datetime64("1970-01-01", "D")).astype(float)
    assert np.allclose(X[:, -1].numpy(), expected)
    parts = data.torch_dataset(batch_size=1000, ids=True, dates="parts", date_columns=["Date Egg"], fill_missing=0.0)
    X, _, ids = next(iter(parts))
    assert parts.feature_names[-3:] == ["Date Egg.year", "Date Egg.month", "Date Egg.day"]
    first = frame.set_index(data.id_column).loc[ids[0], "Date Egg"]
    assert X[0, -3:].tolist() == [float(v) for v in first.split("-")]
    with pytest.raises(ValueError, match="is a date"):
        data.torch_dataset(features=["Date Egg"])
    with pytest.raises(ValueError, match="dates must be one of"):
        data.torch_dataset(dates="weeks")


def test_a_damaged_vocabulary_is_refused_naming_the_field(run, tmp_path):
    manifest_path = run["out"] / "manifest.json"
    good = manifest_path.read_text()
    manifest = json.loads(good)
    index = [c["name"] for c in manifest["columns"]].index("Island")
    try:
        manifest["columns"][index]["vocabulary"]["codes"]["Dream"] = "one"
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(ManifestError, match=rf"columns\[{index}\]\.vocabulary\.codes\['Dream'\]"):
            load_manifest(run["out"])
        manifest["columns"][index]["vocabulary"]["codes"]["Dream"] = 0  # two values with one code
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(ManifestError, match=rf"columns\[{index}\]\.vocabulary\.codes"):
            load_manifest(run["out"])
    finally:
        manifest_path.write_text(good)


def test_a_manifest_without_kinds_still_loads(run):
    manifest_path = run["out"] / "manifest.json"
    good = manifest_path.read_text()
    manifest = json.loads(good)
    del manifest["columns"]
    try:
        manifest_path.write_text(json.dumps(manifest))
        data = load_manifest(run["out"])
        assert data.column_kinds == {} and data.categorical_columns == []
        X, y = next(iter(data.torch_dataset(batch_size=32, fill_missing=0.0)))
        assert X.shape == (32, len(data.feature_columns))
        with pytest.raises(ValueError, match="records no column kinds"):
            data.torch_dataset(categorical_columns="all")
    finally:
        manifest_path.write_text(good)


def test_date_types_and_non_text_categories_encode_like_the_manifest():
    from datetime import date, datetime

    from sanitizer.training.columns import Vocabulary, date_matrix

    day = pa.array([date(1970, 1, 3), None], pa.date32())
    assert date_matrix(day, "d", "days")[0, 0] == 2.0 and np.isnan(date_matrix(day, "d", "days")[1, 0])
    stamp = pa.array([datetime(2007, 11, 12, 2, 0)], pa.timestamp("ms", "UTC")).cast(
        pa.timestamp("ms", "America/New_York"))
    assert date_matrix(stamp, "t", "parts").tolist() == [[2007.0, 11.0, 11.0]]  # in its own zone
    assert date_matrix(pa.array(["2007-11-11T12:00:00+02:00"]), "s", "days")[0, 0] == \
        (np.datetime64("2007-11-11T10:00") - np.datetime64("1970-01-01T00:00")) / np.timedelta64(1, "D")
    flags = Vocabulary("f", {"True": 0, "False": 1}, 2, 2, 3)  # a boolean column declared categorical
    assert flags.encode(pa.array([True, None, False])).tolist() == [0, 3, 1]
    rating = Vocabulary("r", {"5": 0, "4": 1}, 2, 2, 3)  # integers declared categorical: codes by their text
    assert rating.encode(pa.array([4, 5, 3], pa.int64())).tolist() == [1, 0, 2]
    with pytest.raises(ManifestError, match="not an ISO 8601 date"):
        date_matrix(pa.array(["2007-11-11", "soon"]), "s", "days")
