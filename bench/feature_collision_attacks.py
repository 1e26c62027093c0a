"""Clean-label feature-collision poisons on digits, crafted by attack code we did not write, cached as scenarios.

    python bench/feature_collision_attacks.py [--seed 0] [--scenarios bullseye,art_fc]

Needs the benchmark extra (``pip install -e '.[bench]'``: adversarial-robustness-toolbox).
On scikit-learn's digits (pixels 0..16, 64 features) it trains the victim - an
MLP 64 -> 128 -> 32 (ReLU) feature extractor plus a linear head, on a clean,
stratified 80% training split - and crafts poisons against its feature layer
with three attack families:

* ``art_fc``: ART's ``FeatureCollisionAttack`` (Poison Frogs' forward-backward
  splitting) against an ART ``PyTorchClassifier`` wrapping the victim, whose
  feature layer is its named submodule ``features``; weak to strong settings
  of ``similarity_coeff`` / ``max_iter``.
* ``bullseye``: the Bullseye Polytope objective (Aghakhani et al. 2021) written
  from the paper in torch (``sanitizer.simulate.craft_bullseye_polytope``): a group of poisons per target, each in an L-inf ball of radius
  ``eps`` (in [0,1] pixel scale) around its own base image, minimising
  ``||mean_i f(p_i) - f(t)||^2 / ||f(t)||^2`` with Adam and projection; and
  ``art_bp``: ART's own ``BullseyePolytopeAttackPyTorch`` at one budget.
* ``poison_frogs``: ``sanitizer.simulate.craft_feature_collision``, what the
  bench used before.

Targets are held-out test images the victim classifies correctly; each target
gets its own random base class (not the target's), and its poisons start at
distinct clean training images of that class and keep that class's label
(clean-label). Every random choice follows ``--seed``.

Attack strength is measured in the victim's feature space f (the backbone's
output), per poison group (one target) and per poison:

* ``mean_ratio`` = ||mean_i f(p_i) - f(t)|| / ||mean_i f(b_i) - f(t)||: how far
  the poisons' feature mean moved toward the target (1 = not at all, 0 = on it);
* ``ratio`` = ||f(p_i) - f(t)|| / ||f(b_i) - f(t)|| per poison;
* ``collided``: the poison is nearer the target than any clean training row of
  its base class;
* ``looks_like_base``: a 5-NN on clean training pixels still gives the base
  class (the label the poison carries) - the clean-label check;
* ``linf``: the L-inf perturbation in raw pixels (0..16).

Each scenario is cached under ``bench/_data/feature_collision/scenarios/`` as
``<name>.npz``: ``X`` (training rows then poisons, raw pixels, float32), ``y``
(int64), ``is_poison``, ``target_of`` (held-out index of the poison's target,
-1 for clean rows), ``base_index`` (training row the poison started from, -1
for clean rows), per-poison ``ratio`` / ``collided`` / ``looks_like_base`` /
``linf`` (NaN / False for clean rows), ``targets_X`` / ``targets_y`` /
``targets_index`` and ``meta`` (a JSON string: attack, params, per-target
``mean_ratio``). ``clean`` is the training split alone; ``small_class`` is the
training split with one class cut to 20 rows. The TorchScript backbone is
saved alongside as ``backbone.pt`` (it takes raw pixels: it divides by 16).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
WORK = os.path.join(HERE, "_data", "feature_collision")
SCENARIOS = os.path.join(WORK, "scenarios")
PIXEL_MAX = 16.0
SMALL_CLASS_ROWS = 20


# --------------------------------------------------------------------------- victim


def load_split(seed: int):
    """Digits, split 80/20 stratified; raw pixels 0..16 as float64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X.astype(np.float64), y.astype(np.int64), test_size=0.2, stratify=y, random_state=seed)


def train_victim(X_train, y_train, seed: int):
    """The victim: MLP 64-128-32 (ReLU) feature extractor + linear head, trained on clean raw pixels / 16.

    Returns ``(backbone, model, train_accuracy)``. ``model`` is an
    ``nn.Sequential`` with named submodules ``features`` and ``head`` taking
    pixels in [0, 1] (what ART wraps); ``backbone`` takes raw pixels (0..16),
    divides by 16 and returns the 32-d features; it is TorchScript-able.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
    model = nn.Sequential(OrderedDict(features=body, head=nn.Linear(32, 10)))
    Xt = torch.tensor(np.asarray(X_train) / PIXEL_MAX, dtype=torch.float32)
    yt = torch.tensor(np.asarray(y_train), dtype=torch.long)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(60):
        order = torch.randperm(len(Xt), generator=generator)
        for a in range(0, len(Xt), 64):
            idx = order[a : a + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            optimiser.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    backbone = Backbone(body).eval()
    with torch.no_grad():
        accuracy = float((model(Xt).argmax(1) == yt).float().mean())
    return backbone, model, accuracy


class Backbone(nn.Module):
    """Takes raw digits pixels (0..16) as the pipeline's feature vector; returns the victim's 32-d features."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x / 16.0)


def embed(backbone, X) -> np.ndarray:
    import torch

    with torch.no_grad():
        return backbone(torch.tensor(np.asarray(X), dtype=torch.float32)).numpy().astype(np.float64)


# --------------------------------------------------------------------------- attacks


@dataclass
class Poisons:
    """Poisons from one attack run: raw pixels (0..16), clean labels, the target and base of each."""

    X: np.ndarray  # (m, 64) raw pixels, clipped to [0, 16]
    y: np.ndarray  # (m,) the base class (clean label)
    target_of: np.ndarray  # (m,) held-out index of the poison's target
    base_index: np.ndarray  # (m,) training row the poison started from
    params: dict = field(default_factory=dict)
    seconds: float = 0.0


def pick_targets(model, X_train, y_train, X_test, y_test, n_targets: int, per_target: int, seed: int,
                 family: str):
    """Held-out targets the victim gets right, each with its own base class and ``per_target`` base rows.

    Returns ``[(target_index, base_class, base_rows), ...]``. The same seed and
    family give the same targets and bases, so strengths of one attack compare
    on identical targets.
    """
    import torch

    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    with torch.no_grad():
        pred = model(torch.tensor(X_test / PIXEL_MAX, dtype=torch.float32)).argmax(1).numpy()
    candidates = np.flatnonzero(pred == y_test)
    targets = rng.choice(candidates, size=n_targets, replace=False)
    out = []
    for t in targets:
        base_class = int(rng.choice([c for c in range(10) if c != y_test[t]]))
        rows = rng.choice(np.flatnonzero(y_train == base_class), size=per_target, replace=False)
        out.append((int(t), base_class, np.sort(rows)))
    return out


def _collect(groups, X_train, params, seconds):
    X, y, t_of, b_idx = [], [], [], []
    for t, base_class, rows, poisons in groups:
        X.append(np.clip(poisons, 0.0, PIXEL_MAX))
        y.append(np.full(len(rows), base_class, dtype=np.int64))
        t_of.append(np.full(len(rows), t, dtype=np.int64))
        b_idx.append(np.asarray(rows, dtype=np.int64))
    return Poisons(np.concatenate(X), np.concatenate(y), np.concatenate(t_of), np.concatenate(b_idx), params, seconds)


def art_classifier(model):
    """ART's PyTorchClassifier around the victim (inputs in [0, 1]); the feature layer is the submodule 'features'."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(64,), nb_classes=10,
                             clip_values=(0.0, 1.0), device_type="cpu")


def art_feature_collision(model, X_train, y_train, X_test, y_test, targets, seed: int, *,
                          similarity_coeff: float = 256.0, max_iter: int = 120, learning_rate: float = 0.1,
                          decay_coeff: float = 0.5) -> Poisons:
    """ART ``FeatureCollisionAttack`` (Poison Frogs) on the victim's ``features`` layer, in [0, 1] pixel scale.

    One attack object per target (ART decays its learning rate in place, so a
    fresh object keeps targets independent); the poisons of a target are
    crafted one after another by ART, as it does. ``targets`` comes from
    :func:`pick_targets`.
    """
    import torch
    from art.attacks.poisoning import FeatureCollisionAttack

    torch.manual_seed(seed)
    classifier = art_classifier(model)
    t0 = time.perf_counter()
    groups = []
    for t, base_class, rows in targets:
        attack = FeatureCollisionAttack(
            classifier, (X_test[t : t + 1] / PIXEL_MAX).astype(np.float32), "features",
            learning_rate=learning_rate, decay_coeff=decay_coeff, max_iter=max_iter,
            similarity_coeff=similarity_coeff, verbose=False)
        poisons, _ = attack.poison((X_train[rows] / PIXEL_MAX).astype(np.float32))
        groups.append((t, base_class, rows, np.asarray(poisons, dtype=np.float64) * PIXEL_MAX))
    params = {"similarity_coeff": similarity_coeff, "max_iter": max_iter, "learning_rate": learning_rate,
              "decay_coeff": decay_coeff}
    return _collect(groups, X_train, params, time.perf_counter() - t0)


def bullseye_polytope(backbone, X_train, y_train, X_test, y_test, targets, seed: int, *, eps: float = 0.1,
                      steps: int = 400, lr: float = 0.02) -> Poisons:
    """Bullseye Polytope (Aghakhani et al. 2021), single victim, end-to-end features, written in torch
    (``sanitizer.simulate.craft_bullseye_polytope``).

    For each target t and its poisons p_1..p_n (each starting at its base b_i):
    minimise ``||mean_i f(p_i) - f(t)||^2 / ||f(t)||^2`` with Adam, after every
    step projecting each poison onto ``|p_i - b_i|_inf <= eps`` and [0, 1]
    (pixels / 16). ``eps`` and ``lr`` are in [0, 1] pixel scale.
    """
    from sanitizer.simulate import craft_bullseye_polytope

    t0 = time.perf_counter()
    groups = []
    for t, base_class, rows in targets:
        poisons = craft_bullseye_polytope(backbone, X_train[rows], X_test[t], eps=eps * PIXEL_MAX, steps=steps,
                                          lr=lr * PIXEL_MAX, bounds=(0.0, PIXEL_MAX), seed=seed)
        groups.append((t, base_class, rows, poisons))
    return _collect(groups, X_train, {"eps": eps, "steps": steps, "lr": lr}, time.perf_counter() - t0)


def art_bullseye_polytope(model, X_train, y_train, X_test, y_test, targets, seed: int, *, eps: float = 0.1,
                          max_iter: int = 400, learning_rate: float = 0.02) -> Poisons:
    """ART ``BullseyePolytopeAttackPyTorch`` on the victim's ``features`` layer, one budget, [0, 1] scale.

    Reported as ART builds it. In ART 1.20.1 ``poison`` computes the "target"
    features from the base images ``x`` it is given, never from ``target``, so
    the poisons are pulled toward their own bases and barely move (see the
    printed ``mean_ratio``, about 1): the same bases give bit-identical poisons
    whatever the target (checked with a zero target too).
    """
    import torch
    from art.attacks.poisoning import BullseyePolytopeAttackPyTorch

    torch.manual_seed(seed)
    classifier = art_classifier(model)
    t0 = time.perf_counter()
    groups = []
    for t, base_class, rows in targets:
        attack = BullseyePolytopeAttackPyTorch(
            classifier, (X_test[t : t + 1] / PIXEL_MAX).astype(np.float32), "features", max_iter=max_iter,
            learning_rate=learning_rate, epsilon=eps, verbose=False)
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar ignores verbose=False
            poisons, _ = attack.poison((X_train[rows] / PIXEL_MAX).astype(np.float32),
                                       y=np.full(len(rows), y_test[t]))
        groups.append((t, base_class, rows, np.asarray(poisons, dtype=np.float64) * PIXEL_MAX))
    params = {"eps": eps, "max_iter": max_iter, "learning_rate": learning_rate}
    return _collect(groups, X_train, params, time.perf_counter() - t0)


def poison_frogs(backbone, X_train, y_train, X_test, y_test, targets, seed: int, *, beta: float = 1.0,
                 steps: int = 400, lr: float = 0.05) -> Poisons:
    """``sanitizer.simulate.craft_feature_collision`` (Poison Frogs with Adam, raw pixel scale, clipped to 0..16)."""
    from sanitizer.simulate import craft_feature_collision

    t0 = time.perf_counter()
    groups = []
    for t, base_class, rows in targets:
        poisons = craft_feature_collision(backbone, X_train[rows], X_test[t], beta=beta, steps=steps, lr=lr,
                                          bounds=(0.0, PIXEL_MAX), seed=seed)
        groups.append((t, base_class, rows, poisons))
    return _collect(groups, X_train, {"beta": beta, "steps": steps, "lr": lr}, time.perf_counter() - t0)


# --------------------------------------------------------------------------- strength


def strength(backbone, poisons: Poisons, X_train, y_train, X_test, pixel_knn=None) -> dict:
    """Attack strength in the victim's feature space: per poison and per target (see the module docstring)."""
    from sklearn.neighbors import KNeighborsClassifier

    if pixel_knn is None:
        pixel_knn = KNeighborsClassifier(5).fit(X_train, y_train)
    e_train = embed(backbone, X_train)
    e_p = embed(backbone, poisons.X)
    e_b = e_train[poisons.base_index]
    e_t = embed(backbone, X_test[poisons.target_of])
    d_pt = np.linalg.norm(e_p - e_t, axis=1)
    ratio = d_pt / np.maximum(np.linalg.norm(e_b - e_t, axis=1), 1e-12)
    collided = np.zeros(len(e_p), dtype=bool)
    for c in np.unique(poisons.y):
        m = poisons.y == c
        rows = e_train[y_train == c]
        nearest = np.min(np.linalg.norm(e_t[m][:, None, :] - rows[None], axis=2), axis=1)
        collided[m] = d_pt[m] < nearest  # nearer the target than any clean row of its base class
    looks = pixel_knn.predict(poisons.X) == poisons.y
    linf = np.abs(poisons.X - X_train[poisons.base_index]).max(axis=1)
    per_target = {}
    for t in np.unique(poisons.target_of):
        m = poisons.target_of == t
        goal = e_t[m][0]
        moved = np.linalg.norm(e_p[m].mean(axis=0) - goal)
        start = np.linalg.norm(e_b[m].mean(axis=0) - goal)
        per_target[int(t)] = {"mean_ratio": float(moved / max(start, 1e-12)), "poisons": int(m.sum()),
                              "base_class": int(poisons.y[m][0]),
                              # Bullseye's own objective scale: ||mean f(p) - f(t)|| / ||f(t)||
                              "mean_to_target_norm": float(moved / max(np.linalg.norm(goal), 1e-12))}
    return {"ratio": ratio, "collided": collided, "looks_like_base": looks, "linf": linf, "per_target": per_target}


# --------------------------------------------------------------------------- scenarios

# name -> (family, attack, n_targets, per_target, kwargs). Strengths of one family share targets and bases.
SPECS = [
    ("art_fc_weak", "art_fc", "art_feature_collision", 3, 10, {"similarity_coeff": 256.0, "max_iter": 60}),
    ("art_fc_mid", "art_fc", "art_feature_collision", 3, 10, {"similarity_coeff": 32.0, "max_iter": 120}),
    ("art_fc_strong", "art_fc", "art_feature_collision", 3, 10, {"similarity_coeff": 8.0, "max_iter": 200}),
    ("bullseye_eps0.25", "bullseye", "bullseye_polytope", 4, 8, {"eps": 0.25}),
    ("bullseye_eps0.15", "bullseye", "bullseye_polytope", 4, 8, {"eps": 0.15}),
    ("bullseye_eps0.1", "bullseye", "bullseye_polytope", 4, 8, {"eps": 0.1}),
    ("bullseye_eps0.05", "bullseye", "bullseye_polytope", 4, 8, {"eps": 0.05}),
    ("art_bp_eps0.1", "bullseye", "art_bullseye_polytope", 4, 8, {"eps": 0.1}),
    ("poison_frogs_beta1", "poison_frogs", "poison_frogs", 4, 8, {"beta": 1.0}),
]
ATTACKS = {"art_feature_collision": art_feature_collision, "bullseye_polytope": bullseye_polytope,
           "art_bullseye_polytope": art_bullseye_polytope, "poison_frogs": poison_frogs}
NEEDS_MODEL = {"art_feature_collision", "art_bullseye_polytope"}


def _save(path, X, y, meta, *, is_poison=None, target_of=None, base_index=None, st=None, targets=None):
    n = len(y)
    is_poison = np.zeros(n, bool) if is_poison is None else is_poison
    full = lambda fill, dtype: np.full(n, fill, dtype=dtype)  # noqa: E731
    arrays = {
        "X": np.asarray(X, dtype=np.float32), "y": np.asarray(y, dtype=np.int64), "is_poison": is_poison,
        "target_of": full(-1, np.int64) if target_of is None else target_of,
        "base_index": full(-1, np.int64) if base_index is None else base_index,
        "ratio": full(np.nan, np.float64), "collided": full(False, bool),
        "looks_like_base": full(False, bool), "linf": full(np.nan, np.float64),
    }
    if st is not None:
        for key in ("ratio", "collided", "looks_like_base", "linf"):
            arrays[key][is_poison] = st[key]
    if targets is not None:
        arrays.update(targets)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def load_scenario(path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def build_scenarios(seed: int = 0, only: list[str] | None = None, out_dir: str = SCENARIOS, verbose: bool = True):
    """Train the victim, craft every scenario for ``seed`` and cache it; returns ``{name: path}`` and the table rows.

    ``only``: substrings; a scenario is built when its name contains one of them
    (``clean`` and ``small_class`` always are).
    """
    import torch
    from sklearn.neighbors import KNeighborsClassifier

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(out_dir, exist_ok=True)
    X_train, X_test, y_train, y_test = load_split(seed)
    backbone, model, accuracy = train_victim(X_train, y_train, seed)
    with torch.no_grad():
        test_acc = float((model(torch.tensor(X_test / PIXEL_MAX, dtype=torch.float32)).argmax(1).numpy()
                          == y_test).mean())
    model_path = os.path.join(out_dir, "backbone.pt")
    torch.jit.save(torch.jit.script(backbone), model_path)
    victim = {"train_accuracy": accuracy, "test_accuracy": test_acc, "train_rows": int(len(X_train)), "seed": seed}
    with open(os.path.join(out_dir, "victim.json"), "w") as f:
        json.dump(victim, f, indent=1)
    if verbose:
        print(f"victim: MLP 64-128-32 + linear head on {len(X_train)} clean digits, train accuracy {accuracy:.3f}, "
              f"held-out {test_acc:.3f}; TorchScript backbone at {model_path}")
    paths = {"backbone": model_path}

    base_meta = {"seed": seed, "victim": victim}
    path = os.path.join(out_dir, "clean.npz")
    _save(path, X_train, y_train, {**base_meta, "attack": "none", "scenario": "clean"})
    paths["clean"] = path
    rng = np.random.default_rng([seed, zlib.crc32(b"small_class")])
    small = int(rng.integers(10))
    keep_small = rng.choice(np.flatnonzero(y_train == small), size=SMALL_CLASS_ROWS, replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(y_train != small), keep_small]))
    path = os.path.join(out_dir, "small_class.npz")
    _save(path, X_train[keep], y_train[keep], {**base_meta, "attack": "none", "scenario": "small_class",
                                               "small_class": small, "small_class_rows": SMALL_CLASS_ROWS})
    paths["small_class"] = path

    pixel_knn = KNeighborsClassifier(5).fit(X_train, y_train)
    rows = []
    for name, family, attack, n_targets, per_target, kwargs in SPECS:
        if only and not any(s in name for s in only):
            continue
        targets = pick_targets(model, X_train, y_train, X_test, y_test, n_targets, per_target, seed, family)
        victim_arg = model if attack in NEEDS_MODEL else backbone
        poisons = ATTACKS[attack](victim_arg, X_train, y_train, X_test, y_test, targets, seed, **kwargs)
        st = strength(backbone, poisons, X_train, y_train, X_test, pixel_knn)
        meta = {**base_meta, "scenario": name, "family": family, "attack": attack, "params": poisons.params,
                "n_targets": n_targets, "per_target": per_target, "craft_seconds": round(poisons.seconds, 2),
                "per_target_strength": {str(k): v for k, v in st["per_target"].items()}}
        n = len(X_train)
        m = len(poisons.y)
        t_idx = np.array([t for t, _, _ in targets], dtype=np.int64)
        path = os.path.join(out_dir, f"{name}.npz")
        _save(path, np.concatenate([X_train, poisons.X]), np.concatenate([y_train, poisons.y]), meta,
              is_poison=np.concatenate([np.zeros(n, bool), np.ones(m, bool)]),
              target_of=np.concatenate([np.full(n, -1, np.int64), poisons.target_of]),
              base_index=np.concatenate([np.full(n, -1, np.int64), poisons.base_index]), st=st,
              targets={"targets_index": t_idx, "targets_X": X_test[t_idx].astype(np.float32),
                       "targets_y": y_test[t_idx]})
        paths[name] = path
        row = strength_row(name, meta, st)
        rows.append(row)
        if verbose:
            if len(rows) == 1:
                print(STRENGTH_HEADER)
            print(format_strength(row))
    return paths, rows


STRENGTH_HEADER = (f"{'scenario':<20} {'params':<34} {'poisons':>7} {'targets':>7} {'mean_ratio (per target)':<30} "
                   f"{'ratio':>6} {'collided':>8} {'look base':>9} {'linf px':>7} {'craft s':>7}")


def strength_row(name, meta, st) -> dict:
    per = [v["mean_ratio"] for v in meta["per_target_strength"].values()]
    return {"scenario": name, "params": ",".join(f"{k}={v}" for k, v in meta["params"].items()
                                                 if k in ("similarity_coeff", "max_iter", "eps", "beta")),
            "poisons": int(len(st["ratio"])), "targets": len(per), "mean_ratio": per,
            "ratio": float(np.median(st["ratio"])), "collided": float(np.mean(st["collided"])),
            "looks_like_base": float(np.mean(st["looks_like_base"])), "linf": float(np.median(st["linf"])),
            "craft_seconds": meta["craft_seconds"]}


def format_strength(r: dict) -> str:
    per = " ".join(f"{v:.2f}" for v in r["mean_ratio"])
    return (f"{r['scenario']:<20} {r['params']:<34} {r['poisons']:>7} {r['targets']:>7} {per:<30} "
            f"{r['ratio']:>6.2f} {r['collided']:>8.0%} {r['looks_like_base']:>9.0%} {r['linf']:>7.2f} "
            f"{r['craft_seconds']:>7.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", default="", help="comma-separated substrings of scenario names (default: all)")
    ap.add_argument("--out", default=SCENARIOS)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    only = [s for s in args.scenarios.split(",") if s]
    paths, _ = build_scenarios(args.seed, only or None, args.out)
    print("ratio = median per-poison ||f(p)-f(t)|| / ||f(b)-f(t)||; linf px = median L-inf perturbation in raw "
          "pixels (0..16); look base = 5-NN on clean pixels gives the base label")
    print(f"cached {len(paths)} files under {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
