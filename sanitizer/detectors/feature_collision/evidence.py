"""A ``feature_collision`` flag's evidence: the signals, the class the record is drawn toward, the distances
and margins behind them, the vote among its nearest rows and those rows."""

from __future__ import annotations


def evidence_of(state, space, hood, j, label, fired, nats, vote_ratio, outvoting) -> dict:
    """Why a record was flagged: which signals fired, the class it is drawn toward, the distances behind
    the margins beside what is typical for its class, the vote among its k nearest and the nearest rows."""
    classes = state.classes
    # The other class with most votes (per reference row it holds) among the k nearest; failing any, the
    # class whose rows the margin was measured against.
    toward = outvoting if hood.votes[j][outvoting] > 0 else int(hood.other_class[j])
    top = state.params.top_neighbours
    return {
        **({"image_column": space.image.column} if space.image is not None else {}),
        "signals": [s for s, on in zip(("margin", "group", "cluster", "deep_knn"), fired) if on],
        "given_label": classes[label],
        "toward_label": classes[toward] if toward >= 0 else None,
        "own_distance": round(float(hood.own_distance[j]), 4),
        "other_distance": round(float(hood.other_distance[j]), 4),
        "other_label": classes[int(hood.other_class[j])] if hood.other_class[j] >= 0 else None,
        "typical_own_distance": round(float(space.typical_own[label]), 4),
        "margin": round(float(hood.margin[j]), 3),
        "group_margin": round(float(hood.group[j]), 3),
        "cluster_margin": round(float(hood.cluster_margin[j]), 3),
        "nats": {"margin": round(float(nats[0]), 2), "group": round(float(nats[1]), 2),
                 "cluster": round(float(nats[2]), 2)},
        "threshold_nats": state.params.threshold,
        "k": state.k,
        "votes": {classes[c]: int(v) for c, v in enumerate(hood.votes[j]) if v},
        "vote_ratio": round(vote_ratio, 3),
        "vote_ratio_threshold": state.params.vote_ratio,
        "nearest": [
            {"id": str(space.ids[p]), "label": classes[int(space.embedded.labels[p])], "distance": round(float(d), 4)}
            for p, d in zip(hood.nearest[j][:top], hood.nearest_distance[j][:top])
        ],
    }
