"""Why a value "never seen for the row's class" cannot be told from a rare legitimate one by counting alone.

For each table of ``bench/real_data.py``'s corpus with categorical columns, and each categorical column
(2 to 4,096 levels), every row's (class, value) cell is counted leaving the row out: ``k`` other rows of its
class hold its value, where ``E = (rows holding the value - 1) x the class's share`` would be expected if
class and value were independent. Two rules are printed, as shares of the rows they would hold:

* ``k = 0``: the value is held by no other row of the class (the "class" test of ``outlier``);
* depletion: ``-log P(Poisson(E) <= k) >= N`` nats for N in 5, 8, 12, 20 (the cell holds far fewer rows than
  independence says).

On the tables as shipped, whatever a rule holds is harm; with ``bench/categorical_plants.py``'s
class-unseen plant (1% of the rows given a value that no row of their class holds), recall and FPR.
The plant puts several rows in one cell, so ``k = 0`` misses them, and depletion holds the tables' own
dependence between class and value.

    python bench/class_depletion.py [--only penguins_raw,loans_full_schema,...]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from scipy.stats import poisson

import categorical_plants as cp
import real_data as rd

LEVELS = (5, 8, 12, 20)


def held(frame: pd.DataFrame, label: str, cols: list[str]) -> dict[str, np.ndarray]:
    y = frame[label].astype(str).to_numpy()
    share = pd.Series(y).value_counts() / len(frame)
    out = {"k=0": np.zeros(len(frame), bool), **{f">={n}": np.zeros(len(frame), bool) for n in LEVELS}}
    for c in cols:
        v = frame[c].astype(str).to_numpy()
        present = frame[c].notna().to_numpy()
        cell = pd.Series(list(zip(v, y)))
        k = cell.map(cell.value_counts()).to_numpy() - 1
        total = pd.Series(v).map(pd.Series(v).value_counts()).to_numpy() - 1
        expected = total * share.reindex(y).to_numpy()
        out["k=0"] |= (k == 0) & (expected >= cp.MIN_PLANTED) & present
        nats = -poisson.logcdf(k, np.maximum(expected, 1e-9))
        for n in LEVELS:
            out[f">={n}"] |= (nats >= n) & present
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    only = {k for k in args.only.split(",") if k}
    print(f"{'table':<18} {'rule':>5}  {'as shipped':>10}  {'plant recall / FPR':>20}")
    for t in rd.CORPUS:
        if only and t.key not in only:
            continue
        df = t.load()
        cols = [c for c in df.columns if c != t.label and not pd.api.types.is_numeric_dtype(df[c])
                and 2 <= df[c].nunique() <= 4096]
        if not cols:
            continue
        lab = df[t.label].notna().to_numpy()
        shipped = held(df, t.label, cols)
        plant = cp.plant_class_unseen(df, t.label, cols, np.random.default_rng([0, 1]))
        planted = held(plant.frame, t.label, cols) if plant.frame is not None else None
        for rule, mask in shipped.items():
            line = f"{t.key:<18} {rule:>5}  {mask[lab].mean():>10.2%}"
            if planted is not None:
                is_plant = np.zeros(len(df), bool)
                is_plant[plant.rows] = True
                line += f"  {planted[rule][is_plant].mean():>10.2f} / {planted[rule][~is_plant & lab].mean():.2%}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
