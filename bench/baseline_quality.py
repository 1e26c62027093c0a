"""A trusted baseline against a poisoned new batch: the default run with and without ``--baseline-data``.

    python bench/baseline_quality.py [--only digits,breast_cancer] [--seed 0] [--attacks flips,backdoor] [--config F]

Each real table (``bench/real_data.py``'s corpus, as shipped) is split at random into an earlier batch, taken
as vetted, and a new batch, poisoned one way at a time:

* **flips**: 25% of the new batch's largest class relabelled as the class its rows are most often confused
  with (the peer model's out-of-fold confusion); a self-fitted detector sees a quarter of that class vote
  for the other;
* **backdoor**: 10% of the new batch, drawn from every class but one, get a trigger (the three numeric
  columns with the largest spread set to their 99th percentile) and that class's label.

Three judges on the same poisoned batch: the default run on the new batch alone, the default run with the
earlier batch as ``--baseline-data``, and cleanlab's ``find_label_issues`` fitted on the new batch alone (5-fold
out-of-fold probabilities of a HistGradientBoostingClassifier). Recall is over the poisoned rows; the
false-positive rate over the new batch's other rows, overall and for the worst class (classes with at least
50 rows). Attack strength: the share of the new batch poisoned, and how many poisoned rows the peer model,
trained on the earlier batch, calls for their original label (a flip nothing could tell from the data would
show as a low number here), and the recall that model reaches at FPR 1% flagging the new batch's rows in order of
how improbable it finds each given label: a peer judge fitted on the same baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import real_data as rd  # noqa: E402

ROOT = Path(HERE) / "_data" / "baseline" / f"run-{os.getpid()}"
TABLES = ("digits", "breast_cancer", "penguins_raw", "loans_full_schema", "diamonds")
FLIP_SHARE = 0.25
BACKDOOR_SHARE = 0.10
MIN_CLASS_ROWS = 50
CONFIG = ""  # --config: a sanitize config for every run instead of the default configuration


def _split(df: pd.DataFrame, label: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = df.loc[df[label].notna()].reset_index(drop=True)
    order = np.random.default_rng([seed, 35]).permutation(len(df))
    half = len(df) // 2
    return df.iloc[np.sort(order[:half])].reset_index(drop=True), df.iloc[np.sort(order[half:])].reset_index(drop=True)


def flips(new: pd.DataFrame, label: str, confusion_to: dict, rng) -> tuple[pd.DataFrame, np.ndarray, str]:
    y = new[label].astype(str).to_numpy()
    source = pd.Series(y).value_counts().index[0]
    target = confusion_to[source]
    rows = np.flatnonzero(y == source)
    pick = np.sort(rng.choice(rows, size=int(round(FLIP_SHARE * len(rows))), replace=False))
    out = new.copy()
    out[label] = out[label].astype(str)
    out.loc[pick, label] = target
    truth = np.zeros(len(new), dtype=bool)
    truth[pick] = True
    return out, truth, f"{len(pick)} of {len(rows)} '{source}' rows -> '{target}'"


def backdoor(new: pd.DataFrame, earlier: pd.DataFrame, label: str, rng) -> tuple[pd.DataFrame, np.ndarray, str]:
    numeric = [c for c in new.select_dtypes(include="number").columns if c != label and c != "rownames"
               and new[c].nunique() > 10]
    spread = (earlier[numeric].quantile(0.99) - earlier[numeric].quantile(0.01)) / earlier[numeric].std().replace(0, 1)
    trigger = list(spread.sort_values(ascending=False).index[:3])
    y = new[label].astype(str).to_numpy()
    target = pd.Series(y).value_counts().index[-1]
    rows = np.flatnonzero(y != target)
    pick = np.sort(rng.choice(rows, size=min(len(rows), int(round(BACKDOOR_SHARE * len(new)))), replace=False))
    out = new.copy()
    out[label] = out[label].astype(str)
    for c in trigger:
        value = earlier[c].quantile(0.99)
        out[c] = out[c].astype(float)
        out.loc[pick, c] = value
    out.loc[pick, label] = target
    truth = np.zeros(len(new), dtype=bool)
    truth[pick] = True
    return out, truth, f"{len(pick)} rows ({len(pick) / len(new):.0%}) get {trigger} at their 99th percentile and '{target}'"


def rates(flagged: np.ndarray, truth: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    recall = float(flagged[truth].mean()) if truth.any() else float("nan")
    clean = ~truth
    fpr = float(flagged[clean].mean()) if clean.any() else 0.0
    worst = 0.0
    for cls in np.unique(y[clean]):
        idx = clean & (y == cls)
        if idx.sum() >= MIN_CLASS_ROWS:
            worst = max(worst, float(flagged[idx].mean()))
    return recall, fpr, worst


def ranked_recall(model, X: np.ndarray, y: np.ndarray, truth: np.ndarray, fpr: float = 0.01) -> float:
    """Recall of ``model`` (trained on the earlier batch) flagging the new batch's rows in order of
    ``1 - P(given label)``, as many as FPR allows among the clean rows: a baseline-fitted peer judge at the
    bar's false-positive rate (where it is low, many clean rows look as wrong to it as the poisoned ones)."""
    P = np.hstack([model.predict_proba(X), np.zeros((len(y), 1))])  # last column: a class the model never saw
    classes = list(model.classes_)
    column = np.array([classes.index(c) if c in classes else len(classes) for c in np.unique(y)])
    codes = np.unique(y, return_inverse=True)[1]
    doubt = 1.0 - P[np.arange(len(y)), column[codes]]
    allowed = int(fpr * (~truth).sum())
    clean = np.sort(doubt[~truth])[::-1]
    cut = clean[allowed] if allowed < len(clean) else -np.inf
    return float((doubt[truth] > cut).mean()) if truth.any() else float("nan")


def run_ours(poisoned: pd.DataFrame, earlier_path: Path | None, name: str, label: str) -> tuple[np.ndarray, float]:
    path = rd.write_parquet(poisoned, ROOT / "in" / f"{name}.parquet")
    rd.CONFIG[:] = (["--config", CONFIG] if CONFIG else []) + ([] if earlier_path is None else
                                                               ["--baseline-data", str(earlier_path)])
    rc, prov, held, seconds = rd.sanitize(path, ROOT / "out" / name, label)
    flagged = np.zeros(len(poisoned), dtype=bool)
    flagged[rd.row_positions(held, poisoned, prov)] = True
    if rc not in (0, 3):
        print(f"    {name}: exit {rc}")
    return flagged, seconds


def table_pass(t: rd.Table, attacks: list[str], seed: int) -> list[dict]:
    df = t.load()
    earlier, new = _split(df, t.label, seed)
    earlier_path = rd.write_parquet(earlier, ROOT / "in" / f"{t.key}-earlier.parquet")
    full_e, _ = rd.peer_features(pd.concat([earlier, new], ignore_index=True), t.label)
    X_e, X_n = full_e[: len(earlier)], full_e[len(earlier):]
    y_e = earlier[t.label].astype(str).to_numpy()
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=seed).fit(X_e, y_e)
    oof = rd.oof_probabilities(X_e, y_e, seed)
    classes = np.unique(y_e)
    confusion = pd.crosstab(y_e, classes[oof.argmax(axis=1)])
    confusion_to = {c: (confusion.loc[c].drop(c, errors="ignore").idxmax() if c in confusion.index else classes[0])
                    for c in classes}
    out = []
    for attack in attacks:
        rng = np.random.default_rng([seed, len(attack)])
        if attack == "flips":
            poisoned, truth, how = flips(new, t.label, confusion_to, rng)
        else:
            poisoned, truth, how = backdoor(new, earlier, t.label, rng)
        y_orig = new[t.label].astype(str).to_numpy()
        y = poisoned[t.label].astype(str).to_numpy()
        full_p, _ = rd.peer_features(pd.concat([earlier, poisoned], ignore_index=True), t.label)
        called_back = float((model.predict(full_p[len(earlier):])[truth] == y_orig[truth]).mean())
        ceiling = ranked_recall(model, full_p[len(earlier):], y, truth)
        print(f"\n{t.key} / {attack}: earlier {len(earlier):,}, new {len(new):,}; {how}; the peer model trained on the "
              f"earlier batch calls {called_back:.0%} of them for their original label, and ranking the new batch by "
              f"how improbable it finds each given label reaches recall {ceiling:.2f} at FPR 1%")
        judged = {}
        for mode, base in (("self-fitted", None), ("--baseline-data", earlier_path)):
            flagged, seconds = run_ours(poisoned, base, f"{t.key}-{attack}-{'base' if base else 'self'}", t.label)
            judged[f"sanitizer {mode}"] = (flagged, seconds)
        codes = np.unique(y, return_inverse=True)[1]
        probs = rd.oof_probabilities(full_p[len(earlier):], codes, seed)
        judged["cleanlab (new batch)"] = (rd.cleanlab_flags(probs, codes), float("nan"))
        for who, (flagged, seconds) in judged.items():
            recall, fpr, worst = rates(flagged, truth, y)
            print(f"  {who:<28} recall {recall:.3f}  FPR {fpr:.2%}  worst class {worst:.2%}  "
                  f"{'' if np.isnan(seconds) else f'{seconds:.0f} s'}")
            out.append({"table": t.key, "attack": attack, "who": who, "recall": recall, "fpr": fpr, "worst": worst,
                        "seconds": seconds})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(TABLES))
    ap.add_argument("--attacks", default="flips,backdoor")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default="", help="a sanitize config for every run instead of the default one")
    args = ap.parse_args(argv)
    global CONFIG
    CONFIG = args.config
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    tables = [t for t in rd.CORPUS if t.key in wanted]
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    print(f"{'sanitize run with ' + CONFIG if CONFIG else 'default sanitize run'}, seed {args.seed}; outputs under {ROOT}")
    started = time.time()
    rows = [r for t in tables for r in table_pass(t, attacks, args.seed)]
    frame = pd.DataFrame(rows)
    print("\nmeans over tables")
    print(frame.groupby(["attack", "who"])[["recall", "fpr", "worst"]].mean().to_string(float_format="%.3f"))
    ours = frame[frame.who == "sanitizer --baseline-data"]
    met = bool(len(ours)) and bool((ours.recall >= 0.9).all() and (ours.fpr <= 0.01).all())
    print(f"\n{'MET' if met else 'NOT MET'}: with the baseline, recall >= 0.9 at FPR <= 1% on every table and attack")
    self_fit = frame[frame.who == "sanitizer self-fitted"].set_index(["table", "attack"]).seconds
    base_fit = ours.set_index(["table", "attack"]).seconds
    print(f"time with the baseline / without, summed over runs: {base_fit.sum() / self_fit.sum():.2f}x")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
