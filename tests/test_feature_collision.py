"""The ``feature_collision`` detector, its embeddings and the poison crafting it is measured with.

A small torch backbone (MLP 64 -> 128 -> 32, like bench/feature_collision_quality.py)
is trained once per module on a clean 80% training split of the digits and saved
as TorchScript: the victim's feature extractor. Poison Frogs feature-collision
poisons are crafted against it with :func:`sanitizer.simulate.craft_feature_collision`
(targets from the held-out 20%, bases from the training split keeping their own,
correct label), then the detector and the ``sanitize run`` CLI must find them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import (
    DIGIT_FEATURES,
    load_json,
    pixels_array,
    read_dir,
    run_cli,
    sha256_file,
    write_digits_parquet,
)
from torch import nn

import sanitizer.representations.embeddings as embeddings
from sanitizer.data.reasons import parse as parse_reasons
from sanitizer.detectors import REGISTRY, Batch, Scores, Skipped
from sanitizer.detectors.feature_collision import FeatureCollisionDetector
from sanitizer.detectors.feature_collision.detector import FeatureCollisionParams, FeatureCollisionState
from sanitizer.representations.embeddings import BATCH_ROWS, TorchScriptEmbedder
from sanitizer.errors import ConfigError
from sanitizer.data.batch import mix64
from sanitizer.simulate import craft_bullseye_polytope, craft_feature_collision

ID = "image_id"
SEED = 0
EPOCHS = 40
STEPS = 300
BETA = 1.0  # proximity weight: with the bench's 0.25 some poisons drift as far as another digit of the class
PER_TARGET = 6  # poisons aimed at each of the three targets of the main attack
CLUSTER = 16  # poisons aimed at the single target of the cluster attack (> a naive k of 10)


@contextlib.contextmanager
def one_torch_thread():
    """Train and craft on one thread: tiny models, and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Backbone(nn.Module):
    """Takes raw digits pixels (0..16), the pipeline's feature vector, to a 32-d embedding."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x / 16.0)


def embed_with(module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(np.asarray(X), dtype=torch.float32)).numpy().astype(np.float64)


def make_batch(X: np.ndarray, y: np.ndarray, ids, embedding: np.ndarray | None = None) -> Batch:
    """A detectors Batch as the pipeline builds it (and as bench/label_flip_quality.py does)."""
    n = len(y)
    return Batch(
        np.ascontiguousarray(X, dtype=np.float64),
        np.array([str(v) for v in y], dtype=object),
        mix64(np.arange(n, dtype=np.uint64) + np.uint64(1_000_003)),
        np.asarray(ids, dtype=object),
        DIGIT_FEATURES,
        embedding,
    )


def fit_and_score(batch: Batch, **params):
    if params.get("embedding_model"):  # a model runs only under its pinned sha256
        params.setdefault("embedding_model_sha256", sha256_file(params["embedding_model"]))
    det = FeatureCollisionDetector()
    state = det.fit(batch, FeatureCollisionParams(**params), SEED)
    assert isinstance(state, FeatureCollisionState), state
    return state, det.score(batch, state)


def signal_mask(scores: Scores, n: int, signal: str) -> np.ndarray:
    return np.array([signal in scores.evidence.get(i, {}).get("signals", []) for i in range(n)])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def split(digits):
    from sklearn.model_selection import train_test_split

    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=SEED)
    return X_train, X_test, y_train, y_test


@pytest.fixture(scope="module")
def backbone(split, tmp_path_factory):
    """The victim's backbone, trained on the clean training split and saved as TorchScript."""
    X_train, X_test, y_train, y_test = split
    torch.manual_seed(SEED)
    body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
    model = nn.Sequential(body, nn.Linear(32, 10))
    Xt = torch.tensor(X_train / 16.0, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.long)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(SEED)
    with one_torch_thread():
        for _ in range(EPOCHS):
            order = torch.randperm(len(Xt), generator=generator)
            for a in range(0, len(Xt), 64):
                idx = order[a : a + 64]
                optimiser.zero_grad()
                nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
                optimiser.step()
    module = Backbone(body).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        test_pred = model(torch.tensor(X_test / 16.0, dtype=torch.float32)).argmax(1).numpy()
    accuracy = float((test_pred == y_test).mean())
    assert accuracy >= 0.9, f"the test backbone is too weak to attack: held-out accuracy {accuracy:.3f}"
    path = tmp_path_factory.mktemp("backbone") / "backbone.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    return {"module": module, "path": str(path), "test_pred": test_pred, "body": body, "head": model[1]}


def craft(backbone, split, rng, target_index: int, count: int):
    """Poisons from ``count`` training images of a random other class, aimed at one held-out target."""
    X_train, X_test, y_train, y_test = split
    target_class = int(y_test[target_index])
    base_class = int(rng.choice([c for c in range(10) if c != target_class]))
    bases = X_train[rng.choice(np.flatnonzero(y_train == base_class), size=count, replace=False)]
    with one_torch_thread():
        poisons = craft_feature_collision(backbone["module"], bases, X_test[target_index], beta=BETA, steps=STEPS,
                                          lr=0.05, bounds=(0.0, 16.0), seed=SEED)
    return {"bases": bases, "poisons": poisons, "base_class": base_class, "target_class": target_class,
            "target": X_test[target_index]}


def correctly_classified_targets(backbone, split, rng, n: int) -> np.ndarray:
    _, _, _, y_test = split
    return rng.choice(np.flatnonzero(backbone["test_pred"] == y_test), size=n, replace=False)


def poisoned_set(split, groups):
    """The training split with the poison groups appended: X, y, ids, is_poison, per-row group index (-1 clean)."""
    X_train, _, y_train, _ = split
    X = np.concatenate([X_train] + [g["poisons"] for g in groups])
    y = np.concatenate([y_train] + [np.full(len(g["poisons"]), g["base_class"]) for g in groups])
    group = np.concatenate([np.full(len(y_train), -1)] + [np.full(len(g["poisons"]), i) for i, g in enumerate(groups)])
    ids = np.array([f"img-{i:05d}" for i in range(len(y))], dtype=object)
    return X, y.astype(np.int64), ids, group >= 0, group


@pytest.fixture(scope="module")
def attack(backbone, split):
    """Three held-out targets, six poisons at each, appended to the clean training split."""
    rng = np.random.default_rng(SEED)
    groups = [craft(backbone, split, rng, int(t), PER_TARGET)
              for t in correctly_classified_targets(backbone, split, rng, 3)]
    X, y, ids, is_poison, group = poisoned_set(split, groups)
    return {"groups": groups, "X": X, "y": y, "ids": ids, "is_poison": is_poison, "group": group,
            "batch": make_batch(X, y, ids)}


@pytest.fixture(scope="module")
def attack_fit(attack, backbone):
    return fit_and_score(attack["batch"], embedding_model=backbone["path"])


@pytest.fixture(scope="module")
def cluster(backbone, split):
    """Sixteen poisons at ONE target: a cluster bigger than a naive k of 10."""
    rng = np.random.default_rng(SEED + 1)
    (target,) = correctly_classified_targets(backbone, split, rng, 1)
    groups = [craft(backbone, split, rng, int(target), CLUSTER)]
    X, y, ids, is_poison, _ = poisoned_set(split, groups)
    return {"group": groups[0], "is_poison": is_poison, "batch": make_batch(X, y, ids)}


@pytest.fixture(scope="module")
def bullseye(backbone, split):
    """Bullseye Polytope: three targets, eight poisons each, only their MEAN driven onto the target."""
    X_train, X_test, y_train, _ = split
    rng = np.random.default_rng(SEED + 2)
    groups = []
    for t in correctly_classified_targets(backbone, split, rng, 3):
        g = craft(backbone, split, rng, int(t), 0)  # picks the base class; poisons crafted below
        bases = X_train[rng.choice(np.flatnonzero(y_train == g["base_class"]), size=8, replace=False)]
        with one_torch_thread():
            poisons = craft_bullseye_polytope(backbone["module"], bases, X_test[t], eps=4.0, steps=200, lr=0.3,
                                              bounds=(0.0, 16.0), seed=SEED)
        groups.append(dict(g, bases=bases, poisons=poisons))
    X, y, ids, is_poison, group = poisoned_set(split, groups)
    return {"groups": groups, "is_poison": is_poison, "group": group, "batch": make_batch(X, y, ids)}


class Victim(nn.Module):
    """The victim as ART sees it: [0, 1] pixels in, logits out, its feature layer the submodule 'features'."""

    def __init__(self, body, head):
        super().__init__()
        self.features = body
        self.head = head

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def art_collision(backbone, split):
    """ART's own FeatureCollisionAttack (third-party attack code): two targets, eight poisons each."""
    from art.attacks.poisoning import FeatureCollisionAttack
    from art.estimators.classification import PyTorchClassifier

    X_train, X_test, y_train, _ = split
    rng = np.random.default_rng(SEED + 3)
    # A copy: ART leaves forward hooks on the modules it is given, and the shared backbone must stay scriptable.
    victim = Victim(copy.deepcopy(backbone["body"]), copy.deepcopy(backbone["head"]))
    classifier = PyTorchClassifier(model=victim, loss=nn.CrossEntropyLoss(),
                                   input_shape=(64,), nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    groups = []
    for t in correctly_classified_targets(backbone, split, rng, 2):
        g = craft(backbone, split, rng, int(t), 0)
        bases = X_train[rng.choice(np.flatnonzero(y_train == g["base_class"]), size=8, replace=False)]
        attack = FeatureCollisionAttack(classifier, (X_test[t : t + 1] / 16.0).astype(np.float32), "features",
                                        learning_rate=0.1, max_iter=80, similarity_coeff=32.0, verbose=False)
        with one_torch_thread():
            poisons, _ = attack.poison((bases / 16.0).astype(np.float32))
        groups.append(dict(g, bases=bases, poisons=np.asarray(poisons, dtype=np.float64) * 16.0))
    X, y, ids, is_poison, group = poisoned_set(split, groups)
    return {"groups": groups, "is_poison": is_poison, "group": group, "batch": make_batch(X, y, ids)}


def feature_ratio(backbone, g) -> float:
    """How far the group's feature mean moved toward its target: 1 = not at all, 0 = onto it."""
    goal = embed_with(backbone["module"], g["target"][None])[0]
    before = np.linalg.norm(embed_with(backbone["module"], g["bases"]).mean(axis=0) - goal)
    after = np.linalg.norm(embed_with(backbone["module"], g["poisons"]).mean(axis=0) - goal)
    return float(after / before)


# --------------------------------------------------------------------------- 1. poisons caught, clean data kept


def test_registry_holds_the_detector():
    assert REGISTRY["feature_collision"] is FeatureCollisionDetector


def assert_caught(scores, truth, recall_at_least=0.9, fpr_at_most=0.01):
    recall = scores.flagged[truth].mean()
    false_positive_rate = scores.flagged[~truth].mean()
    assert recall >= recall_at_least, f"recall on crafted poisons {recall:.3f}"
    assert false_positive_rate <= fpr_at_most, f"false-positive rate on clean rows {false_positive_rate:.4f}"


def test_crafted_poisons_are_caught_and_clean_rows_kept(attack, attack_fit):
    state, scores = attack_fit
    truth = attack["is_poison"]
    assert truth.sum() == 3 * PER_TARGET
    assert scores.score.shape == truth.shape and scores.flagged.dtype == bool
    assert np.all(np.isfinite(scores.score)) and np.all(scores.score >= 0)
    assert_caught(scores, truth)
    # Flagged rows and only those carry evidence, and every flag crossed the reported threshold.
    assert set(scores.evidence) == set(np.flatnonzero(scores.flagged).tolist())
    assert scores.threshold == 1.0 and np.all(scores.score[scores.flagged] > scores.threshold)
    assert np.all(scores.score[~scores.flagged] <= scores.threshold)


def test_bullseye_polytope_poisons_part_way_to_their_target_are_caught(bullseye, backbone):
    """Only the poisons' mean reaches the target: one by one they stop part-way, yet they are caught."""
    ratios = [feature_ratio(backbone, g) for g in bullseye["groups"]]
    assert max(ratios) <= 0.5, f"the attack is too weak to test with: feature-mean ratios {np.round(ratios, 2)}"
    per_poison = np.concatenate([
        np.linalg.norm(embed_with(backbone["module"], g["poisons"]) - embed_with(backbone["module"], g["target"][None]),
                       axis=1)
        / np.linalg.norm(embed_with(backbone["module"], g["bases"]) - embed_with(backbone["module"], g["target"][None]),
                         axis=1)
        for g in bullseye["groups"]])
    assert np.mean(per_poison > 0.3) >= 0.25, "some poisons must stop well short of the target on their own"
    state, scores = fit_and_score(bullseye["batch"], embedding_model=backbone["path"])
    assert_caught(scores, bullseye["is_poison"])
    n = len(bullseye["is_poison"])
    by_margins = signal_mask(scores, n, "margin") | signal_mask(scores, n, "group")
    assert by_margins[bullseye["is_poison"]].mean() >= 0.8, "the class and group margins do the catching"


def test_art_feature_collision_poisons_are_caught(art_collision, backbone):
    ratios = [feature_ratio(backbone, g) for g in art_collision["groups"]]
    assert max(ratios) <= 0.6, f"ART's attack barely moved its poisons: ratios {np.round(ratios, 2)}"
    _, scores = fit_and_score(art_collision["batch"], embedding_model=backbone["path"])
    assert_caught(scores, art_collision["is_poison"])


def test_fitted_state_uses_the_torchscript_backbone(attack, attack_fit, backbone):
    state, _ = attack_fit
    n = len(attack["y"])
    assert state.k == 51  # 2 * 25 + 1
    assert state.summary["k"] == 51 and state.summary["max_cluster_defended"] == 25
    assert state.summary["reference_rows"] == n
    emb = state.summary["embedding"]
    assert emb["source"] == "torchscript" and emb["dim"] == 32 and emb["path"] == backbone["path"]
    assert emb["sha256"] == sha256_file(backbone["path"])
    assert state.classes == tuple(str(c) for c in range(10))
    # One space, embedded with the backbone itself; every class big enough to be calibrated on its own.
    (space,) = state.spaces
    assert isinstance(space.embedder, TorchScriptEmbedder)
    assert np.allclose(space.embedder.embed(attack["X"]), embed_with(backbone["module"], attack["X"]), atol=1e-5)
    assert state.summary["calibrated_on_own_margins"] == list(state.classes)


def test_evidence_of_a_flagged_poison_points_at_the_target(attack, attack_fit):
    state, scores = attack_fit
    ref_ids = set(state.spaces[0].ids.tolist())
    caught = np.flatnonzero(scores.flagged & attack["is_poison"])
    at_target = 0
    for i in caught:
        g = attack["groups"][attack["group"][i]]
        ev = scores.evidence[int(i)]
        assert ev["given_label"] == str(g["base_class"])
        assert ev["signals"] and set(ev["signals"]) <= {"margin", "group", "cluster", "deep_knn"}
        assert ev["toward_label"] != ev["given_label"]
        assert ev["other_label"] in state.classes and ev["other_label"] != ev["given_label"]
        at_target += ev["toward_label"] == str(g["target_class"])
        assert ev["k"] == state.k and ev["threshold_nats"] == state.params.threshold
        # The margin's distances explain it: the record is far from its own class compared with what is typical.
        assert ev["own_distance"] > ev["typical_own_distance"] or ev["margin"] > -0.1, ev
        assert len(ev["nearest"]) == state.params.top_neighbours
        for nb in ev["nearest"]:
            assert nb["id"] in ref_ids and nb["id"] != attack["ids"][i]  # never its own neighbour
            assert nb["label"] in state.classes and nb["distance"] >= 0
        assert sum(ev["votes"].values()) == state.k
    assert len(caught) >= 0.9 * attack["is_poison"].sum()
    # Most name their target's class; a target between two close classes (1 and 8 here) may draw the other.
    assert at_target >= 2 / 3 * len(caught), f"{at_target} of {len(caught)} point at their target's class"


def test_scoring_is_a_pure_function_of_batch_and_state(attack, attack_fit):
    """Scoring a slice gives the same verdict as scoring the whole set (a worker sees one batch)."""
    state, scores = attack_fit
    det = FeatureCollisionDetector()
    b = attack["batch"]
    part = slice(len(b.keys) - 200, len(b.keys))  # the tail holds every poison
    sub = Batch(b.X[part], b.labels[part], b.keys[part], b.ids[part], b.feature_names)
    again = det.score(sub, state)
    assert np.array_equal(again.flagged, scores.flagged[part])
    assert np.allclose(again.score, scores.score[part])


def test_records_outside_the_sample_are_judged_like_sample_rows(attack, backbone):
    """Fit on a sample without the poisons, score everything: the poisons are still caught."""
    b = attack["batch"]
    clean = ~attack["is_poison"]
    sample = Batch(b.X[clean], b.labels[clean], b.keys[clean], b.ids[clean], b.feature_names)
    det = FeatureCollisionDetector()
    params = FeatureCollisionParams(embedding_model=backbone["path"], embedding_model_sha256=sha256_file(backbone["path"]))
    state = det.fit(sample, params, SEED)
    assert_caught(det.score(b, state), attack["is_poison"])


# --------------------------------------------------------------------------- 2. clusters and the k rule


def test_a_cluster_larger_than_the_margin_rank_is_caught(cluster, backbone):
    """Sixteen poisons on one target are each other's ten nearest own-class rows: the cluster margin (read
    past max_cluster rows) and Deep k-NN with the k rule see past them; with max_cluster 4 they cannot."""
    truth, batch = cluster["is_poison"], cluster["batch"]
    n = len(truth)
    assert truth.sum() == CLUSTER
    state, scores = fit_and_score(batch, embedding_model=backbone["path"])
    assert state.k == 51
    assert_caught(scores, truth)
    past_cluster = signal_mask(scores, n, "cluster") | signal_mask(scores, n, "deep_knn")
    assert past_cluster[truth].mean() >= 0.9
    margin_only = signal_mask(scores, n, "margin")[truth].mean()
    assert margin_only <= 0.5, f"the rank-10 margin alone caught {margin_only:.3f} of a 16-poison cluster"

    small_state, small = fit_and_score(batch, embedding_model=backbone["path"], max_cluster=4)
    assert small_state.k == 9 and small_state.summary["max_cluster_defended"] == 4
    assert small.flagged[truth].mean() <= scores.flagged[truth].mean() - 0.3


def test_max_cluster_sets_k(attack, backbone):
    state, _ = fit_and_score(attack["batch"], embedding_model=backbone["path"], max_cluster=5)
    assert state.k == 11
    summary = FeatureCollisionDetector().summary(state)
    assert summary["k"] == 11 and summary["max_cluster_defended"] == 5
    assert "2 * max_cluster + 1 = 11" in summary["k_rule"]
    assert "capped" not in summary["k_rule"]


def test_a_small_class_is_not_over_flagged(split, backbone):
    """A 20-row class among 140-row classes: ranks and votes are normalised by class size."""
    X_train, _, y_train, _ = split
    rare = np.flatnonzero(y_train == 3)[:20]
    keep = np.sort(np.concatenate([np.flatnonzero(y_train != 3), rare]))
    X, y = X_train[keep], y_train[keep]
    batch = make_batch(X, y, [f"img-{i}" for i in range(len(y))])
    state, scores = fit_and_score(batch, embedding_model=backbone["path"])
    assert state.k == 51  # the k rule is not cut down by the small class any more
    assert scores.flagged[y == 3].mean() <= 0.05, f"{scores.flagged[y == 3].sum()} of 20 clean rows flagged"
    assert scores.flagged.mean() <= 0.01
    assert "3" not in state.summary["calibrated_on_own_margins"]  # too small: calibrated over all rows
    # The plain k = 51 plurality vote (what the k rule alone would do) loses most of the class.
    E = embed_with(backbone["module"], X)
    d = np.linalg.norm(E[:, None] - E[None], axis=2)
    np.fill_diagonal(d, np.inf)
    votes = np.stack([np.bincount(y[r], minlength=10) for r in np.argsort(d, axis=1)[:, :51]])
    plurality = votes[np.arange(len(y)), y] < votes.max(axis=1)
    assert plurality[y == 3].mean() >= 0.5


def test_a_class_with_one_reference_row_is_not_judged(split, backbone):
    """A class the sample holds once cannot be measured against itself: NaN score, never flagged."""
    X_train, X_test, y_train, _ = split
    X = np.concatenate([X_train, X_test[:1]])
    y = np.concatenate([y_train.astype(str), ["rare"]])
    batch = make_batch(X, y, [f"img-{i}" for i in range(len(y))])
    state, scores = fit_and_score(batch, embedding_model=backbone["path"])
    assert "rare" in state.classes
    assert np.isnan(scores.score[-1]) and not scores.flagged[-1]
    assert np.isfinite(scores.score[:-1]).all() and scores.flagged[:-1].mean() <= 0.01


def test_clean_digits_pass(split, backbone):
    X_train, _, y_train, _ = split
    batch = make_batch(X_train, y_train, [f"img-{i}" for i in range(len(y_train))])
    _, scores = fit_and_score(batch, embedding_model=backbone["path"])
    assert scores.flagged.mean() <= 0.01
    assert max(scores.flagged[y_train == c].mean() for c in range(10)) <= 0.03


def test_retired_settings_say_what_replaced_them():
    from sanitizer.settings.config import build_config

    for key in ("centroid_ratio", "input_neighbours"):
        with pytest.raises(ConfigError, match=f"feature_collision.{key}' is no longer a setting"):
            build_config({"input": "x.parquet", "output": "out", "label_column": "label",
                          "detectors": {"feature_collision": {key: 1}}})


def test_fit_skips_data_it_cannot_judge(split):
    X_train, _, y_train, _ = split
    det = FeatureCollisionDetector()
    ones = y_train == 1
    one_class = make_batch(X_train[ones], y_train[ones], [f"a{i}" for i in range(int(ones.sum()))])
    skipped = det.fit(one_class, FeatureCollisionParams(), SEED)
    assert isinstance(skipped, Skipped) and "two classes" in skipped.reason
    tiny = make_batch(X_train[:10], y_train[:10], [f"b{i}" for i in range(10)])
    skipped = det.fit(tiny, FeatureCollisionParams(), SEED)
    assert isinstance(skipped, Skipped) and "20" in skipped.reason
    no_column = make_batch(X_train[:200], y_train[:200], [f"c{i}" for i in range(200)])
    skipped = det.fit(no_column, FeatureCollisionParams(embedding_column="emb"), SEED)
    assert isinstance(skipped, Skipped) and "emb" in skipped.reason


def test_params_refuse_both_embedding_sources():
    with pytest.raises(ConfigError, match="not both"):
        FeatureCollisionParams(embedding_model="m.pt", embedding_column="emb").validate()
    with pytest.raises(ConfigError, match="max_cluster"):
        FeatureCollisionParams(max_cluster=0).validate()


# --------------------------------------------------------------------------- 3. TorchScript round trip


def test_torchscript_round_trip(backbone, digits, tmp_path):
    X, _ = digits
    path = tmp_path / "roundtrip.pt"
    torch.jit.save(torch.jit.script(backbone["module"]), str(path))
    embedder = TorchScriptEmbedder.open(str(path), 64, sha256_file(path))
    assert embedder.dim == 32 and embedder.path == str(path)
    assert embedder.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert embedder.describe() == {"source": "torchscript", "path": str(path), "sha256": embedder.sha256, "dim": 32}

    rng = np.random.default_rng(5)
    big = np.clip(X[rng.integers(len(X), size=BATCH_ROWS + 1500)] + rng.normal(0, 0.5, (BATCH_ROWS + 1500, 64)),
                  0, 16)
    assert len(big) > BATCH_ROWS
    batches = [X[:1], X[:7], X, big]
    for batch in batches:
        got = embedder.embed(batch)
        assert got.shape == (len(batch), 32) and got.dtype == np.float64
        assert np.allclose(got, embed_with(backbone["module"], batch), atol=1e-5)

    # What a fresh worker does: unpickle the embedder (path + sha256 only) and load the module from the path.
    clone = pickle.loads(pickle.dumps(embedder))
    assert clone == embedder
    embeddings._CACHE.clear()
    for batch in batches:
        assert np.allclose(clone.embed(batch), embed_with(backbone["module"], batch), atol=1e-5)
    assert (str(path), embedder.sha256) in embeddings._CACHE


def test_a_model_file_changed_under_a_run_is_refused(backbone, tmp_path):
    path = tmp_path / "changing.pt"
    torch.jit.save(torch.jit.script(backbone["module"]), str(path))
    embedder = pickle.loads(pickle.dumps(TorchScriptEmbedder.open(str(path), 64, sha256_file(path))))
    other = Backbone(nn.Sequential(nn.Linear(64, 32), nn.ReLU())).eval()
    torch.jit.save(torch.jit.script(other), str(path))
    embeddings._CACHE.clear()
    with pytest.raises(ConfigError, match="changed"):
        embedder.embed(np.zeros((3, 64)))


def test_the_fitted_state_pickles(attack, attack_fit):
    """The state is a Beam side input: it must pickle and score the same after a fresh load of the model."""
    state, scores = attack_fit
    clone = pickle.loads(pickle.dumps(state))
    embeddings._CACHE.clear()
    again = FeatureCollisionDetector().score(attack["batch"], clone)
    assert np.array_equal(again.flagged, scores.flagged)
    assert np.allclose(again.score, scores.score)


# --------------------------------------------------------------------------- 4. bad models fail at planning


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory, digits):
    X, y = digits
    ids = [f"digit-{i:05d}" for i in range(300)]
    return write_digits_parquet(tmp_path_factory.mktemp("fc-small") / "small.parquet", X[:300], y[:300], ids)


def _bad_model(kind: str, directory) -> str:
    if kind == "missing":
        return str(directory / "no-such-model.pt")
    if kind == "not_torchscript":
        path = directory / "random.pt"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return str(path)
    path = directory / "ten-features.pt"  # a valid TorchScript model that expects 10 features, not 64
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(10, 4), nn.ReLU()).eval()), str(path))
    return str(path)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "cannot be read"),
        ("not_torchscript", "is not a loadable TorchScript file"),
        ("wrong_width", "failed on a batch of shape (2, 64)"),
    ],
)
def test_a_bad_model_fails_before_anything_is_published(kind, message, small_digits, tmp_path, capsys):
    model = _bad_model(kind, tmp_path)
    out = tmp_path / "out"
    pin = sha256_file(model) if kind != "missing" else "0" * 64
    rc = run_cli("run", "--input", small_digits, "--output", out, "--label-column", "label", "--id-column", ID,
                 "--embedding-model", model, "--embedding-model-sha256", pin, "-q")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "sanitize: error:" in err and "embedding model" in err
    assert model in err and message in err, err
    assert "Traceback" not in err
    assert not (out / "manifest.json").exists()
    assert not (out / "clean").exists()
    assert not (out / "quarantine").exists()
    assert not (out / "provenance.json").exists()


# --------------------------------------------------------------------------- 5. end to end through the CLI


def _held_by(quarantine: pa.Table, detector: str) -> dict[str, list[dict]]:
    """Quarantined id -> that detector's reason entries."""
    held = {}
    for rid, raw in zip(quarantine.column(ID).to_pylist(), quarantine.column("sanitizer_reasons").to_pylist()):
        mine = [r for r in parse_reasons(raw) if r["detector"] == detector]
        if mine:
            held[rid] = mine
    return held


@pytest.fixture(scope="module")
def cli_run(attack, backbone, tmp_path_factory):
    base = tmp_path_factory.mktemp("fc-cli")
    data = write_digits_parquet(base / "poisoned.parquet", attack["X"], attack["y"], attack["ids"])
    out = base / "out"
    rc = run_cli("run", "--input", data, "--output", out, "--label-column", "label", "--id-column", ID,
                 "--embedding-model", backbone["path"], "--embedding-model-sha256", sha256_file(backbone["path"]),
                 "--seed", str(SEED), "-q")
    return {"rc": rc, "out": out, "data": data}


def test_cli_quarantines_crafted_poisons(cli_run, attack):
    assert cli_run["rc"] == 0
    out = cli_run["out"]
    q = read_dir(out / "quarantine")
    assert "sanitizer_score_feature_collision" in q.column_names
    held = _held_by(q, "feature_collision")
    poison_ids = set(attack["ids"][attack["is_poison"]].tolist())
    caught = poison_ids & set(held)
    assert len(caught) >= 0.8 * len(poison_ids), f"{len(caught)} of {len(poison_ids)} poisons quarantined"
    scores = dict(zip(q.column(ID).to_pylist(), q.column("sanitizer_score_feature_collision").to_pylist()))
    for rid in caught:
        (reason,) = held[rid]
        assert reason["code"] == "feature_collision" and reason["action"] == "quarantine"
        assert reason["score"] > reason["threshold"] == 1.0
        assert reason["score"] == pytest.approx(scores[rid], abs=1e-5)
        assert reason["evidence"]["k"] == 51
        ev = reason["evidence"]
        assert ev["signals"] and ev["toward_label"] != ev["given_label"], ev
    clean_flagged = set(held) - poison_ids
    assert len(clean_flagged) <= 0.02 * (len(attack["ids"]) - len(poison_ids))


def test_cli_provenance_records_the_backbone_and_k(cli_run, backbone):
    assert cli_run["rc"] == 0
    prov = load_json(cli_run["out"] / "provenance.json")
    fc = prov["detectors"]["feature_collision"]
    assert fc["status"] == "fitted"
    assert fc["embedding"]["source"] == "torchscript"
    assert fc["embedding"]["sha256"] == sha256_file(backbone["path"])
    assert fc["embedding"]["path"] == backbone["path"] and fc["embedding"]["dim"] == 32
    assert fc["k"] == 51 and "2 * max_cluster + 1 = 51" in fc["k_rule"]
    assert prov["config"]["detectors"]["feature_collision"]["embedding_model"] == backbone["path"]
    assert prov["columns"]["features"] == ["pixels"]


# --------------------------------------------------------------------------- 6. the other embedding sources


def test_builtin_embedding_is_cross_fitted(attack):
    """No backbone: two networks, each trained on one half of the sample; a record is embedded by the
    network that never saw its half and compared with that half's rows only."""
    from sanitizer.representations.embeddings import BuiltinEmbedder

    with one_torch_thread():
        state, scores = fit_and_score(attack["batch"])
    emb = state.summary["embedding"]
    assert emb["source"] == "builtin" and emb["dim"] == 32 and emb["epochs"] == 30 and "cross_fitted" in emb
    assert len(emb["train_accuracy"]) == 2 and min(emb["train_accuracy"]) >= 0.9
    b = attack["batch"]
    half = FeatureCollisionDetector.fold_of(b.keys)
    assert 0.4 <= half.mean() <= 0.6
    assert len(state.spaces) == 2
    codes = np.unique(b.labels.astype(str), return_inverse=True)[1]
    for f, space in enumerate(state.spaces):
        # The space's reference is exactly the sample's half f...
        assert set(space.ids.tolist()) == set(b.ids[half == f].tolist())
        # ...and its network is the one trained on the OTHER half (same seed rule: retrain and compare).
        with one_torch_thread():
            again = BuiltinEmbedder.train(b.X[half != f], codes[half != f], SEED + f, epochs=30)
        for w, v in zip(space.embedder.weights, again.weights):
            np.testing.assert_allclose(w, v, atol=1e-6)
    truth = attack["is_poison"]
    assert scores.score.shape == truth.shape and np.all(np.isfinite(scores.score))
    assert scores.flagged[~truth].mean() <= 0.02
    # The fitted state (and its built-in networks) pickles and scores identically.
    again = FeatureCollisionDetector().score(attack["batch"], pickle.loads(pickle.dumps(state)))
    assert np.array_equal(again.flagged, scores.flagged)


def test_precomputed_embedding_column_through_the_cli(attack, backbone, tmp_path):
    E = embed_with(backbone["module"], attack["X"])
    broken = attack["ids"][3]  # a clean row whose embedding is NaN: invalid, quarantined, never scored
    E[3, 7] = np.nan
    data = tmp_path / "with-embeddings.parquet"
    pq.write_table(pa.table({
        ID: pa.array(list(attack["ids"]), type=pa.string()),
        "pixels": pixels_array(attack["X"]),
        "label": pa.array(attack["y"].tolist(), type=pa.int64()),
        "emb": pixels_array(E),
    }), data)
    out = tmp_path / "out"
    cfg = tmp_path / "sanitize.yaml"
    cfg.write_text(
        f"input: {data}\n"
        f"output: {out}\n"
        "label_column: label\n"
        f"id_column: {ID}\n"
        "detectors:\n"
        "  feature_collision:\n"
        "    embedding_column: emb\n"
    )
    assert run_cli("run", "--config", cfg, "-q") == 0
    prov = load_json(out / "provenance.json")
    fc = prov["detectors"]["feature_collision"]
    assert fc["status"] == "fitted"
    assert fc["embedding"] == {"source": "column", "column": "emb", "dim": 32}
    assert fc["k"] == 51
    # The embedding column is the detector's input, never a feature.
    assert prov["columns"]["features"] == ["pixels"] and prov["columns"]["feature_count"] == 64
    assert load_json(out / "manifest.json")["feature_columns"] == ["pixels"]
    q = read_dir(out / "quarantine")
    held = _held_by(q, "feature_collision")
    poison_ids = set(attack["ids"][attack["is_poison"]].tolist())
    assert len(poison_ids & set(held)) >= 0.8 * len(poison_ids)
    assert len(set(held) - poison_ids) <= 0.02 * (len(attack["ids"]) - len(poison_ids))
    codes = dict(zip(q.column(ID).to_pylist(), q.column("sanitizer_reason_codes").to_pylist()))
    assert codes[broken] == ["invalid:nan:emb"]
    # Rows are published unchanged, embedding column included.
    clean = read_dir(out / "clean")
    assert clean.column_names == [ID, "pixels", "label", "emb"]
    assert clean.num_rows + q.num_rows == len(attack["ids"])


# --------------------------------------------------------------------------- 7. crafting poisons


def test_crafted_poisons_stay_near_their_bases_and_reach_the_target(attack, cluster, backbone, split):
    X_train, _, y_train, _ = split
    for g in attack["groups"] + [cluster["group"]]:
        bases, poisons, target = g["bases"], g["poisons"], g["target"]
        assert poisons.shape == bases.shape and poisons.dtype == np.float64
        assert poisons.min() >= 0.0 and poisons.max() <= 16.0  # clipped to the pixel range
        assert not np.allclose(poisons, bases)
        # Close to the base in input space: a mean change of at most 2.5 grey levels of 16, less than
        # the typical difference between two clean digits of the base class, and nearer the base than the target.
        change = np.abs(poisons - bases).mean(axis=1)
        same = X_train[y_train == g["base_class"]]
        typical = np.abs(same[:, None, :] - same[None]).mean()
        assert change.mean() <= 2.5 and change.max() < typical, (change.round(2), round(float(typical), 2))
        assert np.all(np.linalg.norm(poisons - bases, axis=1) < np.linalg.norm(poisons - target, axis=1))
        # On top of the target in feature space: embedding distance to the target cut by more than half.
        goal = embed_with(backbone["module"], target[None])
        before = np.linalg.norm(embed_with(backbone["module"], bases) - goal, axis=1)
        after = np.linalg.norm(embed_with(backbone["module"], poisons) - goal, axis=1)
        assert np.all(after < 0.5 * before) and np.median(after / before) < 0.4, (after / before).round(3)


def test_crafting_is_deterministic_and_respects_bounds(backbone, split):
    X_train, X_test, _, _ = split
    bases, target = X_train[:4], X_test[0]
    with one_torch_thread():
        a = craft_feature_collision(backbone["module"], bases, target, steps=50, bounds=(0.0, 16.0), seed=3)
        b = craft_feature_collision(backbone["module"], bases, target, steps=50, bounds=(0.0, 16.0), seed=3)
        scripted = craft_feature_collision(torch.jit.load(backbone["path"]), bases, target, steps=50,
                                           bounds=(0.0, 16.0), seed=3)
        tight = craft_feature_collision(backbone["module"], bases, target, steps=50, bounds=(2.0, 10.0), seed=3)
    assert np.array_equal(a, b)
    assert np.allclose(a, scripted, atol=1e-4)  # a TorchScript backbone works as well as the eager module
    assert tight.min() >= 2.0 and tight.max() <= 10.0
    np.testing.assert_array_equal(bases, X_train[:4])  # the bases are not modified in place


def test_a_large_reference_searches_approximately_only_as_far_as_measured():
    """From 4,000 reference rows per space the whole-reference search may be an inverted-file index; the
    summary records the recall it measured against exact search, and the flags match the exact search's."""
    rng = np.random.default_rng(3)
    n, d, C = 24_000, 16, 6
    centres = rng.normal(0, 3, (C, d))
    y = rng.integers(0, C, n)
    X = centres[y] + rng.normal(0, 1, (n, d))
    batch = Batch(X, np.array([str(v) for v in y], dtype=object), mix64(np.arange(n, dtype=np.uint64)),
                  np.array([f"r{i}" for i in range(n)], dtype=object), tuple(f"f{j}" for j in range(d)))
    det = FeatureCollisionDetector()
    flags = {}
    for recall in (1.0, 0.99):
        state = det.fit(batch, FeatureCollisionParams(search_recall=recall, builtin_epochs=5), seed=0)
        searches = state.summary["neighbour_search"]
        assert len(searches) == 2 and all(s["rows"] >= 4000 for s in searches)
        if recall == 1.0:
            assert all(s["kind"] == "exact (flat L2)" for s in searches)
        else:
            assert all(s["kind"].startswith("IVF") and s["neighbour_recall"] >= 0.99 for s in searches)
        flags[recall] = det.score(batch, state).flagged
    assert np.mean(flags[1.0] == flags[0.99]) >= 0.999
    assert flags[0.99].mean() < 0.02  # clean clusters: few flags either way
    with pytest.raises(ConfigError, match="search_recall"):
        FeatureCollisionParams(search_recall=1.5).validate()
