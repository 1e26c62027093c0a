"""Poison injection for evaluation: the demo, the tests and the benchmarks plant known poison with these.

Every function takes a seed and returns the poisoned copy plus the indices it
changed, so a caller can score a detector against the truth.
"""

from __future__ import annotations

import numpy as np


def flip_labels(y: np.ndarray, rate: float, *, seed: int, classes: np.ndarray | None = None,
                pair: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Relabel a share of rows.

    Random flips (``pair=None``): ``rate`` of all rows get a different label drawn
    uniformly from the other classes. Pair flips (``pair=(a, b)``): ``rate`` of
    the rows of class ``a`` are relabelled ``b``. ``pair="cycle"``: the pair-flip
    noise of the noisy-label literature, ``rate`` of every class relabelled as
    the next class (in sorted order, the last as the first).
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    out = y.copy()
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if len(classes) < 2:
        raise ValueError("flipping labels needs at least two classes")
    if isinstance(pair, str):
        if pair != "cycle":
            raise ValueError(f"pair must be (a, b), 'cycle' or None, got {pair!r}")
        changed = []
        for a, b in zip(classes, np.roll(classes, -1)):
            candidates = np.flatnonzero(y == a)
            idx = rng.choice(candidates, size=int(round(rate * len(candidates))), replace=False)
            out[idx] = b
            changed.append(idx)
        return out, np.sort(np.concatenate(changed))
    if pair is not None:
        a, b = pair
        candidates = np.flatnonzero(y == a)
        idx = rng.choice(candidates, size=int(round(rate * len(candidates))), replace=False)
        out[idx] = b
        return out, np.sort(idx)
    idx = rng.choice(len(y), size=int(round(rate * len(y))), replace=False)
    for i in idx:
        others = classes[classes != y[i]]
        out[i] = others[rng.integers(len(others))]
    return out, np.sort(idx)


def inject_outliers(X: np.ndarray, rate: float, *, seed: int, kind: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """Replace a share of rows with outliers; returns the new matrix and the replaced row indices.

    ``uniform``: every feature drawn uniformly within the data's own per-feature
    range (nothing is out of range on its own; the joint pattern is wrong).
    ``shift``: the row pushed far along a random direction (about 6 standard
    deviations), an out-of-range outlier.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float64, copy=True)
    idx = np.sort(rng.choice(len(X), size=int(round(rate * len(X))), replace=False))
    lo, hi = X.min(axis=0), X.max(axis=0)
    if kind == "uniform":
        X[idx] = rng.uniform(lo, hi, size=(len(idx), X.shape[1]))
    elif kind == "shift":
        direction = rng.normal(size=(len(idx), X.shape[1]))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        X[idx] = X[idx] + 6.0 * direction * X.std(axis=0) * np.sqrt(X.shape[1])
    else:
        raise ValueError(f"kind must be 'uniform' or 'shift', got {kind!r}")
    return X, idx


def craft_feature_collision(backbone, bases: np.ndarray, target: np.ndarray, *, beta: float = 1.0,
                            steps: int = 300, lr: float = 0.05, bounds: tuple[float, float] | None = None,
                            seed: int = 0) -> np.ndarray:
    """Craft clean-label feature-collision poisons (Poison Frogs, Shafahi et al. 2018) with torch autograd.

    Each poison starts at a base instance ``b`` (which keeps its own, correct
    label) and minimises ``||f(x) - f(target)||^2 + beta * ||x - b||^2``: close to
    the base in input space (it still looks like its class), on top of the target
    in the backbone ``f``'s feature space. ``beta`` is scaled by
    ``(embedding_dim / input_dim)^2`` as in the paper. Inputs are clipped to
    ``bounds`` (for example the pixel range) after every step.

    ``backbone`` is a torch module (or TorchScript module) mapping (n, d) float32
    to (n, e); ``bases`` is (m, d); ``target`` is (d,). Returns (m, d) poisons.
    """
    import torch

    torch.manual_seed(seed)
    base = torch.tensor(np.asarray(bases, dtype=np.float32))
    with torch.no_grad():
        goal = backbone(torch.tensor(np.asarray(target, dtype=np.float32)).reshape(1, -1))
        dim_e = goal.shape[1]
    weight = beta * (dim_e / base.shape[1]) ** 2
    x = base.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = ((backbone(x) - goal) ** 2).sum(dim=1) + weight * ((x - base) ** 2).sum(dim=1)
        loss.sum().backward()
        optimiser.step()
        if bounds is not None:
            with torch.no_grad():
                x.clamp_(bounds[0], bounds[1])
    return x.detach().numpy().astype(np.float64)


def craft_bullseye_polytope(backbone, bases: np.ndarray, target: np.ndarray, *, eps: float,
                            steps: int = 400, lr: float = 0.3, bounds: tuple[float, float] | None = None,
                            seed: int = 0) -> np.ndarray:
    """Craft clean-label Bullseye Polytope poisons (Aghakhani et al. 2021, single victim) with torch autograd.

    The poisons start at the base instances and jointly minimise
    ``||mean_i f(x_i) - f(target)||^2 / ||f(target)||^2``: only their *mean*
    embedding is driven onto the target, so each poison may stop part-way. After
    every Adam step each poison is projected back into the L-infinity ball of
    radius ``eps`` around its own base (in input units) and into ``bounds``.

    ``backbone`` maps (n, d) float32 to (n, e); ``bases`` is (m, d); ``target`` is (d,).
    Returns (m, d) poisons.
    """
    import torch

    torch.manual_seed(seed)
    base = torch.tensor(np.asarray(bases, dtype=np.float32))
    with torch.no_grad():
        goal = backbone(torch.tensor(np.asarray(target, dtype=np.float32)).reshape(1, -1))[0]
    scale = float((goal**2).sum().clamp_min(1e-12))
    x = base.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        (((backbone(x).mean(dim=0) - goal) ** 2).sum() / scale).backward()
        optimiser.step()
        with torch.no_grad():
            x.copy_(torch.minimum(torch.maximum(x, base - eps), base + eps))
            if bounds is not None:
                x.clamp_(bounds[0], bounds[1])
    return x.detach().numpy().astype(np.float64)
