"""Categorical codes and date days in the batch, on a real mixed table (palmerpenguins, raw): values become
codes by the plan's vocabulary (a value outside it: a code of its own, derived from its text; a null: the
missing code), a boolean stored as text is a categorical of two levels, dates become days since 1970-01-01,
and the sample the detectors fit on carries them; the numeric features are unchanged."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sanitizer.beam.fit import SampleFn, to_detector_batch
from sanitizer.beam.plan import make_plan
from sanitizer.beam.read import ReadSplitFn
from sanitizer.data.batch import CATEGORICAL, DATE, NUMERIC
from sanitizer.representations.categorical import NULL_CODE, UNSEEN_BASE, CategoricalCodes, distinct_code
from sanitizer.representations.dates import days_since_epoch
from sanitizer.settings.config import build_config

CODED = ("studyName", "Region", "Island", "Stage", "Clutch Completion", "Sex")


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    from palmerpenguins import load_penguins_raw

    d = tmp_path_factory.mktemp("representations")
    frame = load_penguins_raw()
    frame.to_parquet(d / "penguins_raw.parquet", index=False)
    config = build_config({"input": str(d / "penguins_raw.parquet"), "output": str(d / "out"),
                           "label_column": "Species", "sample": {"size": 100, "min_per_class": 20}})
    plan = make_plan(config)
    tables = [t for split in plan.splits for t in ReadSplitFn(plan, plan.read_columns()).process(split)]
    table = pa.concat_tables(tables)
    return {"frame": frame, "config": config, "plan": plan, "table": table,
            "batch": to_detector_batch(table, plan)}


def encoder(plan, name) -> CategoricalCodes:
    return next(e for e in plan.encoders if e.name == name)


def test_categorical_columns_become_codes_by_their_values(penguins):
    plan, batch, frame = penguins["plan"], penguins["batch"], penguins["frame"]
    assert batch.columns == {CATEGORICAL: CODED, DATE: ("Date Egg",)}  # Comments: a note few rows have
    assert batch.categorical.dtype == np.int32 and batch.categorical.shape == (len(frame), len(CODED))
    island = encoder(plan, "Island")
    vocabulary = next(k for k in plan.kinds if k.name == "Island").vocabulary
    levels = [level["value"] for level in vocabulary["levels"]]
    assert replace(island, by_value=False).decode(np.arange(3)).tolist() == levels  # the loader's codes
    assert island.decode(np.array([distinct_code(v) for v in levels])).tolist() == levels
    codes = dict(zip(batch.ids, batch.categorical[:, CODED.index("Island")]))  # ids: rows in input order
    order = [codes[f"penguins_raw.parquet:{i}"] for i in range(len(frame))]
    assert island.decode(np.array(order)).tolist() == frame["Island"].tolist()
    sex = batch.categorical[:, CODED.index("Sex")]
    assert sorted(set(sex.tolist())) == sorted([distinct_code("MALE"), distinct_code("FEMALE"), NULL_CODE])
    assert (sex == NULL_CODE).sum() == frame["Sex"].isna().sum() == 11


def test_a_boolean_stored_as_text_is_a_categorical_of_two_levels(penguins):
    clutch = encoder(penguins["plan"], "Clutch Completion")
    assert sorted(clutch.codes) == ["No", "Yes"] and clutch.unseen_code == 2
    values = penguins["batch"].categorical[:, CODED.index("Clutch Completion")]
    assert set(values.tolist()) == {distinct_code("Yes"), distinct_code("No")}
    assert clutch.encode(pa.array(["Yes", "YES", None])).tolist() == [distinct_code("Yes"), distinct_code("YES"),
                                                                       NULL_CODE]
    loader = replace(clutch, by_value=False)  # the training loader's codes, by the vocabulary
    assert loader.encode(pa.array(["Yes", "YES", None])).tolist() == [loader.codes["Yes"], 2, 3]


def test_one_value_has_one_code_in_every_column(penguins):
    island, sex = encoder(penguins["plan"], "Island"), encoder(penguins["plan"], "Sex")
    assert island.encode(pa.array(["MALE", "Dream"])).tolist() == sex.encode(pa.array(["MALE", "Dream"])).tolist()


def test_a_value_never_seen_gets_a_code_of_its_own_and_its_row_stays_valid(penguins):
    plan, table, before = penguins["plan"], penguins["table"], penguins["batch"]
    island = table.column("Island").to_pylist()
    island[:2] = ["Mars", None]
    sex = table.column("Sex").to_pylist()
    sex[0] = "YES"
    planted = table.set_column(table.schema.get_field_index("Island"), "Island", pa.array(island, pa.large_string()))
    planted = planted.set_column(planted.schema.get_field_index("Sex"), "Sex", pa.array(sex, pa.large_string()))
    batch = to_detector_batch(planted, plan)
    first = {name: batch.categorical[0, CODED.index(name)] for name in ("Island", "Sex")}
    assert first == {"Island": distinct_code("Mars"), "Sex": distinct_code("YES")}
    assert min(first.values()) >= UNSEEN_BASE and distinct_code("Mars") != distinct_code("Venus")
    # The training loader's encoder of the same vocabulary gives every such value the one unseen code.
    loader = replace(encoder(plan, "Island"), by_value=False)
    assert loader.encode(pa.array(["Mars", "Venus"])).tolist() == [loader.unseen_code] * 2
    assert batch.categorical[1, CODED.index("Island")] == NULL_CODE
    assert batch.n == before.n and batch.checks.valid.all()  # no row made invalid, none reported
    assert [code for code, _, _ in batch.checks.issues] == [code for code, _, _ in before.checks.issues]
    np.testing.assert_array_equal(batch.X, before.X)  # the numeric features are what they were


def test_date_egg_becomes_days_since_1970(penguins):
    frame, batch = penguins["frame"], penguins["batch"]
    expected = (pd.to_datetime(frame["Date Egg"]) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(np.float64)
    np.testing.assert_array_equal(batch.dates[:, 0], expected)
    assert days_since_epoch(pa.array(["1907-11-11", None, "no date"])).tolist()[0] == -22697.0
    assert np.isnan(days_since_epoch(pa.array(["1907-11-11", None, "no date"]))[1:]).all()


def test_arrow_dates_and_timestamps_become_days_from_utc():
    dates = pa.chunked_array([pa.array([dt.date(1970, 1, 3), None]), pa.array([dt.date(1969, 12, 31)])])
    assert days_since_epoch(dates)[[0, 2]].tolist() == [2.0, -1.0] and np.isnan(days_since_epoch(dates)[1])
    stamp = pa.array([dt.datetime(1970, 1, 2, 6, tzinfo=dt.timezone.utc)], pa.timestamp("ns", tz="Europe/Paris"))
    assert days_since_epoch(stamp).tolist() == [1.25]
    assert days_since_epoch(pa.array(["1970-01-02T06:00:00+06:00"]).dictionary_encode()).tolist() == [1.0]


def test_codes_hold_across_chunks_and_dictionary_columns(penguins):
    island = encoder(penguins["plan"], "Island")
    chunked = pa.chunked_array([pa.array(["Dream", "Mars"]).dictionary_encode(),
                                pa.array(["Torgersen", None, "Dream"]).dictionary_encode()])
    assert island.decode(island.encode(chunked)).tolist() == ["Dream", None, "Torgersen", None, "Dream"]
    assert island.encode(chunked).tolist()[1::2] == [distinct_code("Mars"), NULL_CODE]


def test_the_sample_the_detectors_fit_on_carries_the_codes_and_days(penguins):
    plan, config, whole = penguins["plan"], penguins["config"], penguins["batch"]
    fn = SampleFn(plan, config)
    accs = []
    for part in (slice(0, 150), slice(150, None)):  # two workers, merged as a runner merges them
        acc = fn.create_accumulator()
        accs.append(fn.add_input(acc, penguins["table"][part]))
    sample = fn.extract_output(fn.merge_accumulators(accs))
    assert 100 <= sample.n < whole.n and sample.columns == whole.columns
    rows = pc.index_in(pa.array(sample.ids), pa.array(whole.ids)).to_numpy()
    for kind in (NUMERIC, CATEGORICAL, DATE):
        np.testing.assert_array_equal(sample.features[kind], whole.features[kind][rows])
    empty = fn.extract_output(fn.create_accumulator())
    assert empty.categorical.shape == (0, len(CODED)) and empty.dates.shape == (0, 1) and empty.columns == whole.columns


def test_an_integer_declared_categorical_is_coded_by_its_text(penguins, tmp_path):
    config = build_config({"input": penguins["config"].input, "output": str(tmp_path / "out"),
                           "label_column": "Species", "columns": {"Sample Number": "categorical"}})
    plan = make_plan(config)
    numbers = encoder(plan, "Sample Number")
    assert numbers.encode(pa.array([1, 152, 999_999])).tolist()[2] == distinct_code("999999")
    assert numbers.decode(numbers.encode(pa.array([1, 152]))).tolist() == ["1", "152"]


def test_levels_beyond_the_vocabulary_bound_share_the_other_code(penguins, tmp_path):
    config = build_config({"input": penguins["config"].input, "output": str(tmp_path / "out"),
                           "label_column": "Species", "columns": {"Island": "categorical"},
                           "categorical_max_levels": 2})
    island = encoder(make_plan(config), "Island")
    assert (island.other_code, island.unseen_code, island.missing_code) == (1, 2, 3)
    codes = replace(island, by_value=False).encode(pa.array(["Biscoe", "Dream", "Torgersen", "Mars", None]))
    assert codes.tolist() == [0, 1, 1, 2, 3]
    assert replace(island, by_value=False).decode(codes).tolist() == ["Biscoe", None, None, None, None]
