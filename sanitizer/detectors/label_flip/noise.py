"""``label_flip``'s noise model (step 6 of :mod:`sanitizer.detectors.label_flip.detector`): what keeps its false flags
bounded where labels are only weakly predictable.

On such data a classifier is often wrong, and confident learning alone flags a share of rows that grows with
the model's error. So the out-of-fold probabilities are calibrated on the sample by a noise model,
``P(given = i | x) = sum_t pi_t(x) Q[t, i]``, with ``pi`` the blend sharpened or softened by a temperature
and ``Q`` the class-to-class flip rates, fitted together by maximum likelihood (EM) from a prior of
PRIOR_NOISE wrong labels per given label. A row is flagged only when, beside its margin passing its class's
threshold, the posterior that its label is wrong is at least ``min_posterior``; a row below gets the
threshold 1, the margin's maximum. A class the out-of-fold models cannot recognise (they name fewer than
``min_class_recall`` of its rows for it, and their calls for it are not reliable either) is not judged: a
label the models cannot recognise is not one they can call wrong. Where the features barely predict the label, a flip buys the likelihood nothing, ``Q`` stays near the
identity and few or no rows are flagged."""

from __future__ import annotations

import numpy as np

CONTRADICTED = 0.8
"""A row the blend puts in another class with this probability or more is a confident contradiction."""
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


def _noise_model(p: np.ndarray, y: np.ndarray, rows: np.ndarray, temperatures=TEMPERATURES):
    """(temperature, Q) maximising the likelihood of the given labels of ``rows`` under

        P(given = i | x) = sum_t pi_t(x) Q[t, i],   pi = the blend tempered,

    labels that follow the data up to class-to-class flips at the rates in Q (estimated, not assumed:
    random, pairwise and many-to-one flips alike). The temperature calibrates the out-of-fold
    probabilities; a wrong label the data makes improbable is absorbed by Q, not by softening every
    probability. Where the features barely predict the label, Q stays near the identity. ``temperatures``
    are the ones tried (one, to fit Q alone at a known temperature)."""
    C = p.shape[1]
    if len(rows) < MIN_ROWS or C < 2:
        return 1.0, None
    best = (1.0, np.eye(C), -np.inf)
    for t in temperatures:
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


def _recognised(p: np.ndarray, y: np.ndarray, C: int, params) -> np.ndarray:
    """(C,) bool: classes the out-of-fold blend can recognise. A class is recognised when the blend names it
    most likely for at least ``min_class_recall`` of its own sample rows, leaving out the rows it confidently
    puts in another class (probability CONTRADICTED or more there). A label the models cannot recognise (a
    rare grade carved out by a feature they do not resolve, a class that overlaps another) is not one they
    can call wrong. The confident contradictions are left out because they are what a many-to-one attack
    adds: rows flipped *into* a class lower its recall however well the models know it, and must not switch
    its judgement off; a class the models merely cannot tell apart gets low, unconfident probabilities."""
    named = p.argmax(axis=1)
    top = p[np.arange(len(y)), named]
    counted = (named == y) | (top < CONTRADICTED)
    given = np.bincount(y, weights=counted.astype(float), minlength=C)
    right = np.bincount(y, weights=(named == y).astype(float), minlength=C)
    return right >= params.min_class_recall * given


def _row_thresholds(class_thresholds: np.ndarray, wrong: np.ndarray, params) -> np.ndarray:
    """Each row's margin threshold: its class's, or 1 (the margin's maximum: never flagged) where the noise
    model's posterior that its label is wrong is below ``min_posterior``."""
    return np.where(wrong >= params.min_posterior, class_thresholds, 1.0)
