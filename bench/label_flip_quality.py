"""Label-flip detection quality: sanitizer's ``label_flip`` detector against cleanlab.

    python bench/label_flip_quality.py [--seeds 3] [--datasets digits,breast_cancer,wine]

Needs the benchmark extra (``pip install -e '.[bench]'``: cleanlab). On
scikit-learn's bundled digits, breast_cancer and wine it plants random flips
(10%, 20%, 40% of rows get another label) and pair flips (10%, 20% of every
class relabelled as the next class), three seeds each, and prints precision,
recall and F1 of

* ``sanitizer``: the label_flip detector with default parameters, fitted on the
  whole data set as its sample (5-fold cross-fitting, standardised logistic
  regression blended with 10-nearest-neighbour labels);
* ``cleanlab``: ``cleanlab.filter.find_label_issues`` (defaults) given 5-fold
  out-of-fold probabilities from the same model family (standardised logistic
  regression),

measured in the same run on the same poisoned labels.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sanitizer.detectors import Batch, LabelFlipDetector
from sanitizer.detectors.label_flip import LabelFlipParams
from sanitizer.records import mix64
from sanitizer.simulate import flip_labels

DATASETS = {"digits": load_digits, "breast_cancer": load_breast_cancer, "wine": load_wine}
SETTINGS = [("random", 0.10), ("random", 0.20), ("random", 0.40), ("pair", 0.10), ("pair", 0.20)]


def prf(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(flagged & truth))
    precision = tp / max(flagged.sum(), 1)
    recall = tp / max(truth.sum(), 1)
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def ours(X, y_noisy, seed: int) -> np.ndarray:
    n = len(y_noisy)
    batch = Batch(
        np.asarray(X, dtype=np.float64),
        np.array([str(v) for v in y_noisy], dtype=object),
        mix64(np.arange(n, dtype=np.uint64) + np.uint64(seed * 1_000_003)),
        np.array([f"row-{i}" for i in range(n)], dtype=object),
        tuple(f"f{j}" for j in range(X.shape[1])),
    )
    detector = LabelFlipDetector()
    state = detector.fit(batch, LabelFlipParams(), seed)
    return detector.score(batch, state).flagged


def cleanlab_baseline(X, y_noisy, seed: int) -> np.ndarray:
    from cleanlab.filter import find_label_issues

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs = cross_val_predict(
            model, X, y_noisy, cv=StratifiedKFold(5, shuffle=True, random_state=seed), method="predict_proba"
        )
        return find_label_issues(labels=y_noisy, pred_probs=probs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    args = ap.parse_args()
    try:
        import cleanlab
    except ImportError:
        raise SystemExit("cleanlab is a benchmark-only dependency: pip install -e '.[bench]'") from None
    print(f"label flips: sanitizer label_flip vs cleanlab {cleanlab.__version__} find_label_issues, "
          f"mean of {args.seeds} seeds")
    header = f"{'data set':<14} {'noise':<11} {'sanitizer P / R / F1':>22} {'cleanlab P / R / F1':>22} {'dF1':>7}"
    print(header)
    print("-" * len(header))
    deltas = []
    wins = 0
    rows = 0
    for name in args.datasets.split(","):
        X, y = DATASETS[name](return_X_y=True)
        for kind, rate in SETTINGS:
            a, b = [], []
            for seed in range(args.seeds):
                y_noisy, _ = flip_labels(y, rate, seed=seed, pair="cycle" if kind == "pair" else None)
                truth = y_noisy != y
                a.append(prf(ours(X, y_noisy, seed), truth))
                b.append(prf(cleanlab_baseline(X, y_noisy, seed), truth))
            a, b = np.mean(a, axis=0), np.mean(b, axis=0)
            delta = a[2] - b[2]
            deltas.append(delta)
            wins += delta >= 0
            rows += 1
            print(f"{name:<14} {kind + f' {rate:.0%}':<11} {a[0]:6.3f} {a[1]:6.3f} {a[2]:6.3f}   "
                  f"{b[0]:6.3f} {b[1]:6.3f} {b[2]:6.3f}  {delta:+.3f}")
    print(f"\nF1 at least cleanlab's in {wins} of {rows} settings; mean F1 difference {np.mean(deltas):+.3f}")


if __name__ == "__main__":
    main()
