"""``label_flip``'s calibration arithmetic: the per-fold neighbour indexes, the two opinions per record
(fold models and out-of-fold neighbours), the blend weight, the confident joint, the margin score and
the noisiest class pairs."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np


def _margin(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """max over other classes of p minus p of the given class, in [-1, 1]."""
    rows = np.arange(len(y))
    given = p[rows, y]
    others = p.copy()
    others[rows, y] = -np.inf
    return others.max(axis=1) - given


def _opinions(state, Z: np.ndarray, fold: np.ndarray):
    """Classifier and neighbour class probabilities; each row judged by its own fold's model/reference."""
    n, C = len(Z), len(state.classes)
    p_model = np.zeros((n, C))
    for f, (model, cols) in enumerate(zip(state.models, state.model_classes)):
        rows = np.flatnonzero(fold == f)
        if len(rows):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p_model[np.ix_(rows, cols)] = model.predict_proba(Z[rows])
    neighbours = _neighbours(state, Z, fold)
    k = neighbours.shape[1]
    flat = np.repeat(np.arange(n), k) * C + state.ref_labels[neighbours].ravel()
    counts = np.bincount(flat, minlength=n * C).reshape(n, C).astype(np.float64)
    p_knn = (counts + 1.0 / C) / (k + 1.0)  # one pseudo-count spread evenly (a sample-wide prior would carry
    # the record's own label back into its score)
    return p_model, p_knn, neighbours


def _neighbours(state, Z: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Indices (into the reference) of the k nearest reference rows outside each row's fold.

    One faiss index per fold over the reference rows of the other folds, built
    at fit: exact (flat L2) for small references, otherwise an inverted-file
    index checked against exact search at fit (``neighbours.build_checked``).
    """
    k = min(state.params.neighbours, max(len(state.ref_X) - 1, 1))
    out = np.zeros((len(Z), k), dtype=np.int64)
    for f in range(state.params.folds):
        rows = np.flatnonzero(fold == f)
        members = state.fold_members[f]
        if len(rows) == 0 or len(members) == 0:
            continue
        kk = min(k, len(members))
        found = state.fold_index[f].search(Z[rows], kk)
        found = np.where(found < 0, found[:, :1], found)  # an approximate search can come back short
        found = members[np.maximum(found, 0)]
        if kk < k:  # tiny references: repeat the nearest to keep a fixed width
            found = np.concatenate([found, np.repeat(found[:, :1], k - kk, axis=1)], axis=1)
        out[rows] = found
    return out


PROBE_ROWS = 2_000


def _with_fold_indexes(state, Z, fold, seed):
    """Per fold, the searchable reference outside it, checked against exact search on the fold's own rows."""
    from sanitizer.neighbours import build_checked

    K = state.params.folds
    k = min(state.params.neighbours, max(len(state.ref_X) - 1, 1))
    indexes, members_all, searches = [], [], []
    for f in range(K):
        members = np.flatnonzero(state.ref_folds != f)
        members_all.append(members)
        if len(members) == 0:
            indexes.append(None)
            continue
        probes = Z[np.flatnonzero(fold == f)[:PROBE_ROWS]]
        index, info = build_checked(state.ref_X[members], state.ref_labels[members], probes, min(k, len(members)),
                                    seed=seed + f, target=state.params.search_agreement)
        indexes.append(index)
        searches.append(info)
    worst = min(searches, key=lambda i: i["vote_agreement"]) if searches else {}
    summary = dict(state.summary, neighbour_search={
        "folds": [i["kind"] for i in searches],
        "vote_agreement_with_exact": worst.get("vote_agreement"),  # the worst fold's, on held-out sample rows
        "neighbour_recall": worst.get("neighbour_recall"),
        "probe_rows_per_fold": worst.get("probes"),
        "target": state.params.search_agreement,
    })
    return dataclasses.replace(state, fold_index=tuple(indexes), fold_members=tuple(members_all), summary=summary)


def _choose_weight(setting, p_model, p_knn, y) -> float:
    if setting != "auto":
        return float(setting)
    rows = np.arange(len(y))
    best, best_ll = 0.5, -np.inf
    for w in np.linspace(0.0, 1.0, 11):
        p = w * p_model[rows, y] + (1 - w) * p_knn[rows, y]
        ll = float(np.mean(np.log(np.clip(p, 1e-6, 1.0))))
        if ll > best_ll + 1e-12:
            best, best_ll = float(w), ll
    return best


def _confident_joint(p: np.ndarray, y: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated confident joint (rows: given label, columns: likely true label) and thresholds t_j."""
    t = np.array([p[y == j, j].mean() if np.any(y == j) else 1.0 for j in range(C)])
    above = p >= t[None, :]
    masked = np.where(above, p, -1.0)
    true = np.argmax(masked, axis=1)
    confident = above.any(axis=1)
    joint = np.zeros((C, C))
    np.add.at(joint, (y[confident], true[confident]), 1.0)
    counts = np.bincount(y, minlength=C).astype(float)
    row_sums = joint.sum(axis=1)
    scale = np.divide(counts, row_sums, out=np.zeros(C), where=row_sums > 0)
    joint *= scale[:, None]  # calibrate: each row sums to the class count
    return joint, t


def _top_pairs(joint: np.ndarray, counts: np.ndarray, classes: np.ndarray, most: int = 20) -> list[dict]:
    off = joint.copy()
    np.fill_diagonal(off, 0.0)
    flat = np.argsort(off, axis=None)[::-1][:most]
    out = []
    for idx in flat:
        i, j = np.unravel_index(idx, off.shape)
        if off[i, j] < 0.5:
            break
        out.append(
            {
                "given": str(classes[i]),
                "likely_true": str(classes[j]),
                "estimated_rows": round(float(off[i, j]), 1),
                "rate": round(float(off[i, j] / max(counts[i], 1)), 4),
            }
        )
    return out


TEMPERATURES = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
EM_ROUNDS = 60
PRIOR_NOISE = 0.02
"""The share of each class's given labels the noise model believes wrong before seeing the data: real data
sets' labels are mostly right (a few percent wrong is typical of curated sets). It is a share of the rows
*given* a label, so a rare class is not presumed to be full of majority rows flipped into it."""
PRIOR_WEIGHT = 0.5
"""The prior counts as this share of each class's rows: heavy noise (a tenth of a class, planted or not)
still shows through, but a model's misfit at a class boundary does not double as a flip rate."""


def _tempered(p: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities sharpened (T < 1) or softened (T > 1): p^(1/T), renormalised."""
    logp = np.log(np.clip(p, 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(axis=1, keepdims=True)


def _transitions(pi: np.ndarray, y: np.ndarray, C: int) -> tuple[np.ndarray, float]:
    """(Q, log-likelihood): Q[t, i] = P(given label i | true label t), fitted by EM so that
    P(given = i | x) = sum_t pi_t(x) Q[t, i] best explains the given labels."""
    n = len(y)
    given = np.bincount(y, minlength=C).astype(float)
    # Prior counts: PRIOR_NOISE of the rows given label i came from each other class in equal parts.
    prior = np.tile(PRIOR_NOISE * given / max(C - 1, 1), (C, 1))
    np.fill_diagonal(prior, (1.0 - PRIOR_NOISE) * given)
    prior *= PRIOR_WEIGHT
    Q = prior / np.maximum(prior.sum(axis=1, keepdims=True), 1e-12)
    ll = -np.inf
    for _ in range(EM_ROUNDS):
        joint = pi * Q[:, y].T  # (n, C): pi_t(x) Q[t, given]
        total = np.maximum(joint.sum(axis=1), 1e-300)
        new_ll = float(np.log(total).sum())
        r = joint / total[:, None]  # P(true = t | x, given)
        counts = np.zeros((C, C))
        np.add.at(counts.T, y, r)  # counts[t, i] = sum over rows given i of r_t
        total = counts + prior + 1e-3 * np.eye(C)
        Q = total / total.sum(axis=1, keepdims=True)
        if new_ll - ll < 1e-6 * n:
            ll = new_ll
            break
        ll = new_ll
    return Q, ll


MIN_ROWS = 1_000
"""Fewer calibration rows than this cannot pin down C * C flip rates and a temperature: the noise model is
then the identity (no row is judged by it; confident learning alone decides, as on small data it always
has)."""


def _noise_model(p: np.ndarray, y: np.ndarray, rows: np.ndarray):
    """(temperature, Q) maximising the likelihood of the given labels of ``rows`` under

        P(given = i | x) = sum_t pi_t(x) Q[t, i],   pi = the blend tempered,

    labels that follow the data up to class-to-class flips at the rates in Q (estimated, not assumed:
    random, pairwise and many-to-one flips alike). The temperature calibrates the out-of-fold
    probabilities; a wrong label the data makes improbable is absorbed by Q, not by softening every
    probability. Where the features barely predict the label, Q stays near the identity."""
    C = p.shape[1]
    if len(rows) < MIN_ROWS or C < 2:
        return 1.0, None
    best = (1.0, np.eye(C), -np.inf)
    for t in TEMPERATURES:
        Q, ll = _transitions(_tempered(p[rows], t), y[rows], C)
        if ll > best[2] + 1e-9:
            best = (float(t), Q, ll)
    return best[0], best[1]


def _posterior_wrong(p: np.ndarray, y: np.ndarray, temperature: float, Q: np.ndarray) -> np.ndarray:
    """P(the given label is wrong | x, given label) under the noise model of :func:`_noise_model`; 1 for every
    row when there is none (too few rows to fit one)."""
    if len(y) == 0:
        return np.zeros(0)
    if Q is None:
        return np.ones(len(y))
    pi = _tempered(p, temperature)
    joint = pi * Q[:, y].T
    total = np.maximum(joint.sum(axis=1), 1e-300)
    return 1.0 - joint[np.arange(len(y)), y] / total
