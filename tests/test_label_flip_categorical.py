"""label_flip on a mixed table: categorical and date columns reach its models and its neighbour vote.

The table is palmerpenguins' raw penguins (as shipped, read through the run's own plan and extraction)
without the culmen measurements: body mass and flipper length tell Gentoo from the others, but only the
island tells an Adelie on Biscoe or Torgersen from a Chinstrap (found on Dream alone)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from sanitizer.beam.fit import to_detector_batch
from sanitizer.beam.plan import make_plan
from sanitizer.beam.read import add_ids
from sanitizer.data.batch import CATEGORICAL, NUMERIC, Batch, column_medians
from sanitizer.detectors.label_flip import LabelFlipDetector
from sanitizer.detectors.label_flip.detector import LabelFlipParams, LabelFlipState
from sanitizer.detectors.label_flip.mixed import MixedEncoding
from sanitizer.representations.categorical import UNSEEN_BASE
from sanitizer.settings.config import build_config

DROPPED = ["Culmen Length (mm)", "Culmen Depth (mm)", "Delta 15 N (o/oo)", "Delta 13 C (o/oo)"]
FLIPS = 12


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    """(batch with the planted labels, planted rows mask, the original labels)."""
    from palmerpenguins import load_penguins_raw

    frame = load_penguins_raw().drop(columns=DROPPED)
    original = frame["Species"].copy()
    rng = np.random.default_rng(0)
    # Flips between Adelie and Chinstrap on Biscoe and Torgersen, where only the island gives them away,
    # and a few to Gentoo.
    candidates = np.flatnonzero(frame["Island"].isin(["Biscoe", "Torgersen"]).to_numpy()
                                & original.str.startswith("Adelie").to_numpy())
    flipped = np.sort(rng.choice(candidates, FLIPS, replace=False))
    chinstrap = next(s for s in original.unique() if s.startswith("Chinstrap"))
    frame.loc[flipped, "Species"] = chinstrap
    path = tmp_path_factory.mktemp("penguins") / "penguins.parquet"
    frame.to_parquet(path, index=False)
    plan = make_plan(build_config({"input": str(path), "output": str(path.parent / "out"), "label_column": "Species"}))
    batch = to_detector_batch(add_ids(pq.read_table(path), plan, 0, 0), plan)
    batch = batch.filled(column_medians(batch.X))
    truth = np.zeros(len(frame), dtype=bool)
    truth[flipped] = True
    return batch, truth[batch.checks.valid]


def numeric_only(batch: Batch) -> Batch:
    return Batch(features={NUMERIC: batch.X}, labels=batch.labels, keys=batch.keys, ids=batch.ids,
                 feature_names=batch.feature_names)


def fit_and_score(batch: Batch, params: LabelFlipParams | None = None):
    state = LabelFlipDetector().fit(batch, params or LabelFlipParams(), 0)
    assert isinstance(state, LabelFlipState), state
    return state, LabelFlipDetector().score(batch, state)


@pytest.fixture(scope="module")
def fitted(penguins):
    """(state, scores) of the default detector on the planted table."""
    return fit_and_score(penguins[0])


def f1(flagged: np.ndarray, truth: np.ndarray) -> float:
    tp = float((flagged & truth).sum())
    return 2 * tp / max(flagged.sum() + truth.sum(), 1)


def test_the_batch_carries_categorical_and_date_columns(penguins):
    batch, _ = penguins
    assert "Island" in batch.columns[CATEGORICAL] and "Date Egg" in batch.columns["date"]
    encoding = MixedEncoding.fit(batch)
    island = encoding.levels[encoding.categorical.index("Island")]
    assert len(island) == 3  # Biscoe, Dream, Torgersen: each with enough rows for a column of its own
    assert MixedEncoding.fit(numeric_only(batch)) is None


def test_flips_behind_a_categorical_column_are_caught(penguins, fitted):
    batch, truth = penguins
    state, scores = fitted
    assert state.encoding is not None
    caught = scores.flagged & truth
    assert caught.sum() >= 0.66 * truth.sum(), (caught.sum(), truth.sum())
    # Clean rows mostly pass. A table this small has no noise model (confident learning alone decides),
    # and without the culmen an Adelie on Dream, Chinstrap country, of a Chinstrap's size is a hard row.
    assert (scores.flagged & ~truth).sum() <= 0.12 * (~truth).sum()
    # Without its categorical and date columns the same table hides half of them among many false flags.
    _, blind = fit_and_score(numeric_only(batch))
    assert (blind.flagged & truth).sum() <= caught.sum() - 3
    assert f1(scores.flagged, truth) >= f1(blind.flagged, truth) + 0.15, (f1(scores.flagged, truth),
                                                                          f1(blind.flagged, truth))
    # The island is named behind a suggestion, for the scoring stage to write its value in.
    named = [c for ev in scores.evidence.values() for c in ev.get("categorical", [])]
    assert any(c["column"] == "Island" and c["value_from_row"] == "Island" for c in named), named


def test_the_report_names_the_categorical_value():
    from sanitizer.detectors.label_flip import report

    lines = report.describe({"suggested_label": "Adelie", "p_suggested": 0.97, "given_label": "Chinstrap",
                             "p_given": 0.03, "categorical": [{"column": "Island", "push": 2.1, "value": "Biscoe"}]})
    assert "pointing to it: Island = 'Biscoe'" in lines


def test_a_classifier_named_in_the_config_reads_the_one_hot_columns(penguins):
    batch, truth = penguins
    params = LabelFlipParams(classifier="sklearn.ensemble.RandomForestClassifier",
                             classifier_params={"n_estimators": 50, "min_samples_leaf": 2})
    state, scores = fit_and_score(batch, params)
    model = state.models[0]
    assert model.model.n_features_in_ == state.encoding.linear_width  # one-hot, not codes
    assert (scores.flagged & truth).sum() >= 0.5 * truth.sum()
    assert (scores.flagged & ~truth).sum() <= 0.10 * (~truth).sum()


def test_values_outside_the_vocabulary_at_scoring_time(penguins, fitted):
    batch, _ = penguins
    state, before = fitted
    codes = batch.categorical.copy()
    codes[:40, batch.columns[CATEGORICAL].index("Island")] = UNSEEN_BASE + 12_345  # "Mars"
    codes[40:60, :] = UNSEEN_BASE + np.arange(codes.shape[1])  # every column unseen
    mars = Batch(features={**batch.features, CATEGORICAL: codes}, labels=batch.labels, keys=batch.keys,
                 ids=batch.ids, feature_names=batch.feature_names, columns=batch.columns)
    scores = LabelFlipDetector().score(mars, state)
    assert scores.score.shape == before.score.shape and np.isfinite(scores.score).all()
    assert np.array_equal(scores.score[60:], before.score[60:])  # other rows judged as before


def test_histogram_gradient_boosting_named_in_the_config_splits_native_categories(penguins):
    batch, truth = penguins
    params = LabelFlipParams(classifier="sklearn.ensemble.HistGradientBoostingClassifier",
                             classifier_params={"max_iter": 30})
    state, scores = fit_and_score(batch, params)
    model = state.models[0].model
    k = len(state.encoding.levels)
    assert model.n_features_in_ == len(state.encoding.tree_columns()) and model.is_categorical_.sum() == k
    assert "native categories" in state.summary["mixed_columns"]["models"]
    assert (scores.flagged & truth).sum() >= 0.5 * truth.sum()
