"""Detection quality of the ``outlier`` detector against PyOD, on real data sets.

    python bench/outlier_quality.py [--rate 0.03] [--seeds 2]

Needs the bench extra (``pip install -e '.[bench]'``: PyOD).

Outliers are planted the ways the anomaly-detection literature plants them
(ADBench's global / local / clustered kinds and their one-feature variant), here
in this file and not with ``sanitizer.simulate``:

* ``spike1``   one feature (with non-zero spread) set 6 standard deviations off its mean;
* ``shift3``   three features shifted by 8 standard deviations each;
* ``uniform``  every feature drawn uniformly inside the data's own range (nothing is
               out of range on its own; the joint pattern is wrong);
* ``scaled``   the row's deviation from its class mean multiplied by 4 (ADBench "local");
* ``novel``    rows of a class the data set does not otherwise contain (that class is
               removed), given the labels of other classes;
* ``clean``    nothing planted: every flag is a false positive.

Data sets (all bundled with scikit-learn, no download): wine, breast_cancer, digits,
iris, and diabetes (its regression target split at the median into two classes).

Our detector runs with its default parameters at its own automatic threshold,
fitted on the whole data set as its sample (as a run with the default sample
size does), scoring every row with the cross-fitted model that did not see it.
PyOD's ECOD, IForest, KNN and LOF get the features standardised and the TRUE
contamination (an oracle advantage no user has); their F1 is at that oracle
threshold, their AUROC threshold-free. Each planted setting also prints how
strong the attack was: the planted rows' median distance to their nearest
clean row, relative to clean rows' median nearest-neighbour distance.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from sanitizer.detectors import Batch
from sanitizer.detectors.outlier import OutlierDetector
from sanitizer.detectors.outlier.detector import OutlierParams
from sanitizer.data.batch import mix64



def load_diabetes_classes(return_X_y: bool = True):
    """scikit-learn's diabetes data (442 x 10, a regression target) as two classes: target above its median or not."""
    X, t = load_diabetes(return_X_y=True)
    return X, (t > np.median(t)).astype(int)


DATASETS = {"wine": load_wine, "breast_cancer": load_breast_cancer, "digits": load_digits, "iris": load_iris,
            "diabetes": load_diabetes_classes}
KINDS = ("spike1", "shift3", "uniform", "scaled", "novel", "clean")


def plant(X: np.ndarray, y: np.ndarray, kind: str, rate: float, rng: np.random.Generator):
    """(X, y, planted mask) with ``rate`` of the rows replaced (or added, for ``novel``) by outliers."""
    X = np.array(X, dtype=np.float64, copy=True)
    y = np.array(y, copy=True)
    if kind == "clean":
        return X, y, np.zeros(len(X), dtype=bool)
    if kind == "novel":
        classes = np.unique(y)
        held = rng.choice(classes)
        keep = y != held
        n_new = max(1, int(round(rate * keep.sum())))
        pick = rng.choice(np.flatnonzero(~keep), size=n_new, replace=False)
        others = classes[classes != held]
        Xn = np.vstack([X[keep], X[pick]])
        yn = np.concatenate([y[keep], rng.choice(others, size=n_new)])
        planted = np.r_[np.zeros(keep.sum(), dtype=bool), np.ones(n_new, dtype=bool)]
        return Xn, yn, planted
    n, d = X.shape
    idx = rng.choice(n, size=max(1, int(round(rate * n))), replace=False)
    mean, sd = X.mean(axis=0), X.std(axis=0)
    varying = np.flatnonzero(sd > 0)
    sign = lambda size: rng.choice([-1.0, 1.0], size=size)  # noqa: E731
    if kind == "spike1":
        for i in idx:
            j = rng.choice(varying)
            X[i, j] = mean[j] + sign(1)[0] * 6.0 * sd[j]
    elif kind == "shift3":
        for i in idx:
            js = rng.choice(varying, size=min(3, len(varying)), replace=False)
            X[i, js] += sign(len(js)) * 8.0 * sd[js]
    elif kind == "uniform":
        X[idx] = rng.uniform(X.min(axis=0), X.max(axis=0), size=(len(idx), d))
    elif kind == "scaled":
        for i in idx:
            centre = X[y == y[i]].mean(axis=0)
            X[i] = centre + 4.0 * (X[i] - centre)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    planted = np.zeros(n, dtype=bool)
    planted[idx] = True
    return X, y, planted


def attack_strength(X: np.ndarray, planted: np.ndarray) -> float:
    """Planted rows' median distance to the nearest clean row / clean rows' median nearest-neighbour distance."""
    Z = StandardScaler().fit_transform(X)
    clean = Z[~planted]
    nn = NearestNeighbors(n_neighbors=2).fit(clean)
    base = np.median(nn.kneighbors(clean)[0][:, 1])
    return float(np.median(nn.kneighbors(Z[planted], n_neighbors=1)[0][:, 0]) / max(base, 1e-12))


def ours(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    keys = mix64(np.arange(len(X), dtype=np.uint64) + np.uint64(seed * 1_000_003))
    batch = Batch(X, np.array([str(v) for v in y], dtype=object), keys,
                  np.array([f"r{i}" for i in range(len(X))], dtype=object),
                  tuple(f"f{j}" for j in range(X.shape[1])))
    detector = OutlierDetector()
    state = detector.fit(batch, OutlierParams(), seed)
    return detector.score(batch, state).flagged


def peers(X: np.ndarray, contamination: float, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF

    Z = StandardScaler().fit_transform(X)
    models = {"ECOD": ECOD(contamination=contamination), "IForest": IForest(contamination=contamination,
              random_state=seed), "KNN": KNN(contamination=contamination), "LOF": LOF(contamination=contamination)}
    out = {}
    for name, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Z)
        out[name] = (np.asarray(model.labels_, dtype=bool), np.asarray(model.decision_scores_))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=0.03)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    names = ("ECOD", "IForest", "KNN", "LOF")
    print(f"outlier detector (default parameters, own threshold) vs PyOD (oracle contamination), "
          f"{args.rate:.0%} planted, {args.seeds} seeds")
    head = f"{'data set':<14}{'kind':<8}{'seed':>4}{'strength':>9} | {'F1':>5}{'recall':>7}{'FPR':>7} |"
    print(head + "".join(f"{n:>9} F1/AUC" for n in names))
    rows = []
    for ds, loader in DATASETS.items():
        X0, y0 = loader(return_X_y=True)
        for kind in KINDS:
            for seed in range(args.seeds):
                X, y, planted = plant(X0, y0, kind, args.rate, np.random.default_rng(1000 * seed + 7))
                flagged = ours(X, y, seed)
                fpr = float(flagged[~planted].mean())
                if not planted.any():
                    rows.append({"ds": ds, "kind": kind, "fpr": fpr})
                    print(f"{ds:<14}{kind:<8}{seed:>4}{'-':>9} | {'-':>5}{'-':>7}{fpr:7.3f} |")
                    continue
                strength = attack_strength(X, planted)
                row = {"ds": ds, "kind": kind, "fpr": fpr, "f1": f1_score(planted, flagged), "recall": float(flagged[planted].mean())}
                cells = []
                for name, (labels, scores) in peers(X, float(planted.mean()), seed).items():
                    row[name] = (f1_score(planted, labels), roc_auc_score(planted, scores))
                    cells.append(f"{row[name][0]:>9.2f} /{row[name][1]:5.2f}")
                rows.append(row)
                print(f"{ds:<14}{kind:<8}{seed:>4}{strength:9.2f} | {row['f1']:5.2f}{row['recall']:7.2f}{fpr:7.3f} |"
                      + "".join(cells))
    planted_rows = [r for r in rows if "f1" in r]
    print()
    print(f"mean over {len(planted_rows)} planted settings: ours F1 {np.mean([r['f1'] for r in planted_rows]):.3f}, "
          f"recall {np.mean([r['recall'] for r in planted_rows]):.3f}, "
          f"FPR {np.mean([r['fpr'] for r in planted_rows]):.4f} (max {max(r['fpr'] for r in rows):.4f} incl. clean)")
    for name in names:
        print(f"  PyOD {name:<8} oracle F1 {np.mean([r[name][0] for r in planted_rows]):.3f}, "
              f"AUROC {np.mean([r[name][1] for r in planted_rows]):.3f}")
    print("per data set: ours F1 / worst FPR (planted and clean settings) | PyOD oracle F1")
    for ds in DATASETS:
        mine = [r for r in planted_rows if r["ds"] == ds]
        worst = max(r["fpr"] for r in rows if r["ds"] == ds)
        print(f"  {ds:<14} {np.mean([r['f1'] for r in mine]):.3f} / {worst:.4f} | "
              + "  ".join(f"{name} {np.mean([r[name][0] for r in mine]):.3f}" for name in names))
    clean = [r["fpr"] for r in rows if r["kind"] == "clean"]
    print(f"clean data (nothing planted): ours FPR mean {np.mean(clean):.4f}, max {max(clean):.4f}")
    bad = [r for r in planted_rows if r["KNN"][0] >= 0.8 and r["f1"] < 0.5]
    print(f"settings where PyOD KNN oracle F1 >= 0.8 and ours < 0.5: {len(bad)}")


if __name__ == "__main__":
    main()
