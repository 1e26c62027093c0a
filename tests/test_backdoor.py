"""The backdoor detector: BadNets-style poisons (a trigger stamped on other classes' rows, relabelled to a
target) on real data are caught, clean data and clean rows are left alone, and the state follows the
detector contract (pure scoring, picklable, batch-independent, evidence that names the trigger)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.feature_selection import mutual_info_classif

from sanitizer.settings.config import build_config
from sanitizer.detectors import REGISTRY, Batch, Skipped
from sanitizer.detectors.backdoor import BackdoorDetector
from sanitizer.detectors.backdoor.detector import NO_TRIGGER, BackdoorParams
from sanitizer.errors import ConfigError
from sanitizer.data.batch import mix64

CORNER = [54, 55, 62, 63]  # a 2x2 patch in the bottom-right corner of an 8x8 digit
CENTRE = [27, 28, 35, 36]


def make_batch(X, y, seed: int = 0) -> Batch:
    n = len(y)
    return Batch(
        np.ascontiguousarray(X, dtype=np.float64),
        np.array([str(v) for v in y], dtype=object),
        mix64(np.arange(n, dtype=np.uint64) + np.uint64(seed * 1_000_003)),
        np.array([f"row-{i}" for i in range(n)], dtype=object),
        tuple(f"f{j}" for j in range(np.shape(X)[1])),
    )


def stamp(X, y, rate, pixels, value, seed, target=0, alpha=1.0):
    """Poison `rate` of the rows of every other class: the trigger on `pixels`, the label set to `target`."""
    rng = np.random.default_rng(seed)
    source = np.flatnonzero(y != target)
    poison = rng.choice(source, max(3, int(round(rate * len(source)))), replace=False)
    X, y = X.astype(float).copy(), y.copy()
    X[np.ix_(poison, pixels)] = (1 - alpha) * X[np.ix_(poison, pixels)] + alpha * np.asarray(value)
    y[poison] = target
    truth = np.zeros(len(y), dtype=bool)
    truth[poison] = True
    return X, y, truth


def run(X, y, seed=0, params=None):
    detector = BackdoorDetector()
    batch = make_batch(X, y, seed)
    state = detector.fit(batch, params or BackdoorParams(), seed)
    return detector, batch, state, detector.score(batch, state)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(float), y


@pytest.fixture(scope="module")
def corner_attack(digits):
    X, y, truth = stamp(*digits, 0.05, CORNER, 16.0, seed=1)
    return (X, y, truth) + run(X, y)


def test_registry_holds_the_backdoor_detector_and_it_is_on_by_default():
    assert REGISTRY["backdoor"] is BackdoorDetector
    assert "backdoor" in build_config({}).enabled_detectors()


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.10])
@pytest.mark.parametrize("pixels,alpha", [(CORNER, 1.0), ([0, 1, 8, 9], 1.0), ([47, 54, 61], 0.5)],
                         ids=["corner-patch", "top-left-patch", "blended-diagonal"])
def test_stamped_digits_are_caught_and_clean_rows_pass(digits, rate, pixels, alpha):
    X, y, truth = stamp(*digits, rate, pixels, 16.0, seed=int(rate * 100), alpha=alpha)
    *_, scores = run(X, y)
    assert scores.flagged[truth].mean() >= 0.9
    assert scores.flagged[~truth].mean() <= 0.01


def test_a_centre_patch_on_ordinary_strokes_is_caught_as_a_group(digits):
    X, y, truth = stamp(*digits, 0.10, CENTRE, 16.0, seed=3)
    *_, scores = run(X, y)
    assert scores.flagged[truth].mean() >= 0.9
    assert scores.flagged[~truth].mean() <= 0.01


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine], ids=["breast_cancer", "wine"])
@pytest.mark.parametrize("kind", ["outside", "inside"])
def test_tabular_triggers_of_fixed_values_are_caught(loader, kind):
    X, y = loader(return_X_y=True)
    features = np.argsort(mutual_info_classif(X, y, random_state=0))[:3]  # the least telling features
    q1, q3 = np.quantile(X[:, features], [0.25, 0.75], axis=0)
    value = X[:, features].max(axis=0) + 0.5 * (q3 - q1) if kind == "outside" else np.quantile(X[:, features], 0.01, axis=0)
    X, y, truth = stamp(X, y, 0.05, features, value, seed=5)
    _, _, state, scores = run(X, y)
    assert scores.flagged[truth].mean() >= 0.9
    assert scores.flagged[~truth].mean() <= 0.01
    names = {f"f{j}" for j in features}
    assert any(names <= set(t["features"]) for t in state.summary["triggers"])


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer, load_wine], ids=["digits", "breast_cancer", "wine"])
def test_clean_data_sets_have_no_trigger(loader):
    X, y = loader(return_X_y=True)
    _, _, state, scores = run(X, y)
    assert state.summary["triggers"] == []
    assert not scores.flagged.any()
    assert np.all(scores.score == NO_TRIGGER)


def test_evidence_names_the_pattern_and_the_neighbours(corner_attack):
    X, y, truth, _, _, state, scores = corner_attack
    i = int(np.flatnonzero(scores.flagged & truth)[0])
    ev = scores.evidence[i]
    assert ev["given_label"] == "0" and ev["suggested_label"] != "0"
    assert ev["trigger"] in {"pattern", "values"}
    assert {p["feature"] for p in ev["pattern"]} <= {f"f{j}" for j in CORNER}
    assert all(p["value"] == 16.0 for p in ev["pattern"])
    assert ev["neighbour_agreement"] < 0.5 and ev["vote_margin"] > 0
    assert len(ev["neighbours"]) == 5 and all(n["label"] != "0" for n in ev["neighbours"][:1])
    assert set(scores.evidence) == set(np.flatnonzero(scores.flagged).tolist())


def test_scoring_is_pure_batch_independent_and_the_state_pickles(corner_attack):
    X, y, truth, detector, batch, state, scores = corner_attack
    again = pickle.loads(pickle.dumps(state))
    half = len(y) // 2
    parts = [detector.score(make_batch(X[a:b], y[a:b]), again) for a, b in ((0, half), (half, len(y)))]
    # ids differ between the halves' batches only in name; scores depend on features and label alone
    assert np.array_equal(np.concatenate([p.flagged for p in parts]), scores.flagged)
    assert np.allclose(np.concatenate([p.score for p in parts]), scores.score)
    empty = detector.score(make_batch(X[:0], y[:0]), state)
    assert empty.score.shape == (0,) and empty.flagged.shape == (0,)


def test_seeded_fit_is_deterministic(digits):
    X, y, _ = stamp(*digits, 0.05, CORNER, 16.0, seed=2)
    a, b = run(X, y, seed=4)[3], run(X, y, seed=4)[3]
    assert np.array_equal(a.flagged, b.flagged) and np.allclose(a.score, b.score)


def test_unknown_labels_and_one_class_samples(corner_attack):
    X, y, truth, detector, _, state, _ = corner_attack
    other = detector.score(make_batch(X[:50], np.full(50, 99)), state)
    assert not other.flagged.any()
    assert isinstance(detector.fit(make_batch(X[:40], np.zeros(40, dtype=int)), BackdoorParams(), 0), Skipped)


@pytest.mark.parametrize("key,value", [("neighbours", 0), ("max_group_share", 2.0), ("min_group", 1)])
def test_bad_params_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=f"detectors.backdoor.{key}"):
        build_config({"detectors": {"backdoor": {key: value}}})


def test_the_report_renders_backdoor_evidence_as_text(corner_attack):
    from sanitizer.report.evidence import summarise_reasons

    X, y, truth, _, _, _, scores = corner_attack
    i = int(np.flatnonzero(scores.flagged & truth)[0])
    ev = dict(scores.evidence[i], neighbours=[{"id": "<script>x</script>", "label": "3"}])
    (summary,) = summarise_reasons([{"detector": "backdoor", "code": "backdoor", "score": 0.8, "threshold": 0.0,
                                     "evidence": ev}])
    text = "\n".join(summary["lines"])
    assert "trigger (" in text and "f63 = 16" in text and "<script>x</script> (3)" in text


def test_against_a_trusted_baseline_the_trigger_is_searched_for_in_the_new_data(digits):
    """A vetted baseline holds no trigger to find; with a baseline the detector is fitted on the new half's
    sample instead (``fits_on_new_data``), and the corner patch planted there is found and its carriers
    caught."""
    from sanitizer.beam.fit import fit_against_baseline

    X, y = digits
    earlier, new = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    detector = BackdoorDetector()
    assert detector.fits_on_new_data
    baseline = make_batch(X[earlier], y[earlier])
    baseline_state = detector.fit(baseline, BackdoorParams(), 3)
    assert baseline_state.triggers == ()  # what fitting on the baseline would have found
    Xn, yn, truth = stamp(X[new], y[new], 0.08, CORNER, 16.0, seed=1)
    batch = make_batch(Xn, yn, seed=1)
    state, error, _ = fit_against_baseline("backdoor", baseline, batch, BackdoorParams(), 3)
    assert error is None
    scores = detector.score(batch, state)
    assert scores.flagged[truth].mean() >= 0.9
    assert scores.flagged[~truth].mean() <= 0.01
    empty, error, _ = fit_against_baseline("backdoor", baseline, batch.take(np.arange(0)), BackdoorParams(), 3)
    assert error is None and isinstance(empty, Skipped)
