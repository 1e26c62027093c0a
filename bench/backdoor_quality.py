"""BadNets-style backdoor poisons: sanitizer's detectors against ART's ActivationDefence and SpectralSignatureDefense.

    python bench/backdoor_quality.py [--seed 0] [--seeds 1] [--settings patch,wine] [--pipeline] [--out FILE]

Needs the benchmark extra (``pip install -e '.[bench]'``: adversarial-robustness-toolbox).
Everything runs on scikit-learn's bundled data (no download) in one process.

Attacks. A backdoor poison is a training row of a source (non-target) class
with a trigger stamped on it and its label changed to the target class; the
poisons are drawn uniformly from the rows of all source classes ("all-to-one"),
and the rate is the share of the source rows poisoned (at least 3 poisons).
Each data set is split 75/25 (stratified, seeded) before poisoning and only the
training part is poisoned. The settings live in one table, ``SETTINGS`` (with
the triggers in ``TRIGGERS``), at the top of this file:

* digits (8x8 images as 64 features, 0..16), target 0, rates 1%, 5%, 10%:
  ``patch_br`` / ``patch_tl`` / ``patch_mid``: a 2x2 square set to 16 at the
  bottom-right corner (pixels 54,55,62,63), the top-left corner (0,1,8,9) or
  inside the image (rows 3-4, cols 3-4: 27,28,35,36); ``blend_diag``: 3 pixels
  on the anti-diagonal into the top-right corner (7,14,21) blended toward 16
  with alpha 0.5 (x' = 0.5 x + 0.5 16); ``blend_check``: a 2x2 checker at the
  bottom-left corner (48,57 toward 16, 49,56 toward 0), alpha 0.5;
  ``two_target``: targets 0 (``patch_br``) and 1 (``patch_tl``), poisons drawn
  from classes 2-9, rate 5% split evenly between the two triggers.
* breast_cancer (2 classes) and wine (3 classes), target 0, rates 1%, 5%, 10%:
  the trigger sets the 3 features least predictive of the label (lowest mutual
  information with it on the clean training part) to constants: ``tab_out``
  each to that feature's max + 0.5 x its interquartile range (just outside the
  observed range), ``tab_in`` each to its 1st percentile (in range but rare).

Attack strength. The victim is a torch MLP d-128-64-C (ReLU, standardised
inputs, Adam lr 1e-3, 100 epochs of minibatches of 64, seeded, torch on
``--threads`` threads, default 1), trained once per
setting on the poisoned training part and reused for the ASR and for ART. ASR
is the share of held-out source-class test rows, with the trigger stamped on,
that the victim predicts as the trigger's target (two_target: pooled over both
triggers). The same ASR of a victim trained on the clean training part is the
baseline: how often a stamped input lands on the target without any poison.
A setting whose ASR is near its baseline is a weak attack, not a strong defence.

Methods, all on the poisoned training part (same rows, same run):

* sanitizer: every detector in ``sanitizer.detectors.REGISTRY`` whose default
  Params are enabled, fitted on the training part as its sample and scoring it
  (``fit(batch, Params(), seed)``, ``score(batch, state).flagged``, as in
  bench/label_flip_quality.py), except ``feature_collision``, which is left out:
  it targets clean-label poisons and needs an embedding model. ``backdoor`` is
  used when it is registered ("-" otherwise); ``outlier`` is reported on its
  own. The headline is the union of ``label_flip`` and ``backdoor`` (just
  ``label_flip`` while ``backdoor`` is absent), held to the bar recall >= 0.9 at
  FPR <= 1%.
* ART ``ActivationDefence`` (nb_clusters=2, nb_dims=10, reduce='PCA',
  cluster_analysis='smaller') and ``SpectralSignatureDefense`` (ART's default
  expected_pp_poison=0.33 in every setting, eps_multiplier 1.5, so it drops the
  top 49.5% of every class; ``--spectral-pp`` changes it, ``true`` = the
  setting's poison rate), both given an ART ``PyTorchClassifier`` wrapping the
  poisoned victim, one-hot labels. ART inspects the model's last top-level
  module; the victim registers its 64-unit feature block last, so both see the
  last hidden layer (post-ReLU), as in their papers.
* ``--pipeline`` (slower): the training part is also written as Parquet
  (``row_id``, ``label``, one float column per feature) and run through the
  real pipeline with defaults (``sanitize run``, DirectRunner); a row counts as
  flagged when it is in the quarantine, whatever the detector.

Printed columns, one row per setting (means over the seeds):
``data set``, ``setting`` (trigger and rate), ``pois`` (number of poisons),
``acc`` (the poisoned victim's accuracy on the clean test part), ``ASR0`` (ASR
of the clean victim), ``ASR`` (ASR of the poisoned victim), then ``recall/FPR``
(recall on the poisons, false-positive rate on the clean training rows) for
``label_flip``, ``backdoor``, ``outlier``, ``union`` (label_flip | backdoor),
``pipeline`` (with ``--pipeline``), ``ActivDef`` and ``Spectral``, and ``bar``:
``ok`` when the union meets recall >= 0.9 at FPR <= 0.01, else ``MISS``. A
method that is absent or failed prints ``-`` (the reasons are listed at the
end). The summary gives how many settings meet the bar, the worst union recall
and FPR, and each method's mean recall and FPR. ``--out FILE`` writes all of
it, per seed, as JSON.

This is a benchmark: it prints figures and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.feature_selection import mutual_info_classif
from sklearn.model_selection import train_test_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sanitizer.detectors import REGISTRY, Batch, Skipped
from sanitizer.data.batch import mix64

# --------------------------------------------------------------------------- the settings table


@dataclass(frozen=True)
class Trigger:
    """x'[pixels] = (1 - alpha) x[pixels] + alpha values. Tabular kinds get pixels and values from the data."""

    kind: str  # "pixels" (fixed positions and values), "tab_out" or "tab_in"
    pixels: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    alpha: float = 1.0


@dataclass(frozen=True)
class Setting:
    dataset: str
    trigger: str  # the label in the table; for one trigger, its TRIGGERS key
    rate: float  # share of the source-class training rows poisoned
    targets: tuple[tuple[int, str], ...]  # (target class, TRIGGERS key) per trigger; sources = all other classes

    @property
    def name(self) -> str:
        return f"{self.trigger}_{self.rate * 100:g}%"


TRIGGERS = {
    "patch_br": Trigger("pixels", (54, 55, 62, 63), (16.0,) * 4),
    "patch_tl": Trigger("pixels", (0, 1, 8, 9), (16.0,) * 4),
    "patch_mid": Trigger("pixels", (27, 28, 35, 36), (16.0,) * 4),
    "blend_diag": Trigger("pixels", (7, 14, 21), (16.0,) * 3, alpha=0.5),
    "blend_check": Trigger("pixels", (48, 49, 56, 57), (16.0, 0.0, 0.0, 16.0), alpha=0.5),
    "tab_out": Trigger("tab_out"),
    "tab_in": Trigger("tab_in"),
}
DATASETS = {"digits": load_digits, "breast_cancer": load_breast_cancer, "wine": load_wine}
RATES = (0.01, 0.05, 0.10)
SETTINGS = (
    [Setting("digits", t, r, ((0, t),))
     for t in ("patch_br", "patch_tl", "patch_mid", "blend_diag", "blend_check") for r in RATES]
    + [Setting("digits", "two_target", 0.05, ((0, "patch_br"), (1, "patch_tl")))]
    + [Setting(ds, t, r, ((0, t),)) for ds in ("breast_cancer", "wine") for t in ("tab_out", "tab_in") for r in RATES]
)
MIN_POISONS = 3
TAB_FEATURES = 3
BAR_RECALL, BAR_FPR = 0.9, 0.01
UNION = ("label_flip", "backdoor")
LEFT_OUT = ("feature_collision",)  # clean-label; needs an embedding model
SANITIZER_COLUMNS = ("label_flip", "backdoor", "outlier")
ART_COLUMNS = ("ActivDef", "Spectral")

# victim training
HIDDEN = (128, 64)
EPOCHS = 100
BATCH = 64
LR = 1e-3


# --------------------------------------------------------------------------- attacks


def resolve(trigger: Trigger, X_clean: np.ndarray, y_clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature indices, values) of a trigger; tabular ones from the clean training part."""
    if trigger.kind == "pixels":
        return np.array(trigger.pixels), np.array(trigger.values, dtype=np.float64)
    mi = mutual_info_classif(X_clean, y_clean, random_state=seed)
    idx = np.sort(np.argsort(mi, kind="stable")[:TAB_FEATURES])
    col = X_clean[:, idx]
    if trigger.kind == "tab_out":
        q1, q3 = np.percentile(col, [25, 75], axis=0)
        return idx, col.max(axis=0) + 0.5 * (q3 - q1)
    if trigger.kind == "tab_in":
        return idx, np.percentile(col, 1, axis=0)
    raise ValueError(f"unknown trigger kind {trigger.kind!r}")


def stamp(X: np.ndarray, idx: np.ndarray, values: np.ndarray, alpha: float) -> np.ndarray:
    X = np.array(X, dtype=np.float64, copy=True)
    X[:, idx] = (1 - alpha) * X[:, idx] + alpha * values
    return X


def poison(X: np.ndarray, y: np.ndarray, setting: Setting, stamps: list, seed: int):
    """(X', y', is_poison, n per trigger): poisons drawn uniformly from all source rows, split evenly over triggers."""
    targets = {t for t, _ in setting.targets}
    sources = np.flatnonzero(~np.isin(y, list(targets)))
    n = min(len(sources), max(MIN_POISONS, round(setting.rate * len(sources))))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(sources, size=n, replace=False)
    Xp, yp = np.array(X, dtype=np.float64, copy=True), np.array(y, copy=True)
    is_poison = np.zeros(len(y), dtype=bool)
    for (target, _), (idx, values, alpha), rows in zip(setting.targets, stamps,
                                                       np.array_split(chosen, len(setting.targets))):
        Xp[rows] = stamp(Xp[rows], idx, values, alpha)
        yp[rows] = target
        is_poison[rows] = True
    return Xp, yp, is_poison


# --------------------------------------------------------------------------- the victim


def make_victim(d: int, c: int):
    import torch

    class Victim(torch.nn.Module):
        """d -> 128 -> 64 -> C. ``head`` is registered before ``features`` on purpose: ART's PyTorchClassifier
        takes the top-level modules as its layers and its poison defences read the last one."""

        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(HIDDEN[1], c)
            self.features = torch.nn.Sequential(
                torch.nn.Linear(d, HIDDEN[0]), torch.nn.ReLU(), torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU()
            )

        def forward(self, x):
            return self.head(self.features(x))

    return Victim()


@dataclass
class Trained:
    model: object
    mean: np.ndarray
    scale: np.ndarray
    classes: int

    def z(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        self.model.eval()
        with torch.no_grad():
            return self.model(torch.from_numpy(self.z(X))).argmax(dim=1).numpy()


def train_victim(X: np.ndarray, y: np.ndarray, classes: int, seed: int) -> Trained:
    import torch

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    torch.manual_seed(seed)
    model = make_victim(X.shape[1], classes)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Z = torch.from_numpy(((X - mean) / scale).astype(np.float32))
    Y = torch.from_numpy(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(EPOCHS):
        for b in torch.randperm(len(Y), generator=gen).split(BATCH):
            opt.zero_grad()
            loss_fn(model(Z[b]), Y[b]).backward()
            opt.step()
    model.eval()
    return Trained(model, mean, scale, classes)


def asr(victim: Trained, X_test: np.ndarray, y_test: np.ndarray, setting: Setting, stamps: list) -> float:
    """Share of stamped source-class test rows predicted as the trigger's target, pooled over triggers."""
    targets = [t for t, _ in setting.targets]
    src = ~np.isin(y_test, targets)
    hits, total = 0, 0
    for target, (idx, values, alpha) in zip(targets, stamps):
        pred = victim.predict(stamp(X_test[src], idx, values, alpha))
        hits += int((pred == target).sum())
        total += len(pred)
    return hits / max(total, 1)


# --------------------------------------------------------------------------- the methods


def rates(flagged: np.ndarray | None, truth: np.ndarray) -> tuple[float, float] | None:
    if flagged is None:
        return None
    flagged = np.asarray(flagged, dtype=bool)
    return float(flagged[truth].mean()), float(flagged[~truth].mean())


def sanitizer_detectors(X: np.ndarray, y: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Flags of every enabled registered detector but the left-out ones; and why any gave none."""
    n = len(y)
    batch = Batch(
        np.asarray(X, dtype=np.float64),
        np.array([str(v) for v in y], dtype=object),
        mix64(np.arange(n, dtype=np.uint64) + np.uint64(seed * 1_000_003)),
        np.array([f"row-{i}" for i in range(n)], dtype=object),
        tuple(f"f{j}" for j in range(X.shape[1])),
    )
    flags, errors = {}, {}
    for name, cls in REGISTRY.items():
        if name in LEFT_OUT:
            continue
        try:
            params = cls.Params()
            if not getattr(params, "enabled", True):
                continue
            detector = cls()
            state = detector.fit(batch, params, seed)
            if isinstance(state, Skipped):
                errors[name] = f"skipped: {state.reason}"
                continue
            flags[name] = np.asarray(detector.score(batch, state).flagged, dtype=bool)
        except Exception as exc:  # noqa: BLE001 - report it and go on
            errors[name] = f"{type(exc).__name__}: {exc}"
    return flags, errors


def art_defences(victim: Trained, X: np.ndarray, y: np.ndarray, spectral_pp: float, seed: int):
    """(flags per ART method, errors per ART method)."""
    import torch
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    flags, errors = {}, {}
    Z = victim.z(X)
    onehot = np.eye(victim.classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
    try:
        clf = PyTorchClassifier(model=victim.model, loss=torch.nn.CrossEntropyLoss(), input_shape=(X.shape[1],),
                                nb_classes=victim.classes, device_type="cpu")
    except Exception as exc:  # noqa: BLE001
        for m in ART_COLUMNS:
            errors[m] = f"PyTorchClassifier: {type(exc).__name__}: {exc}"
        return flags, errors
    runs = {
        "ActivDef": lambda: ActivationDefence(clf, Z, onehot).detect_poison(
            nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller"),
        "Spectral": lambda: SpectralSignatureDefense(clf, Z, onehot, expected_pp_poison=spectral_pp).detect_poison(),
    }
    for name, run in runs.items():
        np.random.seed(seed)  # ART's KMeans / PCA draw from the global generator
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, is_clean = run()
            flags[name] = np.asarray(is_clean) == 0
        except Exception as exc:  # noqa: BLE001 - report it and go on
            errors[name] = f"{type(exc).__name__}: {exc}"
    return flags, errors


def run_pipeline(X: np.ndarray, y: np.ndarray, seed: int, workdir: str, tag: str):
    """Flags of the real pipeline (any quarantine reason), or (None, error)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sanitizer.cli.main import main as sanitize

    ids = [f"row-{i:05d}" for i in range(len(y))]
    columns = {"row_id": pa.array(ids), "label": pa.array(np.asarray(y, dtype=np.int64))}
    for j in range(X.shape[1]):
        columns[f"f{j}"] = pa.array(X[:, j].astype(np.float64))
    path = os.path.join(workdir, f"{tag}.parquet")
    out = os.path.join(workdir, f"out-{tag}")
    pq.write_table(pa.table(columns), path)
    try:
        code = sanitize(["run", "--input", path, "--output", out, "--label-column", "label", "--id-column", "row_id",
                         "--seed", str(seed), "--overwrite", "-q"])
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: report it and go on
        return None, f"{type(exc).__name__}: {exc}"
    if code != 0:
        return None, f"sanitize exited {code}"
    held: set[str] = set()
    qdir = os.path.join(out, "quarantine")
    if os.path.isdir(qdir) and any(f.endswith(".parquet") for f in os.listdir(qdir)):
        held = set(pq.read_table(qdir, columns=["row_id"]).column(0).to_pylist())
    return np.array([i in held for i in ids]), ""


# --------------------------------------------------------------------------- one setting


def run_setting(setting: Setting, data: dict, seed: int, args, clean_cache: dict, workdir: str | None) -> dict:
    X_tr, X_te, y_tr, y_te = data["split"]
    C = data["classes"]
    stamps = []
    for _, key in setting.targets:
        trig = TRIGGERS[key]
        idx, values = resolve(trig, X_tr, y_tr, seed)
        stamps.append((idx, values, trig.alpha))
    Xp, yp, truth = poison(X_tr, y_tr, setting, stamps, seed)

    t0 = time.perf_counter()
    if setting.dataset not in clean_cache:
        clean_cache[setting.dataset] = train_victim(X_tr, y_tr, C, seed)
    clean = clean_cache[setting.dataset]
    victim = train_victim(Xp, yp, C, seed)
    t_victim = time.perf_counter() - t0
    result = {
        "dataset": setting.dataset, "setting": setting.name, "seed": seed,
        "poisons": int(truth.sum()), "train_rows": len(yp),
        "trigger_features": [[int(i) for i in s[0]] for s in stamps],
        "trigger_values": [[round(float(v), 6) for v in s[1]] for s in stamps],
        "clean_model_acc": float((clean.predict(X_te) == y_te).mean()),
        "acc": float((victim.predict(X_te) == y_te).mean()),
        "asr_clean": asr(clean, X_te, y_te, setting, stamps),
        "asr": asr(victim, X_te, y_te, setting, stamps),
        "methods": {}, "errors": {}, "seconds": {"victim": t_victim},
    }

    t0 = time.perf_counter()
    flags, errors = sanitizer_detectors(Xp, yp, seed)
    result["seconds"]["sanitizer"] = time.perf_counter() - t0
    present = [m for m in UNION if m in flags]
    flags["union"] = np.logical_or.reduce([flags[m] for m in present]) if present else None
    if not present:
        errors["union"] = "no union detector gave flags"
    if args.pipeline:
        t0 = time.perf_counter()
        flags["pipeline"], err = run_pipeline(Xp, yp, seed, workdir, f"{setting.dataset}-{setting.name}-{seed}")
        if err:
            errors["pipeline"] = err
        result["seconds"]["pipeline"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    spectral_pp = setting.rate if args.spectral_pp == "true" else float(args.spectral_pp)
    art_flags, art_errors = art_defences(victim, Xp, yp, spectral_pp, seed)
    result["seconds"]["art"] = time.perf_counter() - t0
    flags.update(art_flags)
    errors.update(art_errors)
    for name, mask in flags.items():
        r = rates(mask, truth)
        if r is not None:
            result["methods"][name] = {"recall": r[0], "fpr": r[1], "flagged": int(np.sum(mask))}
    result["errors"] = errors
    return result


def mean_over_seeds(runs: list[dict], columns: list[str]) -> dict:
    out = {k: float(np.mean([r[k] for r in runs])) for k in ("poisons", "acc", "clean_model_acc", "asr_clean", "asr")}
    out["methods"] = {}
    for m in columns:
        got = [r["methods"][m] for r in runs if m in r["methods"]]
        if got:
            out["methods"][m] = {"recall": float(np.mean([g["recall"] for g in got])),
                                 "fpr": float(np.mean([g["fpr"] for g in got])), "seeds": len(got)}
    u = out["methods"].get("union")
    out["bar"] = None if u is None else bool(u["recall"] >= BAR_RECALL and u["fpr"] <= BAR_FPR)
    return out


def cell(m: dict | None) -> str:
    return "-" if m is None else f"{m['recall']:.2f}/{m['fpr']:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--seeds", type=int, default=1, help="average over this many seeds from --seed (default 1)")
    ap.add_argument("--settings", default="", help="comma-separated setting names or substrings of "
                    "'DATASET/SETTING', e.g. patch_br,wine,5%% (default: all)")
    ap.add_argument("--pipeline", action="store_true", help="also run the real pipeline on every poisoned set (slower)")
    ap.add_argument("--spectral-pp", default="0.33", help="SpectralSignatureDefense expected_pp_poison: a number, "
                    "or 'true' for the setting's poison rate (default ART's 0.33)")
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2),
                    help="torch threads (default 1: the victim's matrices are tiny, a second thread only adds "
                    "synchronisation, ~10x slower on a busy 2-core machine)")
    ap.add_argument("--out", help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    try:
        import art
    except ImportError:
        raise SystemExit("adversarial-robustness-toolbox is a benchmark-only dependency: "
                         "pip install -e '.[bench]'") from None
    if args.spectral_pp != "true":
        try:
            float(args.spectral_pp)
        except ValueError:
            ap.error("--spectral-pp takes a number or 'true'")
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("art").setLevel(logging.ERROR)
    t_start = time.perf_counter()
    only = [s.strip() for s in args.settings.split(",") if s.strip()]
    chosen = [s for s in SETTINGS if not only or any(o == s.name or o in f"{s.dataset}/{s.name}" for o in only)]
    if not chosen:
        raise SystemExit(f"no setting matches {args.settings!r}; names: "
                         + ", ".join(f"{s.dataset}/{s.name}" for s in SETTINGS))
    seeds = list(range(args.seed, args.seed + args.seeds))

    extra = [n for n in REGISTRY if n not in LEFT_OUT and n not in SANITIZER_COLUMNS]
    columns = list(SANITIZER_COLUMNS) + extra + ["union"] + (["pipeline"] if args.pipeline else []) + list(ART_COLUMNS)
    union_in = [m for m in UNION if m in REGISTRY]
    print(f"backdoor poisons: sanitizer detectors {', '.join(n for n in REGISTRY if n not in LEFT_OUT)} "
          f"(left out: {', '.join(LEFT_OUT)}) vs ART {art.__version__} ActivationDefence / SpectralSignatureDefense "
          f"(expected_pp_poison {args.spectral_pp}); seeds {seeds}")
    print(f"union = {' | '.join(union_in) or 'nothing'}"
          + ("" if "backdoor" in REGISTRY else " (backdoor is not registered: label_flip alone)")
          + f"; bar: union recall >= {BAR_RECALL} at FPR <= {BAR_FPR}; cells are recall/FPR on the training part")

    workdir_obj = tempfile.TemporaryDirectory(prefix="backdoor-quality-") if args.pipeline else None
    workdir = workdir_obj.name if workdir_obj else None
    results, errors = [], []
    try:
        for seed in seeds:
            clean_cache: dict = {}
            for ds in dict.fromkeys(s.dataset for s in chosen):
                X, y = DATASETS[ds](return_X_y=True)
                data = {"classes": int(y.max()) + 1,
                        "split": train_test_split(X.astype(np.float64), y, test_size=0.25, stratify=y,
                                                  random_state=seed)}
                for s in (s for s in chosen if s.dataset == ds):
                    results.append(run_setting(s, data, seed, args, clean_cache, workdir))
    finally:
        if workdir_obj:
            workdir_obj.cleanup()

    header = (f"{'data set':<13} {'setting':<16} {'pois':>5} {'acc':>5} {'ASR0':>5} {'ASR':>5}  "
              + " ".join(f"{c:>11}" for c in columns) + "  bar")
    print(header)
    print("-" * len(header))
    rows = []
    for s in chosen:
        runs = [r for r in results if r["dataset"] == s.dataset and r["setting"] == s.name]
        m = mean_over_seeds(runs, columns)
        rows.append({"dataset": s.dataset, "setting": s.name, "mean": m, "runs": runs})
        mark = "-" if m["bar"] is None else ("ok" if m["bar"] else "MISS")
        print(f"{s.dataset:<13} {s.name:<16} {m['poisons']:>5.0f} {m['acc']:>5.3f} {m['asr_clean']:>5.2f} "
              f"{m['asr']:>5.2f}  " + " ".join(f"{cell(m['methods'].get(c)):>11}" for c in columns) + f"  {mark}")
        for r in runs:
            for name, why in r["errors"].items():
                if not (name == "backdoor" and "backdoor" not in REGISTRY):
                    errors.append(f"{s.dataset}/{s.name} seed {r['seed']} {name}: {why}")

    clean_accs = {}
    for r in results:
        clean_accs.setdefault(r["dataset"], set()).add((r["seed"], r["clean_model_acc"]))
    print("victim trained on clean data, test accuracy: "
          + ", ".join(f"{ds} {np.mean([a for _, a in v]):.3f}" for ds, v in clean_accs.items()))

    unions = [r["mean"]["methods"]["union"] for r in rows if "union" in r["mean"]["methods"]]
    summary = {"settings": len(rows), "meet_bar": sum(bool(r["mean"]["bar"]) for r in rows),
               "union_settings": len(unions),
               "worst_union_recall": min((u["recall"] for u in unions), default=None),
               "worst_union_fpr": max((u["fpr"] for u in unions), default=None), "methods": {}}
    for c in columns:
        got = [r["mean"]["methods"][c] for r in rows if c in r["mean"]["methods"]]
        if got:
            summary["methods"][c] = {"recall": float(np.mean([g["recall"] for g in got])),
                                     "fpr": float(np.mean([g["fpr"] for g in got])), "settings": len(got)}
    worst = ("-" if not unions else
             f"worst union recall {summary['worst_union_recall']:.3f}, worst union FPR {summary['worst_union_fpr']:.4f}")
    print(f"\nbar (union recall >= {BAR_RECALL} at FPR <= {BAR_FPR}) met in {summary['meet_bar']} of {len(rows)} "
          f"settings; {worst}")
    print("mean recall / FPR over settings: " + "; ".join(
        f"{c} {v['recall']:.3f} / {v['fpr']:.4f}" + ("" if v["settings"] == len(rows) else f" ({v['settings']})")
        for c, v in summary["methods"].items()))
    absent = [c for c in columns if c not in summary["methods"]]
    if absent:
        print("no figures for: " + ", ".join(absent) + ("" if "backdoor" in REGISTRY or "backdoor" not in absent
                                                         else " (backdoor is not registered)"))
    for e in errors:
        print(f"ERROR {e}")
    elapsed = time.perf_counter() - t_start
    print(f"total {elapsed:.1f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": {"seeds": seeds, "settings": [f"{s.dataset}/{s.name}" for s in chosen],
                                  "spectral_expected_pp_poison": args.spectral_pp, "pipeline": args.pipeline,
                                  "registry": list(REGISTRY), "union": union_in, "epochs": EPOCHS},
                       "rows": rows, "summary": summary, "errors": errors, "seconds": elapsed}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
