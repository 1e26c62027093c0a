"""Clean-label feature-collision poisons from outside attack code against the ``feature_collision`` detector.

    python bench/feature_collision_quality.py [--seed 0] [--scenarios bullseye,clean] [--reuse]

Needs the benchmark extra (``pip install -e '.[bench]'``: adversarial-robustness-toolbox).
The poisons come from ``bench/feature_collision_attacks.py`` (see its
docstring): on scikit-learn's digits it trains the victim (MLP 64-128-32 + a
linear head on a clean 80% split; the TorchScript feature extractor is the
pipeline's ``--embedding-model``) and crafts clean-label poisons against its
feature layer with ART's ``FeatureCollisionAttack`` (three strengths), the
Bullseye Polytope objective written in torch (eps 0.25 / 0.15 / 0.1 / 0.05),
ART's ``BullseyePolytopeAttackPyTorch`` (one budget) and Poison Frogs
(``sanitizer.simulate.craft_feature_collision``). Scenarios are cached under
``bench/_data/feature_collision/scenarios/``; ``--reuse`` takes them from
there (rebuilding when the cache is missing or from another seed), otherwise
they are crafted afresh (about a minute on 2 cores).

Every scenario goes through the real pipeline - ``sanitize run
--embedding-model backbone.pt`` on the DirectRunner, as Parquet with
``image_id``, ``pixels`` (fixed-size list of 64 float32) and ``label`` - and a
row counts as flagged when its quarantine reasons name ``feature_collision``.
Per attack and strength the script prints the attack's strength in the
victim's feature space (``mean ratio``: per target, how far the poisons'
feature mean moved toward the target, ||mean f(p) - f(t)|| / ||mean f(b) -
f(t)||, 1 = not at all, averaged over targets; ``collided``: share of poisons
nearer their target than any clean row of their base class; ``look base``:
share a 5-NN on clean pixels still gives the poison's own label), then the
detector's recall on the poisons, false-positive rate on the clean rows and
precision; ``bar rec`` is recall over the poisons of targets with mean ratio
<= 0.5 only - the strong attacks ("bullseye/polytope poisons whose feature mean
lands within half of the base-to-target distance"), ``-`` when no target is
that strong. Two baselines run in the same process on the same rows, in the
backbone's feature space, plurality vote of the k nearest rows excluding the
row itself: plain Deep k-NN with k=10, and Deep k-NN with the k rule, k = 2 *
max_cluster + 1 = 51.

``clean`` (the training split alone) prints the FPR overall and the worst
class's FPR; ``small_class`` (one class cut to 20 rows) prints that class's
FPR - the detector must not over-flag a small class.

This is a benchmark: it prints figures and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

import feature_collision_attacks as attacks  # noqa: E402

WORK = attacks.WORK
RUNS = os.path.join(WORK, "runs")
K_RULE = 2 * 25 + 1  # the detector's default max_cluster = 25
BAR = 0.5


def scenario_names(only: list[str] | None) -> list[str]:
    names = ["clean", "small_class"] + [s[0] for s in attacks.SPECS]
    return [n for n in names if not only or any(s in n for s in only)]


def cached(seed: int, names: list[str]) -> bool:
    info = os.path.join(attacks.SCENARIOS, "victim.json")
    if not os.path.exists(info) or not os.path.exists(os.path.join(attacks.SCENARIOS, "backbone.pt")):
        return False
    with open(info) as f:
        if json.load(f).get("seed") != seed:
            return False
    return all(os.path.exists(os.path.join(attacks.SCENARIOS, f"{n}.npz")) for n in names)


def deep_knn(E: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Deep k-NN: flagged when the plurality label of the k nearest rows (never the row itself) is not its own."""
    sq = (E**2).sum(axis=1)
    d = sq[:, None] - 2 * E @ E.T + sq[None, :]
    np.fill_diagonal(d, np.inf)
    nn_idx = np.argpartition(d, k, axis=1)[:, :k]
    C = int(y.max()) + 1
    votes = np.zeros((len(y), C), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[nn_idx].ravel()), 1)
    return votes[np.arange(len(y)), y] < votes.max(axis=1)


def run_pipeline(name: str, sc: dict, model_path: str, seed: int) -> tuple[np.ndarray | None, dict, str, float]:
    """Write the scenario as Parquet, run ``sanitize run``; returns (flagged mask or None, detector summary, error, s)."""
    from sanitizer.cli.main import main as sanitize

    X, y = sc["X"], sc["y"]
    ids = np.array([f"row-{i:05d}" for i in range(len(y))])
    data = os.path.join(RUNS, f"{name}.parquet")
    pq.write_table(pa.table({
        "image_id": ids,
        "pixels": pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 64),
        "label": y.astype(np.int64),
    }), data)
    out = os.path.join(RUNS, f"out-{name}")
    t0 = time.perf_counter()
    try:
        code = sanitize(["run", "--input", data, "--output", out, "--label-column", "label", "--id-column",
                         "image_id", "--embedding-model", model_path,
                         "--embedding-model-sha256", hashlib.sha256(open(model_path, "rb").read()).hexdigest(),
                         "--seed", str(seed), "--overwrite", "-q"])
    except BaseException as exc:  # noqa: BLE001 - report and go on with the other scenarios
        return None, {}, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0
    elapsed = time.perf_counter() - t0
    if code != 0:
        return None, {}, f"sanitize exited {code}", elapsed
    held: set[str] = set()
    qdir = os.path.join(out, "quarantine")
    if os.path.isdir(qdir) and any(f.endswith(".parquet") for f in os.listdir(qdir)):
        q = pq.read_table(qdir, columns=["image_id", "sanitizer_reasons"])
        held = {i for i, r in zip(q.column(0).to_pylist(), q.column(1).to_pylist())
                if any(x.get("detector") == "feature_collision" for x in (r if isinstance(r, list) else json.loads(r)))}
    summary = {}
    prov = os.path.join(out, "provenance.json")
    if os.path.exists(prov):
        with open(prov) as f:
            summary = json.load(f).get("detectors", {}).get("feature_collision", {})
    return np.array([i in held for i in ids]), summary, "", elapsed


def rates(flagged: np.ndarray, poison: np.ndarray) -> tuple[float, float, float]:
    recall = float(flagged[poison].mean()) if poison.any() else float("nan")
    fpr = float(flagged[~poison].mean())
    precision = float(poison[flagged].mean()) if flagged.any() else float("nan")
    return recall, fpr, precision


def fmt(v: float, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", default="", help="comma-separated substrings of scenario names (default: all)")
    ap.add_argument("--reuse", action="store_true", help="use the cached scenarios when they are there for this seed")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    only = [s for s in args.scenarios.split(",") if s] or None
    names = scenario_names(only)

    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.reuse and cached(args.seed, names):
        print(f"reusing cached scenarios for seed {args.seed} from {attacks.SCENARIOS}")
    else:
        print(f"crafting scenarios for seed {args.seed} into {attacks.SCENARIOS}")
        attacks.build_scenarios(args.seed, only, verbose=True)
    with open(os.path.join(attacks.SCENARIOS, "victim.json")) as f:
        victim = json.load(f)
    model_path = os.path.join(attacks.SCENARIOS, "backbone.pt")
    backbone = torch.jit.load(model_path).eval()
    if args.reuse:
        print(f"victim: train accuracy {victim['train_accuracy']:.3f}, held-out {victim['test_accuracy']:.3f} "
              f"on {victim['train_rows']} clean training rows; backbone {model_path}")
    shutil.rmtree(RUNS, ignore_errors=True)
    os.makedirs(RUNS)

    header = (f"{'scenario':<19} {'params':<34} {'pois':>4} {'tgt':>3} {'mean ratio':>10} {'collided':>8} "
              f"{'look base':>9} {'recall':>6} {'FPR':>6} {'prec':>5} {'bar tgt':>7} {'bar rec':>7} "
              f"{'kNN10 rec':>9} {'FPR':>6} {'kNN51 rec':>9} {'FPR':>6} {'k':>3} {'run s':>5}")
    rows, clean_lines, errors, bar_pool = [], [], [], {"flag": [], "knn10": [], "knn51": []}
    for name in names:
        sc = attacks.load_scenario(os.path.join(attacks.SCENARIOS, f"{name}.npz"))
        meta, y, poison = sc["meta"], sc["y"], sc["is_poison"]
        E = attacks.embed(backbone, sc["X"])
        knn10, knn51 = deep_knn(E, y, 10), deep_knn(E, y, K_RULE)
        flagged, summary, error, elapsed = run_pipeline(name, sc, model_path, args.seed)
        k_used = summary.get("k", "-") if isinstance(summary, dict) else "-"
        if error:
            errors.append(f"{name}: {error}")
        if not poison.any():  # clean / small_class: false positives only
            line = [f"{name:<19} rows {len(y)}"]
            for label, mask in (("detector", flagged), ("kNN10", knn10), ("kNN51", knn51)):
                if mask is None:
                    line.append(f"{label}: error")
                    continue
                per_class = {int(c): float(mask[y == c].mean()) for c in np.unique(y)}
                worst = max(per_class, key=per_class.get)
                text = f"{label}: FPR {mask.mean():.4f}, worst class {worst} {per_class[worst]:.4f}"
                if name == "small_class":
                    small = meta["small_class"]
                    text += f", small class {small} ({int((y == small).sum())} rows) {per_class[small]:.4f}"
                line.append(text)
            clean_lines.append(" | ".join(line) + f" | detector k {k_used} | run {elapsed:.1f} s")
            continue
        per_target = {int(k): v for k, v in meta["per_target_strength"].items()}
        strong = np.array([t >= 0 and per_target[int(t)]["mean_ratio"] <= BAR for t in sc["target_of"]])
        n_bar = sum(v["mean_ratio"] <= BAR for v in per_target.values())
        is_bp = meta["family"] == "bullseye"
        row = {
            "scenario": name,
            "params": ",".join(f"{k}={v}" for k, v in meta["params"].items()
                               if k in ("similarity_coeff", "max_iter", "eps", "beta")),
            "poisons": int(poison.sum()), "targets": len(per_target),
            "mean_ratio": float(np.mean([v["mean_ratio"] for v in per_target.values()])),
            "collided": float(sc["collided"][poison].mean()),
            "looks": float(sc["looks_like_base"][poison].mean()),
            "n_bar": n_bar, "elapsed": elapsed, "k": k_used,
        }
        for label, mask in (("flag", flagged), ("knn10", knn10), ("knn51", knn51)):
            if mask is None:
                row[label] = (float("nan"),) * 3
                row[label + "_bar"] = float("nan")
                continue
            row[label] = rates(mask, poison)
            row[label + "_bar"] = float(mask[strong].mean()) if strong.any() else float("nan")
            if is_bp and strong.any():
                bar_pool[label].append(mask[strong])
        rows.append(row)

    print(header)
    for r in rows:
        rec, fpr, prec = r["flag"]
        print(f"{r['scenario']:<19} {r['params']:<34} {r['poisons']:>4} {r['targets']:>3} {r['mean_ratio']:>10.2f} "
              f"{r['collided']:>8.0%} {r['looks']:>9.0%} {fmt(rec):>6} {fmt(fpr, '.4f'):>6} {fmt(prec, '.2f'):>5} "
              f"{r['n_bar']:>7} {fmt(r['flag_bar']):>7} {fmt(r['knn10'][0]):>9} {fmt(r['knn10'][1], '.4f'):>6} "
              f"{fmt(r['knn51'][0]):>9} {fmt(r['knn51'][1], '.4f'):>6} {r['k']!s:>3} {r['elapsed']:>5.1f}")
    for line in clean_lines:
        print(line)
    if bar_pool["flag"] or bar_pool["knn10"]:
        pooled = {k: np.concatenate(v) for k, v in bar_pool.items() if v}
        n = len(next(iter(pooled.values())))
        print(f"strong attacks, bullseye/polytope poisons of targets with mean ratio <= {BAR} (all eps pooled, {n} "
              "poisons): " + ", ".join(f"{ {'flag': 'detector', 'knn10': 'kNN10', 'knn51': 'kNN51'}[k]} recall "
                                       f"{v.mean():.3f}" for k, v in pooled.items()))
    print(f"mean ratio = ||mean f(p) - f(t)|| / ||mean f(b) - f(t)|| averaged over targets (1 = unmoved, 0 = on the "
          f"target); bar tgt = targets with mean ratio <= {BAR}; bar rec = detector recall on their poisons; "
          f"kNN51 = Deep k-NN with the k rule (k = {K_RULE}); k = the detector's k in that run (its provenance)")
    for e in errors:
        print(f"ERROR {e}")
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
