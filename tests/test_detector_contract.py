"""Every registered detector against the contract in sanitizer/detectors/contract.py.

Parametrised over ``REGISTRY``, so a new detector is checked as soon as it has its registry
line, and this file needs one more entry: ``POISON[name]``, the poison the detector is meant
for, planted in scikit-learn's digits (1,797 rows, 64 features: small enough to fit every
detector in seconds). feature_collision is fitted on a precomputed embedding column (the
pixels scaled to 0..1) so no network is trained here.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from sanitizer.beam.fit import fit_detectors
from sanitizer.settings.config import Config, build_config
from sanitizer.detectors import REGISTRY, Batch, Scores, Skipped
from sanitizer.detectors.contract import INPUTS, Detector, DetectorParams, check_declarations
from sanitizer.errors import ConfigError, SanitizerError
from sanitizer.data.batch import mix64

NAMES = sorted(REGISTRY)
SEED = 0


# --------------------------------------------------------------------------- data and planted poison


def make_batch(X, y, embedding=None) -> Batch:
    n = len(y)
    return Batch(
        np.ascontiguousarray(X, dtype=np.float64),
        np.array([str(v) for v in y], dtype=object),
        mix64(np.arange(n, dtype=np.uint64) + np.uint64(7_000_003)),
        np.array([f"row-{i}" for i in range(n)], dtype=object),
        tuple(f"px{j}" for j in range(np.shape(X)[1])),
        embedding,
    )


def _outlier(X, y, rng):
    """Rows pushed far outside every class: a few pixels at 10x their largest value."""
    rows = rng.choice(len(y), 15, replace=False)
    X = X.copy()
    for r in rows:
        X[r, rng.choice(64, 6, replace=False)] = 160.0
    return X, y, None, rows, {}


def _label_flip(X, y, rng):
    """Labels flipped to another digit."""
    rows = rng.choice(len(y), 30, replace=False)
    y = y.copy()
    y[rows] = (y[rows] + 1 + rng.integers(0, 9, len(rows))) % 10
    return X, y, None, rows, {}


def _backdoor(X, y, rng):
    """BadNets: a 2x2 corner patch stamped on other digits' rows, relabelled to 0."""
    rows = rng.choice(np.flatnonzero(y != 0), 40, replace=False)
    X, y = X.copy(), y.copy()
    X[np.ix_(rows, [54, 55, 62, 63])] = 16.0
    y[rows] = 0
    return X, y, None, rows, {}


def _feature_collision(X, y, rng):
    """Clean-label collisions: rows keep their label but their embedding sits on another digit's row."""
    E = X / 16.0
    rows = rng.choice(np.flatnonzero(y == 3), 12, replace=False)
    targets = rng.choice(np.flatnonzero(y == 8), len(rows), replace=False)
    E = E.copy()
    E[rows] = E[targets] + rng.normal(0, 0.01, (len(rows), 64))
    return X, y, E, rows, {"embedding_column": "emb"}


def _duplicates(X, y, rng):
    """One crafted digit replicated: 20 exact copies of rows (the originals, read first, stay)."""
    rows = rng.choice(len(y), 20, replace=False)
    return np.vstack([X, X[rows]]), np.concatenate([y, y[rows]]), None, np.arange(len(y), len(y) + 20), {}


POISON = {"outlier": _outlier, "label_flip": _label_flip, "backdoor": _backdoor,
          "feature_collision": _feature_collision, "duplicates": _duplicates}
"""Detector name -> planting of the poison it is meant for: (X, y, rng) -> (X, y, embedding, poisoned rows, params)."""

_CACHE: dict[str, SimpleNamespace] = {}


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


@pytest.fixture(params=NAMES)
def case(request, digits):
    """One detector fitted on digits carrying its poison, and its scores on the same rows."""
    name = request.param
    if name not in POISON:
        pytest.fail(f"detector {name!r} is registered but has no POISON entry in {__file__}: plant the poison it is for")
    if name not in _CACHE:
        X, y, E, rows, settings = POISON[name](*digits, np.random.default_rng(11))
        cls = REGISTRY[name]
        params = dataclasses.replace(cls.Params(), **settings)
        params.validate()
        batch = make_batch(X, y, E)
        detector = cls()
        state = detector.fit(batch, params, SEED)
        assert not isinstance(state, Skipped), state
        truth = np.zeros(batch.n, dtype=bool)
        truth[rows] = True
        _CACHE[name] = SimpleNamespace(name=name, cls=cls, detector=detector, params=params, batch=batch,
                                       state=state, scores=detector.score(batch, state), truth=truth)
    return _CACHE[name]


def take(batch: Batch, rows) -> Batch:
    rows = np.asarray(rows)
    return Batch(batch.X[rows], batch.labels[rows], batch.keys[rows], batch.ids[rows], batch.feature_names,
                 None if batch.embedding is None else batch.embedding[rows])


def thresholds_of(scores: Scores) -> np.ndarray:
    n = len(scores.score)
    return np.full(n, scores.threshold) if scores.thresholds is None else np.asarray(scores.thresholds)


def assert_same_scores(a: Scores, b: Scores, *, rounding: bool = False) -> None:
    """Same scores, flags, thresholds and evidence. ``rounding``: scores of a batch scored in other
    shapes may differ in the last bits (BLAS blocks a 600-row product differently from an 1800-row
    one), so they are compared to 1e-12 relative; flags and evidence must still be identical."""
    if rounding:
        np.testing.assert_allclose(a.score, b.score, rtol=1e-12, atol=1e-15, equal_nan=True)
    else:
        np.testing.assert_array_equal(a.score, b.score)  # NaN equals NaN here
    np.testing.assert_array_equal(a.flagged, b.flagged)
    np.testing.assert_array_equal(thresholds_of(a), thresholds_of(b))
    assert json.dumps(a.evidence, sort_keys=True) == json.dumps(b.evidence, sort_keys=True)


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name", NAMES)
def test_detector_declares_the_contract(name):
    cls = REGISTRY[name]
    assert issubclass(cls, Detector) and cls.name == name
    check_declarations(cls)
    assert cls.needs <= INPUTS and isinstance(cls.row_independent, bool)
    params = cls.Params()
    assert isinstance(params, DetectorParams) and isinstance(params.enabled, bool)
    params.validate()  # the defaults are valid
    assert cls().needs_for(params) <= INPUTS


def _numeric_settings(params) -> list[str]:
    return [f.name for f in dataclasses.fields(params)
            if isinstance(getattr(params, f.name), (int, float)) and not isinstance(getattr(params, f.name), bool)]


@pytest.mark.parametrize("name", NAMES)
def test_params_validate_rejects_a_bad_value(name):
    params = REGISTRY[name].Params()
    settings = _numeric_settings(params)
    assert settings, f"{name} has no numeric setting to check"
    for key in settings:
        for bad in ("not-a-number", -10**12):
            with pytest.raises(ConfigError, match=rf"detectors\.{name}\.{key}"):
                dataclasses.replace(params, **{key: bad}).validate()


def test_a_detector_missing_a_declaration_is_refused_when_defined():
    with pytest.raises(TypeError, match="row_independent"):
        class NoFlag(Detector):  # noqa: F841 - defining it is the test
            name = "no_flag"
            needs = frozenset({"features"})
            Params = REGISTRY["outlier"].Params

            def fit(self, sample, params, seed): ...
            def score(self, batch, state): ...
            def summary(self, state): ...

    with pytest.raises(TypeError, match="needs"):
        class UnknownInput(Detector):  # noqa: F841
            name = "unknown_input"
            needs = frozenset({"features", "audio"})
            row_independent = True
            Params = REGISTRY["outlier"].Params

            def fit(self, sample, params, seed): ...
            def score(self, batch, state): ...
            def summary(self, state): ...


# --------------------------------------------------------------------------- fitted state and scoring


def test_state_pickles_and_scores_identically(case):
    again = pickle.loads(pickle.dumps(case.state))
    assert_same_scores(case.detector.score(case.batch, again), case.scores)


def test_empty_batch_scores_to_empty_arrays(case):
    batch = take(case.batch, np.zeros(0, dtype=np.int64))
    scores = case.detector.score(batch, case.state)
    assert scores.score.shape == (0,) and scores.flagged.shape == (0,) and scores.flagged.dtype == bool
    assert scores.thresholds is None or np.shape(scores.thresholds) == (0,)
    assert scores.evidence == {}


def test_scoring_is_pure(case):
    before = [a.copy() for a in (case.batch.X, case.batch.labels, case.batch.keys, case.batch.ids)]
    assert_same_scores(case.detector.score(case.batch, case.state), case.scores)
    for a, b in zip(before, (case.batch.X, case.batch.labels, case.batch.keys, case.batch.ids)):
        np.testing.assert_array_equal(a, b)  # the batch is not mutated


def test_row_independent_scoring_splits_and_reorders(case):
    if not case.cls.row_independent:
        pytest.skip(f"{case.name} does not declare row-independent scoring")
    n = case.batch.n
    cut = n // 3
    parts = [case.detector.score(take(case.batch, np.arange(a, b)), case.state) for a, b in ((0, cut), (cut, n))]
    evidence = dict(parts[0].evidence)
    evidence.update({cut + i: e for i, e in parts[1].evidence.items()})
    joined = Scores(np.concatenate([p.score for p in parts]), np.concatenate([p.flagged for p in parts]),
                    parts[0].threshold, evidence,
                    None if parts[0].thresholds is None else np.concatenate([p.thresholds for p in parts]))
    assert_same_scores(joined, case.scores, rounding=True)
    order = np.random.default_rng(3).permutation(n)
    shuffled = case.detector.score(take(case.batch, order), case.state)
    np.testing.assert_allclose(shuffled.score, case.scores.score[order], rtol=1e-12, atol=1e-15, equal_nan=True)
    np.testing.assert_array_equal(shuffled.flagged, case.scores.flagged[order])


def test_planted_poison_scores_above_its_threshold_and_clean_rows_pass(case):
    """Direction, not quality: the quality bars live in each detector's own tests and in bench/."""
    s, truth = case.scores, case.truth
    assert s.score.shape == (case.batch.n,) and s.flagged.dtype == bool
    thresholds = thresholds_of(s)
    assert np.all(s.score[s.flagged] > thresholds[s.flagged]), "a flagged row must score above its threshold"
    caught = s.flagged[truth].mean()
    false_alarms = s.flagged[~truth].mean()
    assert caught >= 0.7, f"{case.name} caught {caught:.0%} of the poison it is meant for"
    assert false_alarms <= 0.05, f"{case.name} flagged {false_alarms:.1%} of clean rows"
    scored = np.isfinite(s.score)
    assert np.median(s.score[truth & scored]) > np.median(s.score[~truth & scored])


def test_evidence_and_summary_are_json(case):
    flagged = set(np.flatnonzero(case.scores.flagged).tolist())
    assert flagged and set(case.scores.evidence) == flagged  # evidence for flagged rows only, all of them
    for i in flagged:
        json.dumps(case.scores.evidence[i])
    json.dumps(case.detector.summary(case.state))


# --------------------------------------------------------------------------- how the report shows it


def _reason(name: str, evidence: dict) -> dict:
    return {"detector": name, "code": name, "action": "quarantine", "score": 1.0, "threshold": 0.5, "evidence": evidence}


def test_registered_colours_are_distinct():
    colours = [cls.colour for cls in REGISTRY.values() if cls.colour is not None]
    assert len(colours) == len(set(colours)), colours


def test_a_report_hook_of_the_wrong_shape_is_refused_when_defined():
    base = dict(name="hooked", needs=frozenset({"features"}), row_independent=True, Params=REGISTRY["outlier"].Params,
                fit=lambda self, sample, params, seed: None, score=lambda self, batch, state: None,
                summary=lambda self, state: {})
    for hook, bad in (("colour", "orange"), ("neighbour_keys", "nearest"), ("feature_keys", ["pattern"]),
                      ("label_matrix", None)):
        with pytest.raises(TypeError, match=hook):
            type("Hooked", (Detector,), {**base, hook: bad})


def test_describe_puts_its_own_evidence_in_words(case):
    """Every flagged row's evidence reads as plain-text lines, and the report shows those lines."""
    from sanitizer.report.evidence import MAX_LINE, summarise_reasons

    for i in np.flatnonzero(case.scores.flagged):
        evidence = json.loads(json.dumps(case.scores.evidence[int(i)]))  # as the report reads it back
        lines = case.detector.describe(evidence)
        if lines is None:  # no hook: the report's generic summary
            continue
        assert lines and all(isinstance(line, str) and line for line in lines), lines
        (shown,) = summarise_reasons([_reason(case.name, evidence)])
        assert shown["lines"] == [line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…" for line in lines]


def test_neighbour_and_feature_keys_name_what_the_evidence_holds(case):
    """The declared keys appear in the evidence, list rows of this batch / its features, and reach the report."""
    from sanitizer.report.evidence import named_features, referenced

    evidence = [json.loads(json.dumps(case.scores.evidence[int(i)])) for i in np.flatnonzero(case.scores.flagged)]
    ids, features = set(case.batch.ids.tolist()), set(case.batch.feature_names)
    for hook, key, known in (("neighbour_keys", "id", ids), ("feature_keys", "feature", features)):
        for declared in getattr(case.cls, hook) or ():
            listed = [item for ev in evidence for item in ev.get(declared) or ()]
            assert listed, f"{case.name}.{hook} names {declared!r}, which no flagged row's evidence holds"
            assert {str(item[key]) for item in listed} <= {str(v) for v in known}
    refs = [ref for ev in evidence for ref in referenced([_reason(case.name, ev)])]
    assert {r["id"] for r in refs} <= ids and all(r["detector"] == case.name for r in refs)
    if case.cls.neighbour_keys:
        assert refs, f"{case.name} declares neighbour keys but the report finds no reference rows"
    named = {f for ev in evidence for f in named_features([_reason(case.name, ev)])}
    assert named <= features and bool(named) == bool(case.cls.feature_keys)


@pytest.mark.parametrize("case", [n for n in NAMES if REGISTRY[n].label_matrix], indirect=True)
def test_label_matrix_reads_a_suggested_label(case):
    """A detector that feeds the label matrix gives the given and the suggested label of every flagged row."""
    flagged = [case.scores.evidence[int(i)] for i in np.flatnonzero(case.scores.flagged)]
    assert flagged and all("suggested_label" in ev and "given_label" in ev for ev in flagged)


# --------------------------------------------------------------------------- fitting in the pipeline


class _Scripted(Detector):
    """A detector whose fit does what the test says: return Skipped, raise, or return None."""

    name = "scripted"
    needs = frozenset({"features"})
    row_independent = True
    Params = REGISTRY["outlier"].Params
    outcome: object = None

    def fit(self, sample, params, seed):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def score(self, batch, state):
        return Scores(np.zeros(batch.n), np.zeros(batch.n, dtype=bool), 1.0)

    def summary(self, state):
        return {}


def _fit_scripted(monkeypatch, outcome):
    monkeypatch.setitem(REGISTRY, "scripted", _Scripted)
    monkeypatch.setattr(_Scripted, "outcome", outcome)
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    sample = make_batch(X, y)
    plan = SimpleNamespace(feature_names=["px0", "px1"], embedding=None)
    config = Config(detectors={"scripted": _Scripted.Params()})
    return fit_detectors(sample, plan, config)


def test_only_skipped_skips_a_detector(monkeypatch):
    states = _fit_scripted(monkeypatch, Skipped("one class"))
    assert states == {"scripted": Skipped("one class")}


@pytest.mark.parametrize("error", [ValueError("boom"), FloatingPointError("overflow"), ConfigError("bad setting")])
def test_a_fit_that_raises_fails_the_run_naming_the_detector(monkeypatch, error):
    with pytest.raises(SanitizerError, match="'scripted'") as info:
        _fit_scripted(monkeypatch, error)
    assert str(error) in str(info.value)
    assert type(info.value) is (type(error) if isinstance(error, SanitizerError) else SanitizerError)


def test_a_fit_that_returns_nothing_fails_naming_the_detector(monkeypatch):
    with pytest.raises(TypeError, match="'scripted'.*Skipped"):
        _fit_scripted(monkeypatch, None)


# --------------------------------------------------------------------------- planning from declared needs


def test_planning_reads_the_embedding_column_a_detector_needs(monkeypatch):
    from sanitizer.beam.plan import _embedding_columns

    assert _embedding_columns(build_config({})) == {}
    config = build_config({"detectors": {"feature_collision": {"embedding_column": "emb"}}})
    assert _embedding_columns(config) == {"emb": "feature_collision"}
    off = build_config({"detectors": {"feature_collision": {"embedding_column": "emb", "enabled": False}}})
    assert _embedding_columns(off) == {}
