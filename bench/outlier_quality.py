"""Detection quality of the ``outlier`` detector on scikit-learn's bundled data sets.

    python bench/outlier_quality.py [--rate 0.03] [--seeds 3]

Plants outliers with ``sanitizer.simulate.inject_outliers`` (``uniform``: every
feature drawn within the data's own range; ``shift``: pushed ~6 standard
deviations along a random direction) and prints recall and false-positive rate
with the default parameters, averaged over seeds.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from sanitizer.detectors import Batch, OutlierDetector
from sanitizer.detectors.outlier import OutlierParams
from sanitizer.records import mix64
from sanitizer.simulate import inject_outliers


def evaluate(X, y, kind: str, rate: float, seed: int) -> tuple[float, float]:
    Xp, planted_idx = inject_outliers(X, rate, seed=seed, kind=kind)
    keys = mix64(np.arange(len(X), dtype=np.uint64) + np.uint64(seed * 1_000_003))
    batch = Batch(
        Xp,
        np.array([str(v) for v in y], dtype=object),
        keys,
        np.array([str(i) for i in range(len(X))], dtype=object),
        tuple(f"f{j}" for j in range(X.shape[1])),
    )
    detector = OutlierDetector()
    state = detector.fit(batch, OutlierParams(), seed)
    flagged = detector.score(batch, state).flagged
    planted = np.zeros(len(X), dtype=bool)
    planted[planted_idx] = True
    return float(flagged[planted].mean()), float(flagged[~planted].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=0.03)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(f"outlier detector, default parameters, {args.rate:.0%} planted, {args.seeds} seeds")
    print(f"{'data set':<16} {'kind':<8} {'recall':>7} {'FPR':>7}")
    for name, loader in (("digits", load_digits), ("breast_cancer", load_breast_cancer), ("wine", load_wine)):
        X, y = loader(return_X_y=True)
        for kind in ("uniform", "shift"):
            results = np.array([evaluate(X, y, kind, args.rate, s) for s in range(args.seeds)])
            recall, fpr = results.mean(axis=0)
            print(f"{name:<16} {kind:<8} {recall:7.3f} {fpr:7.4f}")


if __name__ == "__main__":
    main()
