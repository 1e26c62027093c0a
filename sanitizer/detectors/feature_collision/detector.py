"""``feature_collision``: clean-label poisons that sit on top of, or part-way toward, another class.

Feature-collision poisons (Poison Frogs; Convex / Bullseye Polytope) carry the
label a human would give them, but are optimised so that the victim model's
embedding moves onto a chosen target from another class. Poison Frogs and ART's
``FeatureCollisionAttack`` drive each poison onto the target; Bullseye Polytope
drives only the *mean* of a group of poisons there, so each single poison may
stop part-way, between its own class and the target's. Everything happens in
the embedding space of :mod:`sanitizer.representations.embeddings`, against a reference of
sample rows, never counting a record as its own neighbour. Four signals:

* **margin**: ``log(d_own / d_other)``, the distance to the record's
  ``neighbours``-th nearest own-class row over the same distance to the nearest
  other class. A clean record sits deep in its class (well below 0); a poison
  that moved toward a target comes near 0 or above, even while it is still a
  little nearer its own class.
* **group**: the margin averaged with those of the record's ``group`` nearest
  own-class rows. Poisons aimed at one target travel together, so a part-way
  poison among poisons keeps a high average; a clean row on the edge of its
  class does not (its neighbours lie inside the class).
* **cluster**: the margin read past a cluster of ``max_cluster`` rows (rank
  ``max_cluster + 1``): poisons piled on one target are each other's nearest
  own-class rows, which hides them from the first margin, not from this one.
* **deep_knn** (Peri et al., 2020): another class outvotes the record's own
  among its ``k = 2 * max_cluster + 1`` nearest rows by ``vote_ratio`` or more,
  each class's votes divided by its reference rows plus ``max_cluster``
  pseudo-rows, so a clean row of a 20-row class does not lose to the big classes
  around it and a class the sample holds once outvotes no one. The vote is not
  calibrated, so it is used in the victim's own space (a backbone or an
  embedding column) only, not in the built-in embedding's.

Ranks are class-prior-normalised: ``neighbours`` (or ``max_cluster + 1``) for the
largest class and in proportion for smaller ones (at least the 3rd row), so
every class is measured at the same share of its rows. The three margins are calibrated on the
sample: an exponential tail through the median and 90th percentile of the
reference rows' own values (per class from 50 reference rows, else over all
rows) turns each into nats, -log of an exceedance probability, and a record is
flagged at ``threshold`` nats. No contamination rate is assumed.

Cross-fitting: the built-in embedding (no backbone given) is a network trained
on the sample (numeric features, and each categorical column's common levels as
indicators: :mod:`~sanitizer.detectors.feature_collision.categorical_input`),
which would learn each poison into its labelled class. Two are
trained, each on one half of the sample (halves by record key); a record is
embedded by the network that never saw its half and compared with that half's
reference rows, which that network never saw either. A given backbone or
embedding column is the victim's own space and is used as is. When the data has an image column, the
backbone embeds the images, not the numbers (:mod:`~sanitizer.detectors.feature_collision.inputs`).

The score is the largest of each calibrated signal over ``threshold`` and the
vote ratio over ``vote_ratio``, so 1 is the threshold. Evidence names the
signals, the class the record is drawn toward, both distances beside what is
typical for its class, the vote and the nearest reference rows. Searches are
L2 with faiss over at most ``reference_size`` sample rows: exact up to 10,000
rows, an inverted-file index above (see :mod:`sanitizer.detectors.shared.neighbour_search`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sanitizer.data.batch import salted
from sanitizer.detectors.base import Batch, DistanceCalibration, Scores, Skipped
from sanitizer.detectors.contract import Detector
from sanitizer.detectors.feature_collision import report
from sanitizer.detectors.feature_collision.categorical_input import OneHot
from sanitizer.detectors.feature_collision.evidence import evidence_of
from sanitizer.detectors.feature_collision.inputs import ImageInput, check_backbone, image_input, open_image_backbone
from sanitizer.detectors.feature_collision.signals import Reference, _group_margin, _nats, _neighbourhood, search_width
from sanitizer.errors import ConfigError
from sanitizer.param_checks import check_int, check_number
from sanitizer.representations.embeddings import BuiltinEmbedder, TorchScriptEmbedder

_FOLD_SALT = "feature-collision-fold"
CROSS_FIT_FOLDS = 2
MIN_CLASS_ROWS = 50
"""A class is calibrated on its own margins from this many reference rows up; below, on all rows'."""
VOTE_CAP = 10.0


@dataclass(frozen=True)
class FeatureCollisionParams:
    enabled: bool = True
    embedding_model: str | None = None
    """TorchScript backbone (path or URI); see sanitizer.representations.embeddings. It is code: it runs only when pinned."""
    embedding_model_sha256: str | None = None
    """The sha256 (64 hex digits) the embedding model's bytes must have; a model without it is refused."""
    embedding_column: str | None = None
    """A precomputed embedding column (fixed-size list of floats)."""
    embedding_image_column: str | None = None
    """The image column the backbone embeds when the data has several (default: the first)."""
    max_cluster: int = 25
    """Largest cluster of poisons aimed at one target to defend against; sets k = 2 * max_cluster + 1."""
    k: int = 0
    """Override the k rule (0 = use it)."""
    neighbours: int = 10
    """Rank of the own- and other-class distances in the class margin."""
    group: int = 5
    """Own-class neighbours whose margins are averaged into the group margin."""
    threshold: float = 6.0
    """Nats (-log exceedance probability on the sample's margins) at which a margin flags a record."""
    vote_ratio: float = 1.5
    """Deep k-NN flags a record when another class's votes, per row of the reference it holds, exceed its
    own class's this many times over."""
    reference_size: int = 10_000
    search_recall: float = 0.99
    """From 4,000 reference rows per space the whole-reference search may use an inverted-file index, but
    only one that finds this share of the exact nearest neighbours on the reference's rows (measured at
    fit, recorded in provenance); 1.0 keeps the search exact."""
    builtin_epochs: int = 30
    top_neighbours: int = 5

    RETIRED: ClassVar[dict[str, str]] = {
        "input_neighbours": "the input-space vote is gone; the class margins work in embedding space alone",
        "centroid_ratio": "the centroid check is replaced by the class margin; set 'threshold' (nats) instead",
    }

    def validate(self) -> None:
        check_int("detectors.feature_collision.max_cluster", self.max_cluster, low=1, high=10_000)
        check_int("detectors.feature_collision.k", self.k, low=0, high=20_001)
        check_int("detectors.feature_collision.neighbours", self.neighbours, low=1, high=200)
        check_int("detectors.feature_collision.group", self.group, low=0, high=100)
        check_number("detectors.feature_collision.threshold", self.threshold, low=0.5, high=100.0)
        check_number("detectors.feature_collision.vote_ratio", self.vote_ratio, low=1.0, high=VOTE_CAP)
        check_int("detectors.feature_collision.reference_size", self.reference_size, low=100, high=2_000_000)
        check_number("detectors.feature_collision.search_recall", self.search_recall, low=0.5, high=1.0)
        check_int("detectors.feature_collision.builtin_epochs", self.builtin_epochs, low=1, high=1000)
        check_int("detectors.feature_collision.top_neighbours", self.top_neighbours, low=0, high=50)
        for key in ("embedding_model", "embedding_column", "embedding_image_column"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"detectors.feature_collision.{key} must be a non-empty string, got {value!r}")
        pin = self.embedding_model_sha256
        if pin is not None and (not isinstance(pin, str) or len(pin.strip()) != 64
                                or any(ch not in "0123456789abcdef" for ch in pin.strip().lower())):
            raise ConfigError(
                f"detectors.feature_collision.embedding_model_sha256 must be a sha256 (64 hex digits), got {pin!r}"
            )
        if pin is not None and not self.embedding_model:
            raise ConfigError(
                "detectors.feature_collision.embedding_model_sha256 is set but no embedding_model is; "
                "pass --embedding-model with it, or drop the pin"
            )
        if self.embedding_image_column and not self.embedding_model:
            raise ConfigError("detectors.feature_collision.embedding_image_column names the image column the "
                              "embedding_model embeds; set embedding_model (--embedding-model) with it, or drop it")
        if self.embedding_model and self.embedding_column:
            raise ConfigError(
                "detectors.feature_collision: set embedding_model or embedding_column, not both"
            )


@dataclass(frozen=True)
class Space:
    """One embedding space and the reference rows judged in it."""

    embedder: Any  # TorchScriptEmbedder, BuiltinEmbedder, or None for a precomputed column
    embedded: Reference
    ids: np.ndarray
    margins: np.ndarray  # (R,) each reference row's own (leave-self-out) class margin
    typical_own: np.ndarray  # (C,) median own-class embedding distance per class, for the evidence
    inputs: OneHot | None = None  # built-in embedding: the categorical indicators beside the numeric features
    image: ImageInput | None = None  # a backbone that embeds an image column's pixels, not the numeric features


@dataclass(frozen=True)
class FeatureCollisionState:
    params: FeatureCollisionParams
    classes: tuple[str, ...]
    k: int
    spaces: tuple[Space, ...]  # one, or one per cross-fitting fold (built-in embedding)
    cross_fitted: bool
    class_size: np.ndarray  # (C,) reference rows per class (all spaces), for the normalised vote
    margin_calibration: tuple[DistanceCalibration, ...]  # per class (global where the class is small)
    group_calibration: tuple[DistanceCalibration, ...]
    cluster_calibration: tuple[DistanceCalibration, ...]
    summary: dict


class FeatureCollisionDetector(Detector):
    name: ClassVar[str] = "feature_collision"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "label"})
    row_independent: ClassVar[bool] = True  # a row's score depends on the row and the state alone
    internal_threads: ClassVar[bool] = True  # faiss and torch are multi-threaded themselves
    Params = FeatureCollisionParams
    colour = report.COLOUR  # how the report shows it: sanitizer/detectors/feature_collision/report.py
    neighbour_keys = report.NEIGHBOUR_KEYS
    feature_keys = report.FEATURE_KEYS

    def describe(self, evidence: dict[str, Any]) -> list[str]:
        return report.describe(evidence)

    @staticmethod
    def fold_of(keys: np.ndarray) -> np.ndarray:
        """Cross-fitting half of each record (built-in embedding): it is embedded by the other half's network."""
        return (salted(keys, _FOLD_SALT) % np.uint64(CROSS_FIT_FOLDS)).astype(np.int64)

    def needs_for(self, params: FeatureCollisionParams) -> frozenset[str]:
        """An embedding column, when ``embedding_column`` names one, besides the features and labels."""
        return self.needs | {"embedding"} if params.embedding_column else self.needs

    def preflight(self, params: FeatureCollisionParams, n_features: int, image_columns=None,
                  image_size: int | None = None) -> None:
        """Check the TorchScript backbone's pinned sha256, then load and try it on what it will embed (the
        first or named of ``image_columns`` at ``image_size``, else ``n_features`` numbers), so a missing,
        unpinned or broken file fails before anything runs."""
        if params.embedding_model:
            check_backbone(params.embedding_model, params.embedding_model_sha256, n_features, image_columns,
                           image_size, params.embedding_image_column)

    def fit(self, sample: Batch, params: FeatureCollisionParams, seed: int):
        classes, y = np.unique(sample.labels.astype(str), return_inverse=True)
        if len(classes) < 2:
            return Skipped(f"needs at least two classes in the sample, found {len(classes)}")
        if sample.n < 20:
            return Skipped(f"needs at least 20 valid rows in the sample, got {sample.n}")
        R = min(params.reference_size, sample.n)
        X = sample.X[:R]  # the sample is in random-priority order: a uniform subsample
        y = y[:R]
        keys = np.asarray(sample.keys[:R])
        ids = np.asarray(sample.ids[:R], dtype=object)
        C = len(classes)
        inputs = image = None
        if params.embedding_column:
            if sample.embedding is None:
                return Skipped(f"embedding column {params.embedding_column!r} was not provided to the detector")
            parts = [(None, np.arange(R), sample.embedding[:R])]
            describe = {"source": "column", "column": params.embedding_column, "dim": int(sample.embedding.shape[1])}
        elif params.embedding_model:
            image = image_input(sample, params.embedding_image_column)
            if image is None:  # a table of numbers: the backbone maps each record's feature vector
                embedder = TorchScriptEmbedder.open(params.embedding_model, X.shape[1], params.embedding_model_sha256)
                parts, describe = [(embedder, np.arange(R), embedder.embed(X))], embedder.describe()
            else:  # the victim's backbone takes images: it maps the image column's pixels
                embedder = open_image_backbone(params.embedding_model, params.embedding_model_sha256, image)
                parts = [(embedder, np.arange(R), image.embed(embedder, sample, np.arange(R)))]
                describe = dict(embedder.describe(), **image.describe())
        else:
            fold = self.fold_of(keys)
            if min(np.bincount(fold, minlength=CROSS_FIT_FOLDS)) < 10:
                return Skipped("needs at least 10 sample rows in each cross-fitting half")
            parts = []
            K = None if sample.categorical is None else sample.categorical[:R]
            inputs = OneHot.of(K)
            X_in = X if inputs is None else inputs.encode(X, K)
            for f in range(CROSS_FIT_FOLDS):
                train = fold != f
                embedder = BuiltinEmbedder.train(X_in[train], y[train], seed + f, epochs=params.builtin_epochs)
                rows = np.flatnonzero(~train)
                parts.append((embedder, rows, embedder.embed(X_in[rows])))
            describe = dict(parts[0][0].describe(), cross_fitted=(
                f"{CROSS_FIT_FOLDS} networks, each trained on one half of the sample (by record key); a record "
                "is embedded by the network that never saw its half and compared with that half's rows"),
                train_accuracy=[round(p[0].train_accuracy, 4) for p in parts])
            if inputs is not None:
                describe["categorical_indicators"] = {
                    name: len(lv) for name, lv in zip(sample.columns["categorical"], inputs.levels) if len(lv)}
        class_size = np.bincount(y, minlength=C)
        wanted = params.k or 2 * params.max_cluster + 1
        smallest_space = min(len(rows) for _, rows, _ in parts)
        k = int(max(1, min(wanted, smallest_space - 1)))

        spaces, margins, groups, clusters, labels_all = [], [], [], [], []
        for embedder, rows, E in parts:
            space, margin, group, cluster = _build_space(embedder, E, y[rows], keys[rows], ids[rows], C, params, k,
                                                         seed)
            space = dataclasses.replace(space, inputs=inputs, image=image)
            spaces.append(space)
            margins.append(margin)
            groups.append(group)
            clusters.append(cluster)
            labels_all.append(y[rows])
        y_all = np.concatenate(labels_all)

        builtin = len(parts) > 1  # the cross-fitted built-in embedding, not the victim's own space

        def calibrate(values: np.ndarray) -> tuple[DistanceCalibration, ...]:
            overall = DistanceCalibration.of(values, heavy_tail=builtin)
            return tuple(
                DistanceCalibration.of(values[y_all == c], heavy_tail=builtin) if class_size[c] >= MIN_CLASS_ROWS
                else overall
                for c in range(C)
            )

        state = FeatureCollisionState(
            params=params, classes=tuple(str(c) for c in classes), k=k, spaces=tuple(spaces),
            cross_fitted=len(spaces) > 1,
            class_size=class_size,
            margin_calibration=calibrate(np.concatenate(margins)), group_calibration=calibrate(np.concatenate(groups)),
            cluster_calibration=calibrate(np.concatenate(clusters)), summary={},
        )
        rule = f"k = 2 * max_cluster + 1 = {2 * params.max_cluster + 1}" if not params.k else f"k set to {params.k}"
        if k < wanted:
            rule += f", capped at {k} by the reference rows"
        summary = {
            "embedding": describe,
            "k": k,
            "k_rule": rule,
            "max_cluster_defended": (k - 1) // 2,
            "reference_rows": R,
            "neighbours": params.neighbours,
            "group": params.group,
            "threshold_nats": params.threshold,
            "vote_ratio": params.vote_ratio,
            "deep_knn": "off: the built-in embedding is not the victim's space" if len(spaces) > 1 else "on",
            "calibrated_on_own_margins": [state.classes[c] for c in range(C) if class_size[c] >= MIN_CLASS_ROWS],
            "neighbour_search": [space.embedded.search for space in spaces],
        }
        flagged = self.score(sample.take(slice(0, R)), state).flagged
        summary["flagged_in_reference"] = int(flagged.sum())
        return dataclasses.replace(state, summary=summary)

    def score(self, batch: Batch, state: FeatureCollisionState) -> Scores:
        n = batch.n
        if n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), 1.0)
        index = {c: i for i, c in enumerate(state.classes)}
        codes, uniques = pd.factorize(batch.labels)
        y = np.array([index.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)[codes]
        known = y >= 0
        params = state.params
        C = len(state.classes)

        score = np.full(n, np.nan)
        flagged = np.zeros(n, dtype=bool)
        evidence: dict[int, dict[str, Any]] = {}
        part = self.fold_of(batch.keys) if len(state.spaces) > 1 else np.zeros(n, dtype=np.int64)
        for f, space in enumerate(state.spaces):
            rows = np.flatnonzero(known & (part == f))
            if len(rows) == 0:
                continue
            E = _embed(space, batch, rows, params)
            yy = y[rows]
            hood = _neighbourhood(space, E, yy, np.asarray(batch.keys)[rows], C, params, state.k)
            nats = np.stack([_nats(state.margin_calibration, hood.margin, yy),
                             _nats(state.group_calibration, hood.group, yy),
                             _nats(state.cluster_calibration, hood.cluster_margin, yy)], axis=1)
            # Votes per reference row of the class, with max_cluster pseudo-rows: a 20-row class is not
            # outvoted by the big classes around it, and a class the sample holds once does not outvote anyone.
            normalised = hood.votes / (state.class_size + params.max_cluster)[None, :]
            own_vote = normalised[np.arange(len(rows)), yy]
            others = normalised.copy()
            others[np.arange(len(rows)), yy] = -1.0
            with np.errstate(divide="ignore", invalid="ignore"):
                vote_ratio = np.where(own_vote > 0, np.minimum(others.max(axis=1) / own_vote, VOTE_CAP), VOTE_CAP)
            outvoting = others.argmax(axis=1)
            # The vote is not calibrated: it is trusted in the victim's own space (a backbone or an embedding
            # column), not in the built-in networks' noisier one (there it flagged 3.5% of clean digits).
            judged = np.isfinite(hood.margin)  # its class has at least 2 reference rows in this space
            outvoted = judged & (vote_ratio > params.vote_ratio) & (not state.cross_fitted)
            fired = np.concatenate([nats > params.threshold, outvoted[:, None]], axis=1)
            nats[~judged] = 0.0
            vote_score = np.where(outvoted, vote_ratio / params.vote_ratio, 0.0)
            best = np.maximum(nats.max(axis=1) / params.threshold, vote_score)
            score[rows] = np.where(judged, best, np.nan)  # NaN: a class too small here to be judged
            flagged[rows] = fired.any(axis=1)
            for j in np.flatnonzero(fired.any(axis=1)):
                evidence[int(rows[j])] = evidence_of(state, space, hood, j, int(yy[j]), fired[j], nats[j],
                                                     float(vote_ratio[j]), int(outvoting[j]))
        return Scores(score, flagged, 1.0, evidence)

    def summary(self, state: FeatureCollisionState) -> dict[str, Any]:
        return dict(state.summary)


# --------------------------------------------------------------------------- building and searching


def _embed(space: Space, batch: Batch, rows: np.ndarray, params: FeatureCollisionParams) -> np.ndarray:
    if space.embedder is None:
        if batch.embedding is None:
            raise ConfigError(f"embedding column {params.embedding_column!r} is missing from the batch")
        return np.asarray(batch.embedding)[rows]
    if space.image is not None:
        return space.image.embed(space.embedder, batch, rows)
    if space.inputs is not None:
        K = None if batch.categorical is None else batch.categorical[rows]
        return space.embedder.embed(space.inputs.encode(batch.X[rows], K))
    return space.embedder.embed(batch.X[rows])


def _build_space(embedder, E, y, keys, ids, C, params, k, seed):
    reference = Reference.build(E, y, keys, C, params.neighbours, params.max_cluster, seed,
                                search_width(params, k) + 1, params.search_recall)
    # The reference rows' own margins, each left out of its own neighbourhood, come first: the group
    # margins average them.
    hood = _neighbourhood(Space(embedder, reference, ids, np.zeros(len(y)), np.zeros(C)), E, y, keys, C, params, k)
    typical = np.array([np.median(hood.own_distance[r]) if len(r) else 0.0 for r in reference.class_rows])
    space = Space(embedder, reference, ids, hood.margin, typical)
    group = _group_margin(hood.margin, hood.margin, hood.group_rows)
    return space, hood.margin, group, hood.cluster_margin
