"""``backdoor``'s search for triggers: candidate groups per class (spectral splits and shared exact
values), the pattern each group sits on, and the test that confirms a candidate as a trigger."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from sanitizer.detectors.backdoor.trigger import Trigger, _carries, _vote


def _otsu(values: np.ndarray) -> float:
    """The cut that best separates a 1-d sample into two groups (largest between-group variance)."""
    s = np.sort(values)
    n = len(s)
    i = np.arange(1, n)
    left = np.cumsum(s)[:-1]
    m1 = left / i
    m2 = (s.sum() - left) / (n - i)
    best = int(np.argmax(i * (n - i) * (m1 - m2) ** 2))
    return float(0.5 * (s[best] + s[best + 1]))


STATS_ROWS = 5_000  # rows of the rest of the sample a candidate group is compared with


def _spread(Z: np.ndarray) -> np.ndarray:
    q1, q3 = np.quantile(Z, [0.25, 0.75], axis=0)
    s = (q3 - q1) / 1.349
    return np.maximum(np.where(s > 0, s, Z.std(axis=0)), 0.05)


def _candidates(Z, y, c, rows, params, spectral_only: bool = False):
    """(kind, group rows, pattern features or None) for class c."""
    cap = params.max_group_share * len(rows)
    Zc = Z[rows]
    mu = Zc.mean(axis=0)
    if params.directions and len(rows) >= 3:
        _, _, vt = np.linalg.svd(Zc - mu, full_matrices=False)
        for v in vt[: params.directions]:
            proj = (Zc - mu) @ v
            if not np.ptp(proj) > 1e-9:
                continue
            for sign in (1.0, -1.0):
                p = sign * proj
                cut = _otsu(p)
                group = rows[p > cut]
                if params.min_group <= len(group) <= cap:
                    yield "pattern", group, (sign * v, mu, sign * cut)
    if not spectral_only:
        yield from _shared_values(Z, y, c, rows, params)


def _shared_values(Z, y, c, rows, params, most: int = 40):
    """Groups of class-c rows holding the same exact value on a feature, merged across features that mark
    mostly the same rows. A value on one feature alone must be rare outside the class; a combination of
    values on several features may hold values that are common one by one (a trigger of ordinary values)."""
    in_class = y == c
    position = np.full(len(y), -1)
    position[rows] = np.arange(len(rows))
    cap = params.max_group_share * len(rows)
    sets, members = [], []
    for j in range(Z.shape[1]):
        values, inverse = np.unique(Z[:, j], return_inverse=True)
        inside = np.bincount(inverse[in_class], minlength=len(values))
        outside = np.bincount(inverse[~in_class], minlength=len(values))
        for v in np.flatnonzero((inside >= params.min_group) & (inside <= cap) & (outside <= inside)):
            sets.append((j, values[v], bool(outside[v] <= 0.1 * inside[v])))
            members.append(position[np.flatnonzero(in_class & (inverse == v))])
    if not sets:
        return
    M = np.zeros((len(sets), len(rows)), dtype=np.float32)
    for i, m in enumerate(members):
        M[i, m] = 1.0
    size = M.sum(axis=1)
    overlap = M @ M.T
    close = overlap >= 0.5 * np.minimum(size[:, None], size[None, :])
    used = np.zeros(len(sets), dtype=bool)
    out = 0
    for a in np.argsort(-size, kind="stable"):
        if used[a] or out >= most:
            continue
        feats, vals, mask = [sets[a][0]], [sets[a][1]], M[a] > 0
        used[a] = True
        for b in np.flatnonzero(close[a] & ~used):
            if sets[b][0] not in feats:
                feats.append(sets[b][0])
                vals.append(sets[b][1])
                mask |= M[b] > 0
                used[b] = True
        if len(feats) == 1 and not sets[a][2]:
            continue
        out += 1
        yield "values", rows[mask], (np.array(feats), np.array(vals))


def _test(Z, y, c, rows, kind, group, feats, ref, params, seed, seen, allow_group):
    """A confirmed Trigger, or None."""
    n, d = Z.shape
    C = int(y.max()) + 1
    limit = max(3, d // 4)
    others = np.ones(n, dtype=bool)
    others[group] = False
    direction = mean = model = None
    cut = 0.0
    if kind == "values":
        features, centre = feats
        order = np.argsort(features)
        features, centre = features[order], centre[order]
        halfwidth = np.zeros(len(features))
        typical = np.median(Z[np.flatnonzero(others)[:STATS_ROWS]][:, features], axis=0)
    else:
        g_med = np.median(Z[group], axis=0)
        # The rest of the sample's median and spread from its first STATS_ROWS rows (the sample is in random
        # priority order, so a uniform subsample): per candidate, this was most of the fit's time.
        rest = Z[np.flatnonzero(others)[:STATS_ROWS]]
        o_med = np.median(rest, axis=0)
        o_spread = _spread(rest)
        effect = np.abs(g_med - o_med) / o_spread
        tight = _spread(Z[group]) < o_spread
        features = np.flatnonzero((effect >= params.min_effect) & tight)
        centre, typical = g_med[features], o_med[features]
        halfwidth = 0.5 * np.abs(centre - typical)
        if (len(features) == 0 or len(features) > limit) != allow_group:
            return None
        if allow_group:
            if len(group) > 0.5 * len(rows):
                return None
            kind = "group"
            features = np.zeros(0, dtype=np.int64)
            centre = typical = halfwidth = np.zeros(0)
            direction, mean, cut = feats
    if kind != "group" and len(features) > limit:
        return None
    key = (kind, tuple(features.tolist())) if kind != "group" else (kind, len(group), int(group[0]))
    if key in seen:
        return None
    seen.add(key)
    trig = Trigger(c, kind, features.astype(np.int64), centre, typical, halfwidth, direction, mean, cut, None,
                   np.setdiff1d(np.arange(d), features), np.zeros(0, dtype=np.int64), 0, 0)  # group: keep = all
    carrier = _carries(trig, Z)
    if kind == "group":  # the split is of class c only
        carrier &= y == c
    carriers = np.flatnonzero(carrier & (y == c))
    if len(carriers) < params.min_group or len(carriers) > params.max_group_share * len(rows):
        return None
    if len(carriers) < params.min_purity * carrier.sum():  # the pattern occurs in other classes too: a trait
        return None
    ref_rows = ref[~carrier[ref]]
    if len(ref_rows) <= params.neighbours:
        return None
    trig = dataclasses.replace(trig, ref_rows=ref_rows)
    ref_X = Z[ref].astype(np.float32)
    margin, _, nb = _vote(ref_X, y[ref], trig, Z[carriers], c, C, params.neighbours)
    contradicted = margin >= params.confirm_margin
    if contradicted.sum() < params.min_group:
        return None
    # The same vote with the carriers kept in the reference (each leaves itself out). A trigger's carriers
    # look like another class outside the pattern, however many of them there are; a natural part of
    # class c (older patients, larger stones) has class-c neighbours once its own members may vote. And
    # carriers must be contradicted far more often than class-c rows that carry nothing: on weakly
    # predictable or rare classes many ordinary rows are contradicted too.
    among_all, baseline = _inclusive_contradiction(Z, y, c, carriers, carrier, ref, ref_X, trig, C, params)
    if among_all < 0.5 or among_all < baseline + params.min_lift or baseline > params.max_baseline:
        return None
    if kind != "group":
        if contradicted.mean() < 0.5:
            return None
    else:
        # A group with no small pattern: most of it must be contradicted, by its neighbours outside the
        # group and by a classifier trained without it.
        if contradicted.mean() < params.group_confirm_share:
            return None
        model = _model_without(Z, y, ~carrier, seed)
        if model is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elsewhere = model.predict(Z[carriers]) != c
        if (contradicted & elsewhere).mean() < params.group_confirm_share:
            return None
        # Evidence: the few features on which the group differs most from the rows its neighbours say it is.
        shown, _ = _shared_difference(Z[carriers[contradicted]], ref_X[nb[contradicted]])
        trig = dataclasses.replace(trig, features=shown, typical=np.zeros(len(shown)))
    return dataclasses.replace(trig, model=model, sample_group=len(carriers),
                               sample_confirmed=int(contradicted.sum()), baseline=round(float(baseline), 4))


BASELINE_ROWS = 500


def _inclusive_contradiction(Z, y, c, carriers, carrier, ref, ref_X, trig, C, params) -> tuple[float, float]:
    """(share of carriers, share of class-c rows carrying nothing) that another label outvotes among their
    neighbours in the whole reference, outside the pattern's features, each row leaving itself out.
    A class with too few rows carrying nothing to compare with gives a baseline of 1 (nothing confirms)."""
    everyone = dataclasses.replace(trig, ref_rows=np.arange(len(ref)))
    if len(ref) <= params.neighbours + 1:
        return 0.0, 1.0
    where = np.full(len(Z), -1)
    where[ref] = np.arange(len(ref))
    margin, _, _ = _vote(ref_X, y[ref], everyone, Z[carriers], c, C, params.neighbours, own_rows=where[carriers])
    among_all = float((margin > 0).mean())
    pool = np.flatnonzero((y[ref] == c) & ~carrier[ref])[:BASELINE_ROWS]  # positions in the reference
    if len(pool) < 2 * params.min_group:
        return among_all, 1.0
    margin, _, _ = _vote(ref_X, y[ref], everyone, Z[ref[pool]], c, C, params.neighbours, own_rows=pool)
    return among_all, float((margin > 0).mean())


def _shared_difference(Zq, Zn, features=None):
    """Where query rows differ from their neighbours' mean: the features holding the most of the mean
    squared difference (up to max(2, d/16)) and the share of it they hold."""
    if len(Zq) == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    energy = ((Zq - Zn.mean(axis=1)) ** 2).mean(axis=0)
    total = float(energy.sum())
    if features is None:
        m = max(2, Zq.shape[1] // 16)
        features = np.sort(np.argsort(-energy)[:m])
    return features, (float(energy[features].sum()) / total if total > 0 else 0.0)


def _model_without(Z, y, keep, seed, most: int = 4_000):
    from sklearn.linear_model import LogisticRegression

    rows = np.flatnonzero(keep)[:most]
    if len(np.unique(y[rows])) < 2:
        return None
    model = LogisticRegression(max_iter=200, random_state=seed % (2**32))  # predictions settle long before
    # the weights converge on well-separated classes (which otherwise run to the iteration cap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Z[rows], y[rows])
    return model


def _distinct(triggers: list[Trigger]) -> list[Trigger]:
    """One trigger per (class, features) - the one that confirmed the most carriers."""
    best: dict[tuple, Trigger] = {}
    for t in triggers:
        key = (t.cls, t.kind, tuple(t.features.tolist()))
        if t.kind == "group" or key not in best or t.sample_confirmed > best[key].sample_confirmed:
            best[key if t.kind != "group" else (t.cls, "group", len(best))] = t
    return list(best.values())
