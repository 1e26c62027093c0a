"""Feature-collision poisons against the ``feature_collision`` detector, through the real pipeline.

    python bench/feature_collision_quality.py [--seed 0] [--budgets 0.005,0.01,0.02]

On scikit-learn's digits: trains a small torch backbone (MLP 64 -> 128 -> 32,
plus a linear head) on a clean 80% training split and saves the feature
extractor as TorchScript - the victim's backbone. For each budget (a share of
the training rows), it crafts Poison Frogs feature-collision poisons with
``sanitizer.simulate.craft_feature_collision``: several targets from the
held-out split, each attacked by a group of poisons that start from training
images of another class and keep that class's (correct) label. The poisoned
training set goes through ``sanitize run --embedding-model backbone.pt`` on the
DirectRunner, and the script prints, per budget, how many poisons reached
their target in feature space, the detector's recall on the poisons and its
false-positive rate on the clean rows (rows held by the ``feature_collision``
detector), plus the naive Deep k-NN (k=10) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "_data", "feature_collision")


def train_backbone(X, y, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
    model = nn.Sequential(body, nn.Linear(32, 10))
    Xt = torch.tensor(X / 16.0, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(60):
        order = torch.randperm(len(Xt), generator=generator)
        for a in range(0, len(Xt), 64):
            idx = order[a : a + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            optimiser.step()

    class Backbone(nn.Module):
        """Takes raw digits pixels (0..16) as the pipeline's feature vector."""

        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x / 16.0)

    backbone = Backbone(body).eval()
    with torch.no_grad():
        accuracy = float((model(Xt).argmax(1) == yt).float().mean())
    return backbone, model, accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budgets", default="0.005,0.01,0.02")
    ap.add_argument("--per-target", type=int, default=8, help="poisons aimed at each target")
    ap.add_argument("--beta", type=float, default=1.0,
                    help="input-space penalty; higher keeps poisons closer to their base images (clean-label)")
    args = ap.parse_args()

    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from sanitizer.cli import main as sanitize
    from sanitizer.simulate import craft_feature_collision

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=args.seed)
    backbone, model, accuracy = train_backbone(X_train, y_train, args.seed)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    model_path = os.path.join(WORK, "backbone.pt")
    torch.jit.save(torch.jit.script(backbone), model_path)
    with torch.no_grad():
        test_pred = model(torch.tensor(X_test / 16.0, dtype=torch.float32)).argmax(1).numpy()
        emb_train = backbone(torch.tensor(X_train, dtype=torch.float32)).numpy()
    print(f"backbone: MLP 64-128-32 on {len(X_train)} clean digits, train accuracy {accuracy:.3f}, "
          f"held-out accuracy {(test_pred == y_test).mean():.3f}; TorchScript at {model_path}")
    print(f"poisons crafted with beta={args.beta}; 'look like base' = a 5-NN on clean pixels still assigns the "
          "base class (the label the poison carries)")
    print(f"{'budget':>7} {'poisons':>8} {'targets':>8} {'collided':>9} {'look like base':>15} {'recall':>7} "
          f"{'FPR':>7} {'naive k=10 recall':>18} {'run s':>6}")

    from sklearn.neighbors import KNeighborsClassifier

    pixel_knn = KNeighborsClassifier(5).fit(X_train, y_train)  # "would a human-like pixel view keep the label?"
    rng = np.random.default_rng(args.seed)
    for budget in [float(b) for b in args.budgets.split(",")]:
        n_poison = max(args.per_target, int(round(budget * len(X_train))))
        n_targets = max(2, int(np.ceil(n_poison / args.per_target)))  # always several targets
        candidates = np.flatnonzero(test_pred == y_test)
        targets = rng.choice(candidates, size=n_targets, replace=False)
        rows_X, rows_y, is_poison, collided = [X_train], [y_train], [np.zeros(len(X_train), bool)], 0
        looks_like_base = 0
        remaining = n_poison
        for t in targets:
            count = min(int(np.ceil(n_poison / n_targets)), remaining)
            remaining -= count
            base_class = rng.choice([c for c in range(10) if c != y_test[t]])
            bases = X_train[rng.choice(np.flatnonzero(y_train == base_class), size=count, replace=False)]
            poisons = craft_feature_collision(backbone, bases, X_test[t], beta=args.beta, steps=400, lr=0.05,
                                              bounds=(0.0, 16.0), seed=args.seed)
            looks_like_base += int(np.sum(pixel_knn.predict(poisons) == base_class))
            with torch.no_grad():
                e = backbone(torch.tensor(poisons, dtype=torch.float32)).numpy()
                e_t = backbone(torch.tensor(X_test[t : t + 1], dtype=torch.float32)).numpy()
            # A poison "collided" when it sits nearer the target than any clean training row of its base class.
            base_rows = emb_train[y_train == base_class]
            nearest_base = np.min(np.linalg.norm(e[:, None, :] - base_rows[None], axis=2), axis=1)
            collided += int(np.sum(np.linalg.norm(e - e_t, axis=1) < nearest_base))
            rows_X.append(poisons)
            rows_y.append(np.full(count, base_class))
            is_poison.append(np.ones(count, bool))
        Xp, yp, poison = np.concatenate(rows_X), np.concatenate(rows_y), np.concatenate(is_poison)
        ids = np.array([f"row-{i:05d}" for i in range(len(yp))])
        data = os.path.join(WORK, f"poisoned-{budget}.parquet")
        pq.write_table(pa.table({
            "image_id": ids,
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(Xp.astype(np.float32).ravel()), 64),
            "label": yp.astype(np.int64),
        }), data)
        out = os.path.join(WORK, f"out-{budget}")
        t0 = time.perf_counter()
        code = sanitize(["run", "--input", data, "--output", out, "--label-column", "label", "--id-column", "image_id",
                         "--embedding-model", model_path, "--seed", str(args.seed), "--overwrite", "-q"])
        elapsed = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"sanitize exited {code}")
        q = pq.read_table(os.path.join(out, "quarantine"), columns=["image_id", "sanitizer_reasons"])
        held = {i for i, r in zip(q.column(0).to_pylist(), q.column(1).to_pylist())
                if any(x["detector"] == "feature_collision" for x in json.loads(r))}
        flagged = np.array([i in held for i in ids])
        recall = flagged[poison].mean()
        fpr = flagged[~poison].mean()
        naive = naive_deep_knn(backbone, Xp, yp, k=10)
        print(f"{budget:>7.1%} {poison.sum():>8} {n_targets:>8} {collided:>9} {looks_like_base:>15} {recall:>7.3f} "
              f"{fpr:>7.4f} {naive[poison].mean():>18.3f} {elapsed:>6.1f}")


def naive_deep_knn(backbone, X, y, k: int) -> np.ndarray:
    """Plain Deep k-NN with a small k, for comparison: plurality of the k nearest (excluding itself)."""
    import torch

    with torch.no_grad():
        e = backbone(torch.tensor(X, dtype=torch.float32)).numpy()
    d = np.linalg.norm(e[:, None, :] - e[None], axis=2)
    np.fill_diagonal(d, np.inf)
    nn_idx = np.argsort(d, axis=1)[:, :k]
    votes = np.stack([np.bincount(y[row], minlength=10) for row in nn_idx])
    return votes[np.arange(len(y)), y] < votes.max(axis=1)


if __name__ == "__main__":
    sys.exit(main())
