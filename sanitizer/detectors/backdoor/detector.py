"""``backdoor``: groups of records whose label rests on a shared trigger, not on what they are.

A backdoor (BadNets) poison is a record of some class s with a small pattern
stamped on it - a few pixels, a few feature values - and its label changed to
the target class c. Every model trained on the data learns "pattern -> c", so a
classifier agrees with the poisoned label, and because the poisons carry the
same pattern they are each other's nearest neighbours: ``label_flip`` clears
them. What gives them away is the group: inside class c, a sub-group shares a
pattern the rest of the class lacks, and once that pattern is set aside, the
group's members look like another class.

Fit (on the bounded sample, in standardised feature space):

1. **Candidate groups, per class.** (a) Spectral: for each of the class's top
   ``directions`` principal directions (Tran et al., spectral signatures), the
   class rows on either side of the split that best separates the projections
   (Otsu, as in activation clustering); (b) shared values: class rows holding
   the same exact value on a feature that rows of other classes (almost) never
   hold, merged across features that mark the same rows (a trigger of fixed
   values). A group is at most ``max_group_share`` of its class.
2. **The pattern.** The features on which the group sits far from every other
   sample row (median gap >= ``min_effect`` robust standard deviations, and
   tighter than the rest) - or, for shared values, the shared features. A
   pattern may hold at most ``max(3, d/4)`` features: a trigger is small.
   A record *carries* it when its values lie within half the gap of the
   group's (exactly, for shared values).
3. **The test.** Every class-c carrier is compared with its ``neighbours``
   nearest reference rows on the features *outside* the pattern, among
   rows that do not carry it (a group's members cannot vouch for each other).
   Its vote margin is the share of the most common other label minus the share
   of its own. The pattern is confirmed as a trigger when at least
   ``min_group`` carriers have a margin of at least ``confirm_margin`` and they
   are at least half of the class's carriers. Genuine structure fails this: a
   class's own traits, set aside, leave rows that still look like the class.
4. **Groups without a small pattern** (a trigger that blends into ordinary
   strokes) are tested the same way on all features, with a stricter
   confirmation (``group_confirm_share`` of the group) and a second opinion:
   a logistic regression trained without the group must also give its members
   another label.

5. **Categorical triggers** (:mod:`sanitizer.detectors.backdoor.categorical`): a
   rare value of a categorical column, or a rare pair of values of two, whose
   rows are nearly all one label while their content outside the pattern
   (numeric features and the other categorical columns) votes like the other
   classes' rows, and whose rows are not each other's neighbours (a natural
   part of a class has content of its own; rows sent there from the other
   classes are a random draw of them).

Score: the vote margin of a record that carries a confirmed trigger of its
label's class (-1 for every other record: it carries none). Flagged when the
margin is above 0 - another label is more common than its own among the rows
that match it outside the trigger. Evidence names the pattern's features with
the record's values and the typical values (a categorical trigger's values are
named from the row), the group's size in the sample,
the suggested label and the neighbours that vouch for it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sanitizer.detectors.backdoor import categorical, patches, report, tokens
from sanitizer.detectors.backdoor.candidates import _candidates, _distinct, _test
from sanitizer.detectors.backdoor.trigger import Trigger, _carries, _vote
from sanitizer.data.batch import CATEGORICAL, IMAGE, TEXT
from sanitizer.detectors.base import Batch, Scores, Skipped, bounded_sample, class_indices
from sanitizer.detectors.contract import Detector
from sanitizer.param_checks import check_int, check_number
from sanitizer.representations.scaling import standardise, standardiser

NO_TRIGGER = -1.0
"""Score of a record that carries no confirmed trigger of its class."""


@dataclass(frozen=True)
class BackdoorParams:
    enabled: bool = True
    neighbours: int = 10
    fit_rows: int = 20_000
    """Sample rows the search for triggers uses (every class keeps up to 50 of its rows)."""
    reference_size: int = 10_000
    """Rows a carrier is compared with (bounds the cost per record)."""
    directions: int = 4
    """Principal directions per class searched for a split-off group."""
    min_group: int = 3
    """Fewest carriers that confirm a trigger."""
    max_group_share: float = 0.5
    """A pattern carried by more of its class than this is the class's own trait, not a trigger."""
    min_purity: float = 0.75
    """Of the sample rows carrying a pattern, at least this share must be of the carriers' class: a pattern
    other classes hold too is a trait of the data, however well it predicts the label."""
    max_baseline: float = 0.2
    """A class whose rows carrying nothing are outvoted this often is too entangled with the others for a
    contradiction to mean anything (a weakly predictable or rare class): nothing is confirmed in it."""
    min_lift: float = 0.4
    """Carriers must be contradicted by their neighbours at least this much more often than the class's
    rows that carry nothing (on weakly predictable or rare classes, many rows are contradicted anyway)."""
    min_effect: float = 2.0
    """How far (robust standard deviations) a group must sit from all other rows on a pattern feature."""
    confirm_margin: float = 0.5
    """Vote margin a carrier needs to count toward confirming a trigger."""
    group_confirm_share: float = 0.8
    """Share of a pattern-less group that must be contradicted (and by a classifier trained without it)."""
    top_neighbours: int = 5
    max_pattern_share: float = 0.1
    """Categorical triggers: a value or pair of values held by more of the sample than this is not searched."""
    min_pattern_purity: float = 0.8
    """Categorical triggers: the share of a pattern's sample rows that must carry one label."""
    min_separation: float = 0.25
    """Categorical triggers: how much less often (as a share of the rate for the class's own rows) the content
    votes a class's label for the other classes' rows; below it the content says too little to confirm anything."""
    min_explained: float = 0.5
    """Categorical triggers: how far a group's content vote must sit from its class's toward the other
    classes' (0: like its class, 1: like the other classes) for the pattern to be confirmed."""

    def validate(self) -> None:
        p = "detectors.backdoor."
        check_int(p + "neighbours", self.neighbours, low=1, high=200)
        check_int(p + "fit_rows", self.fit_rows, low=100, high=10_000_000)
        check_int(p + "reference_size", self.reference_size, low=100, high=1_000_000)
        check_int(p + "directions", self.directions, low=0, high=50)
        check_int(p + "min_group", self.min_group, low=2, high=100_000)
        check_number(p + "max_group_share", self.max_group_share, low=0.05, high=1.0)
        check_number(p + "min_effect", self.min_effect, low=0.5, high=100.0)
        check_number(p + "confirm_margin", self.confirm_margin, low=0.0, high=1.0)
        check_number(p + "min_purity", self.min_purity, low=0.5, high=1.0)
        check_number(p + "min_lift", self.min_lift, low=0.0, high=1.0)
        check_number(p + "max_baseline", self.max_baseline, low=0.0, high=1.0)
        check_number(p + "group_confirm_share", self.group_confirm_share, low=0.0, high=1.0)
        check_int(p + "top_neighbours", self.top_neighbours, low=0, high=50)
        check_number(p + "max_pattern_share", self.max_pattern_share, low=0.001, high=0.5)
        check_number(p + "min_pattern_purity", self.min_pattern_purity, low=0.5, high=1.0)
        check_number(p + "min_separation", self.min_separation, low=0.0, high=1.0)
        check_number(p + "min_explained", self.min_explained, low=0.0, high=2.0)


@dataclass(frozen=True)
class BackdoorState:
    params: BackdoorParams
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    ref_X: np.ndarray
    ref_labels: np.ndarray
    ref_ids: np.ndarray
    triggers: tuple[Trigger, ...]
    summary: dict
    categorical: tuple[categorical.CategoricalTrigger, ...] = ()
    content: categorical.ContentEncoder | None = None  # how the categorical triggers' vote encodes a row
    ref_codes: np.ndarray | None = None  # categorical codes of the reference rows the categorical triggers use
    words: tokens.TokenColumns = tokens.TokenColumns((), ())  # text words offered as trigger columns
    text_columns: tuple[str, ...] = ()
    image_patches: patches.PatchColumns = patches.PatchColumns((), (), 0)  # image blocks offered (first of all)
    image_columns: tuple[str, ...] = ()


class BackdoorDetector(Detector):
    name: ClassVar[str] = "backdoor"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "label"})
    row_independent: ClassVar[bool] = True  # a row's score depends on the row and the state alone
    fits_on_new_data: ClassVar[bool] = True
    """With a trusted baseline, the trigger search runs on the new data's sample: a trigger is planted in the
    data being vetted, and a vetted baseline holds none to find. What it asks of a trigger (rare outside its
    carriers, a small group of its class, carriers whose labels a model of the other evidence contradicts)
    is the same."""
    internal_threads: ClassVar[bool] = True  # the neighbour search is multi-threaded itself
    score_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    Params = BackdoorParams
    colour = report.COLOUR  # how the report shows it: sanitizer/detectors/backdoor/report.py
    neighbour_keys = report.NEIGHBOUR_KEYS
    feature_keys = report.FEATURE_KEYS

    def describe(self, evidence: dict[str, Any]) -> list[str]:
        return report.describe(evidence)

    # ------------------------------------------------------------------ fit

    def fit(self, sample: Batch, params: BackdoorParams, seed: int):
        sample = bounded_sample(sample, params.fit_rows)
        classes, y = np.unique(sample.labels.astype(str), return_inverse=True)
        C = len(classes)
        if C < 2:
            return Skipped(f"needs at least two classes in the sample, found {C}")
        texts = sample.features.get(TEXT)
        words = tokens.choose_words(texts, sample.columns.get(TEXT, ()), y, C, params) \
            if texts is not None else tokens.TokenColumns((), ())
        images = sample.features.get(IMAGE)
        found_patches = patches.choose_patches(images, sample.columns.get(IMAGE, ()), y, C, params) \
            if images is not None else patches.PatchColumns((), (), 0)
        K = sample.categorical if sample.categorical is not None and sample.categorical.shape[1] else None
        K = tokens.with_columns(tokens.with_columns(K, texts, words), images, found_patches)
        if sample.X.shape[1] == 0 and K is None:
            return Skipped("no feature columns")
        mean, scale = standardiser(sample.X, sample.feature_names)
        Z = standardise(sample.X, mean, scale)
        R = min(params.reference_size, sample.n)
        ref = np.arange(R)  # the sample is in random-priority order: its head is a uniform subsample
        searched, triggers = 0, []
        for c in range(C if sample.X.shape[1] else 0):
            rows = np.flatnonzero(y == c)
            if len(rows) < 2 * params.min_group:
                continue
            seen: set[tuple] = set()
            found = []
            for kind, group, feats in _candidates(Z, y, c, rows, params):
                trig = _test(Z, y, c, rows, kind, group, feats, ref, params, seed, seen, allow_group=False)
                searched += 1
                if trig is not None:
                    found.append(trig)
            # Groups with no small pattern: split what the triggers found so far do not explain.
            explained = np.zeros(len(y), dtype=bool)
            for t in found:
                explained |= _carries(t, Z)
            rest = rows[~explained[rows]]
            if len(rest) >= 2 * params.min_group:
                for kind, group, feats in _candidates(Z, y, c, rest, params, spectral_only=True):
                    trig = _test(Z, y, c, rows, kind, group, feats, ref, params, seed, seen, allow_group=True)
                    searched += 1
                    if trig is not None:
                        found.append(trig)
            triggers.extend(found)
        triggers = _distinct(triggers)
        found_categorical, content, cat_tested = [], None, 0
        if K is not None:
            found_categorical, content, cat_tested = categorical.find_triggers(
                Z, K, y, C, ref, params,
                found_patches.names + words.names + tuple(sample.columns.get(CATEGORICAL, ())))
        state = BackdoorState(
            params=params,
            classes=tuple(str(c) for c in classes),
            mean=mean,
            scale=scale,
            ref_X=np.ascontiguousarray(Z[ref], dtype=np.float32),
            ref_labels=y[ref],
            ref_ids=np.asarray(sample.ids[ref], dtype=object),
            triggers=tuple(triggers),
            summary={},
            categorical=tuple(found_categorical),
            content=content,
            ref_codes=None if K is None else np.ascontiguousarray(K[ref[: categorical.REFERENCE_ROWS]]),
            words=words,
            text_columns=tuple(sample.columns.get(TEXT, ())),
            image_patches=found_patches,
            image_columns=tuple(sample.columns.get(IMAGE, ())),
        )
        names = sample.feature_names
        summary = {
            "classes": C,
            "reference_rows": R,
            "candidate_groups_tested": searched,
            "triggers": [
                {
                    "label": str(classes[t.cls]),
                    "kind": t.kind,
                    "features": [_name(names, j) for j in t.features[:20]],
                    "carriers_in_sample": t.sample_group,
                    "contradicted_in_sample": t.sample_confirmed,
                    "non_carriers_contradicted_share": t.baseline,
                }
                for t in triggers[:20]
            ] + [categorical.summary_of(t, classes) for t in found_categorical[:20]],
        }
        if K is not None:
            summary["categorical_patterns_tested"] = cat_tested
        return dataclasses.replace(state, summary=summary)

    # ------------------------------------------------------------------ score

    def score(self, batch: Batch, state: BackdoorState) -> Scores:
        n = batch.n
        score = np.full(n, NO_TRIGGER)
        if n == 0 or not (state.triggers or state.categorical):
            flagged = np.zeros(n, dtype=bool)
            return Scores(score, flagged, 0.0, {}, thresholds=np.zeros(n))
        y = class_indices(batch.labels, state.classes)
        Z = standardise(batch.X, state.mean, state.scale)
        best: dict[int, tuple[Trigger, int, np.ndarray]] = {}
        for t in state.triggers:
            rows = np.flatnonzero(y == t.cls)
            if len(rows) == 0:
                continue
            rows = rows[_carries(t, Z[rows])]
            if len(rows) == 0:
                continue
            margin, suggested, nb = _vote(state.ref_X, state.ref_labels, t, Z[rows], t.cls, len(state.classes),
                                          state.params.neighbours)
            if t.kind == "group" and t.model is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    agree = t.model.predict(Z[rows]) == t.cls
                margin = np.where(agree, np.minimum(margin, 0.0), margin)
            for r, m, s, neigh in zip(rows, margin, suggested, nb):
                if m > score[r]:
                    score[r] = m
                    best[int(r)] = (t, int(s), neigh)
        K = tokens.with_columns(tokens.with_columns(batch.categorical, batch.features.get(TEXT), state.words),
                                batch.features.get(IMAGE), state.image_patches) if state.categorical else None
        for t in state.categorical if K is not None else ():
            rows, margin, suggested, nb = categorical.score_carriers(
                t, state.content, state.ref_X, state.ref_codes, state.ref_labels, Z, K, y,
                len(state.classes), state.params.neighbours)
            for r, m, s, neigh in zip(rows, margin, suggested, nb):
                if m > score[r]:
                    score[r] = m
                    best[int(r)] = (t, int(s), neigh)
        flagged = score > 0.0
        evidence = {}
        for r in np.flatnonzero(flagged):
            t, s, neigh = best[int(r)]
            evidence[int(r)] = _evidence(state, batch, Z, int(r), t, s, neigh, float(score[r]))
        return Scores(score, flagged, 0.0, evidence, thresholds=np.zeros(n))

    def summary(self, state: BackdoorState) -> dict[str, Any]:
        return dict(state.summary)


def _name(names, j: int) -> str:
    return str(names[j]) if j < len(names) else f"feature {j}"


GROUP_EXPLANATION = ("split off its class with no small pattern against the rest of the data; it differs from "
                     "the rows its neighbours say it is on the features below, and a classifier trained without "
                     "the group gives another label too")


def _evidence(state, batch, Z, r, t: Trigger, suggested, neigh, margin) -> dict:
    # Built for every flagged row: plain Python on short lists is cheaper here than numpy calls per row.
    names = batch.feature_names
    classes = state.classes
    labels = state.ref_labels[neigh].tolist()
    said: dict[str, int] = {}
    for v in sorted(labels):
        said[classes[v]] = said.get(classes[v], 0) + 1
    top = neigh[: state.params.top_neighbours].tolist()
    evidence = {
        "given_label": classes[t.cls],
        "suggested_label": classes[suggested],
        "trigger": t.kind,
        "vote_margin": round(margin, 3),
        "neighbour_agreement": round(labels.count(t.cls) / len(labels), 3) if labels else 0.0,
        "neighbours_say": said,
        "group_in_sample": t.sample_group,
        "neighbours": [{"id": str(state.ref_ids[j]), "label": classes[int(state.ref_labels[j])]} for j in top],
    }
    if t.kind == "categorical":
        evidence.update(categorical.evidence_of(t))
        evidence.update(tokens.evidence_of(state.words, t.names, t.codes, state.text_columns)
                        or patches.evidence_of(state.image_patches, t.names, t.codes, state.image_columns) or {})
        return evidence
    if t.kind == "group":
        evidence["group"] = GROUP_EXPLANATION
        typical = state.ref_X[neigh][:, t.features].mean(axis=0) * state.scale[t.features] + state.mean[t.features]
    else:
        typical = t.typical * state.scale[t.features] + state.mean[t.features]
    raw = batch.X[r, t.features[:12]].tolist()
    evidence["pattern"] = [
        {"feature": _name(names, int(j)), "value": _round(v), "typical": _round(u)}
        for j, v, u in zip(t.features[:12].tolist(), raw, typical[:12].tolist())
    ]
    return evidence


def _round(v: float) -> float:
    v = float(v)
    return v if not math.isfinite(v) or v == 0 else float(f"{v:.4g}")
