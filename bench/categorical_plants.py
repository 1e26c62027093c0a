"""Categorical poison for ``bench/real_data.py --plants categorical``: four plants, each on its own copy.

The columns planted in are those the as-shipped run encoded as categorical codes: ``columns.kinds``
of its provenance, kind ``categorical`` or ``boolean`` stored as text (both reach the detectors as
codes). 1% of the labelled rows (at least 5) get, each on its own copy of the table:

* **unseen**: one categorical value replaced by a typo of it (a character dropped, two swapped, the
  case changed) or, when no typo is new, a made-up category name; unique per row, never in the column;
* **class-unseen**: a value that exists in the column (at least 10 rows) but never with the row's
  class anywhere in the table;
* **swapped**: the values of two categorical columns whose domains share no value, swapped within
  the row;
* **backdoor**: 3% of the rows of the other classes get a rare combination of two categorical values
  (the pair holds <= 0.5% of the clean rows, each value >= 2% alone) and the target class's label.

Per plant: recall (planted rows held for any reason), the false-positive rate among unplanted
labelled rows (overall and for the worst class with >= 50 of them), and the attack strength.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import numpy as np
import pandas as pd

PLANT_RATE = 0.01
MIN_PLANTED = 5
BACKDOOR_RATE = 0.03
PAIR_MAX_SHARE = 0.005
PAIR_MIN_VALUE_SHARE = 0.02
MIN_VALUE_ROWS = 10
MAX_LEVELS = 50  # class-unseen and backdoor values come from columns with a handful of levels
MIN_CLASS_ROWS = 50
SYLLABLES = ("ka", "zu", "mor", "vel", "tri", "xo", "qua", "nix", "bel", "dra", "pho", "lum")


@dataclass
class Plant:
    name: str
    frame: pd.DataFrame | None = None
    rows: np.ndarray | None = None
    strength: str = ""
    skipped: str = ""


def categorical_columns(df: pd.DataFrame, label: str, prov: dict | None) -> list[str]:
    """Text columns the run encodes as codes (kind categorical, or boolean stored as text)."""
    out = []
    for entry in ((prov or {}).get("columns") or {}).get("kinds") or []:
        name = entry.get("name")
        if entry.get("kind") not in ("categorical", "boolean") or "vocabulary" not in entry or name == label:
            continue
        if name in df and not pd.api.types.is_numeric_dtype(df[name]) and not pd.api.types.is_bool_dtype(df[name]):
            out.append(name)
    return out


def _labelled(df: pd.DataFrame, label: str) -> np.ndarray:
    return np.flatnonzero(df[label].notna().to_numpy())


def _count(n_rows: int, rate: float) -> int:
    return max(MIN_PLANTED, int(round(rate * n_rows)))


def _set(df: pd.DataFrame, pos: int, col: str, value) -> None:
    if df[col].dtype != object:
        df[col] = df[col].astype(object)
    df.iat[pos, df.columns.get_loc(col)] = value


def _restore(df: pd.DataFrame, original: pd.DataFrame, cols) -> pd.DataFrame:
    for c in cols:
        if df[c].dtype != original[c].dtype and not isinstance(original[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(original[c].dtype)
    return df


def _typo(value: str, rng: np.random.Generator) -> str:
    how = int(rng.integers(3))
    if how == 0 and len(value) >= 2:
        i = int(rng.integers(len(value)))
        return value[:i] + value[i + 1:]
    if how == 1 and len(value) >= 2:
        i = int(rng.integers(len(value) - 1))
        return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    return value.swapcase() if rng.random() < 0.5 else value.upper() if value != value.upper() else value.lower()


def _new_name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(SYLLABLES, size=3)).capitalize()


def plant_unseen(df: pd.DataFrame, label: str, cols: list[str], rng: np.random.Generator) -> Plant:
    rows = np.sort(rng.choice(_labelled(df, label), size=min(_count(len(_labelled(df, label)), PLANT_RATE),
                                                               len(_labelled(df, label))), replace=False))
    out = df.copy()
    domain = {c: set(df[c].dropna().astype(str)) for c in cols}
    used: set[tuple[str, str]] = set()
    typos = 0
    for pos in rows:
        present = [c for c in cols if pd.notna(df[c].iat[pos])]
        col = present[int(rng.integers(len(present)))] if present else cols[int(rng.integers(len(cols)))]
        value = None
        if pd.notna(df[col].iat[pos]):
            for _ in range(20):
                v = _typo(str(df[col].iat[pos]), rng)
                if v and v not in domain[col] and (col, v) not in used:
                    value, typos = v, typos + 1
                    break
        while value is None or value in domain[col] or (col, value) in used:
            value = _new_name(rng)
        used.add((col, value))
        _set(out, pos, col, value)
    out = _restore(out, df, cols)
    return Plant("unseen", out, rows, f"{typos} typos, {len(rows) - typos} new names; 0 rows hold any elsewhere")


def plant_class_unseen(df: pd.DataFrame, label: str, cols: list[str], rng: np.random.Generator) -> Plant:
    lab = _labelled(df, label)
    y = df[label].iloc[lab].astype(str).to_numpy()
    candidates: dict[str, list[tuple[str, object, int]]] = {}
    for col in cols:
        s = df[col].iloc[lab]
        if s.nunique() > MAX_LEVELS:
            continue
        table = pd.crosstab(s.to_numpy(), y)
        totals = table.sum(axis=1)
        for cls in table.columns:
            for value in table.index[(table[cls] == 0) & (totals >= MIN_VALUE_ROWS)]:
                candidates.setdefault(cls, []).append((col, value, int(totals[value])))
    eligible = lab[np.isin(y, list(candidates))]
    if not len(eligible):
        return Plant("class-unseen", skipped=f"no value of a column with <= {MAX_LEVELS} levels is absent from a class")
    rows = np.sort(rng.choice(eligible, size=min(_count(len(lab), PLANT_RATE), len(eligible)), replace=False))
    out = df.copy()
    held_elsewhere = []
    for pos in rows:
        options = candidates[str(df[label].iat[pos])]
        col, value, total = options[int(rng.integers(len(options)))]
        _set(out, pos, col, value)
        held_elsewhere.append(total)
    out = _restore(out, df, cols)
    pairs = sum(len(v) for v in candidates.values())
    return Plant("class-unseen", out, rows, f"values held by {int(np.median(held_elsewhere))} rows (median) of "
                                            f"other classes; {pairs} (column, class, value) choices")


def plant_swapped(df: pd.DataFrame, label: str, cols: list[str], rng: np.random.Generator) -> Plant:
    domain = {c: set(df[c].dropna().astype(str)) for c in cols}
    pairs = [(a, b) for a, b in combinations(cols, 2) if domain[a] and domain[b] and not domain[a] & domain[b]]
    if not pairs:
        return Plant("swapped", skipped="no two categorical columns with disjoint domains")
    lab = _labelled(df, label)
    both = {p: df[p[0]].notna().to_numpy() & df[p[1]].notna().to_numpy() for p in pairs}
    eligible = lab[np.any([both[p][lab] for p in pairs], axis=0)]
    rows = np.sort(rng.choice(eligible, size=min(_count(len(lab), PLANT_RATE), len(eligible)), replace=False))
    out = df.copy()
    elsewhere = 0
    for pos in rows:
        options = [p for p in pairs if both[p][pos]]
        a, b = options[int(rng.integers(len(options)))]
        va, vb = df[a].iat[pos], df[b].iat[pos]
        elsewhere += int((df[a].astype(str) == str(vb)).sum() + (df[b].astype(str) == str(va)).sum())
        _set(out, pos, a, vb)
        _set(out, pos, b, va)
    out = _restore(out, df, cols)
    return Plant("swapped", out, rows, f"{len(pairs)} column pairs; {elsewhere} rows hold a moved value elsewhere")


def plant_backdoor(df: pd.DataFrame, label: str, cols: list[str], rng: np.random.Generator,
                   predicted: Callable[[], np.ndarray] | None = None) -> Plant:
    small = [c for c in cols if 2 <= df[c].nunique() <= MAX_LEVELS]
    best = None
    n = len(df)
    for a, b in combinations(small, 2):
        share_a, share_b = df[a].value_counts() / n, df[b].value_counts() / n
        joint = pd.crosstab(df[a], df[b]) / n
        for va in share_a.index[share_a >= PAIR_MIN_VALUE_SHARE]:
            for vb in share_b.index[share_b >= PAIR_MIN_VALUE_SHARE]:
                s = float(joint.at[va, vb]) if va in joint.index and vb in joint.columns else 0.0
                key = min(share_a[va], share_b[vb])
                if s <= PAIR_MAX_SHARE and (best is None or key > best[0]):
                    best = (key, a, va, b, vb, s)
    if best is None:
        return Plant("backdoor", skipped=f"no pair of values (each >= {PAIR_MIN_VALUE_SHARE:.0%}) together in "
                                         f"<= {PAIR_MAX_SHARE:.1%} of rows")
    _, a, va, b, vb, share = best
    lab = _labelled(df, label)
    classes = pd.unique(df[label].iloc[lab])
    target = classes[int(rng.integers(len(classes)))]
    others = lab[(df[label].iloc[lab] != target).to_numpy()]
    rows = np.sort(rng.choice(others, size=min(_count(len(others), BACKDOOR_RATE), len(others)), replace=False))
    out = df.copy()
    for pos in rows:
        _set(out, pos, a, va)
        _set(out, pos, b, vb)
    out = _restore(out, df, [a, b])
    original = out[label].copy()
    out.loc[out.index[rows], label] = target
    if out[label].dtype != original.dtype:
        out[label] = out[label].astype(original.dtype)
    strength = f"{a}={va!r} & {b}={vb!r} in {share:.2%} of clean rows, target {target!r}"
    if predicted is not None:
        pred = predicted()  # the peer's out-of-fold prediction for every labelled row of the clean table
        truth = df[label].iloc[lab].astype(str).to_numpy()
        at = np.isin(lab, rows)
        majority = float(pd.Series(truth[at]).value_counts(normalize=True).iloc[0])
        strength += (f"; peer predicts their original label for {float((pred[at] == truth[at]).mean()):.2f} "
                     f"(their majority class {majority:.2f})")
    return Plant("backdoor", out, rows, strength)


PLANTS = (("unseen", plant_unseen), ("class-unseen", plant_class_unseen), ("swapped", plant_swapped),
          ("backdoor", plant_backdoor))


def measure(frame: pd.DataFrame, label: str, rows: np.ndarray, held: np.ndarray) -> dict:
    """Recall over the planted rows; FPR over the unplanted labelled rows, overall and the worst class's."""
    planted = np.zeros(len(frame), dtype=bool)
    planted[rows] = True
    clean = frame[label].notna().to_numpy() & ~planted
    worst, worst_class = 0.0, None
    labels = frame[label].astype(str).to_numpy()
    for cls in np.unique(labels[clean]):
        idx = clean & (labels == cls)
        if idx.sum() >= MIN_CLASS_ROWS and held[idx].mean() >= worst:
            worst, worst_class = float(held[idx].mean()), cls
    return {"n": int(planted.sum()), "recall": float(held[planted].mean()), "fpr": float(held[clean].mean()),
            "worst": worst, "worst_class": worst_class}


def categorical_pass(key: str, df: pd.DataFrame, label: str, prov: dict | None, seed: int,
                     held_rows: Callable[[pd.DataFrame, str], tuple[int, np.ndarray]],
                     predicted: Callable[[], np.ndarray] | None, which: set[str] | None = None) -> dict[str, dict]:
    """Each plant (of ``which``; every one when empty) on its own copy, run through ``held_rows(frame, tag)``:
    (exit code, boolean mask of rows held)."""
    cols = categorical_columns(df, label, prov)
    results: dict[str, dict] = {}
    if not cols:
        return results
    for i, (name, make) in enumerate(PLANTS):
        if which and name not in which:
            continue
        rng = np.random.default_rng([seed, i])
        p = make(df, label, cols, rng, predicted) if name == "backdoor" else make(df, label, cols, rng)
        if p.frame is None:
            results[name] = {"skipped": p.skipped}
            print(f"{key:<18} {name:<13} skipped: {p.skipped}", flush=True)
            continue
        rc, held = held_rows(p.frame, name)
        r = measure(p.frame, label, p.rows, held)
        r["strength"] = p.strength + (f"; run exit {rc}" if rc else "")
        results[name] = r
        worst = f"{r['worst']:.1%} ({r['worst_class']})"[:20]
        print(f"{key:<18} {name:<13} {r['n']:>5} {r['recall']:>6.2f} {r['fpr']:>7.2%} {worst:>20}  {r['strength']}",
              flush=True)
    return results


def print_header() -> None:
    print(f"categorical plants ({PLANT_RATE:.0%} of labelled rows each, backdoor {BACKDOOR_RATE:.0%} of the other "
          "classes), each on its own copy; columns: the run's categorical and text boolean columns")
    print(f"{'table':<18} {'plant':<13} {'rows':>5} {'recall':>6} {'FPR':>7} {'worst class FPR':>20}  strength")


def print_summary(per_table: dict[str, dict[str, dict]]) -> None:
    for name, _ in PLANTS:
        ran = {k: r[name] for k, r in per_table.items() if name in r and "skipped" not in r[name]}
        ok = [k for k, r in ran.items() if r["recall"] >= 0.9 and r["fpr"] <= 0.01]
        skipped = [k for k, r in per_table.items() if name in r and "skipped" in r[name]]
        missing = sorted(set(ran) - set(ok))
        print(f"{name:<13} {len(ok)}/{len(ran)} tables at recall >= 0.9 and FPR <= 1%"
              + (f"; short: {', '.join(missing)}" if missing else "")
              + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    none = [k for k, r in per_table.items() if not r]
    if none:
        print(f"no categorical column: {', '.join(none)}")
