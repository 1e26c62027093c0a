"""Copies, judged: the default ``sanitize run`` against planted and shipped duplicates, label conflicts and leaks.

    python bench/duplicates_quality.py [--only shipped,planted,text,images,leak] [--seed 0]
                                       [--tables KEY,...] [--glyphs 1200] [--shipped-glyphs 4200] [--no-peers]

Every run is ``sanitize run`` with the default configuration: only ``--input``, ``--output``,
``--label-column`` (and ``--holdout`` in the leak part) are given. Nothing downloads; inputs and outputs go
under ``bench/_data/duplicates/run-PID/``. A row counts as held by the duplicates detector when one of its
quarantine reasons has detector ``duplicates`` and code ``duplicate``, ``near_duplicate`` or
``label_conflict`` (``leak`` in the leak part). Parts (``--only``):

1. **shipped**: each table of ``bench/real_data.py``'s corpus as its package ships it. The rows pandas'
   ``DataFrame.duplicated(keep="first")`` finds over the run's content columns (every column but the label
   and the run's id column) against the rows the run holds as ``duplicate``: both, held only by the run, found
   only by pandas (of which held as ``label_conflict``); the rows of pandas' groups the run held none of,
   beside the run's count of rows in chance groups (provenance). The run agrees with pandas when every row it
   holds as a copy lies in a pandas group, it holds all but one row of every group it holds any of, and the
   groups it leaves alone are its chance groups (their rows add up to the run's chance rows). Harm: rows the duplicates detector held and
   its worst class (>= 50 rows), and the share of labelled rows the run held for any reason, with and without
   the rows held only as ``duplicate``.
2. **planted** (vectors; ``--tables``, default breast_cancer and digits): exact, near (Gaussian noise of 0.01
   x each feature's standard deviation), label-conflicting and a 20-copy replicated poison
   (``bench/duplicates_data.py`` says how), beside cleanlab's Datalab ``near_duplicate`` issue (its defaults)
   on the standardised features of the same table.
3. **text**: modeldata's 5,000 product reviews (the review text and its ``score``): exact, edited (3 to 5 words
   replaced), label-conflicting and a 20-copy replicated poison (1 or 2 words replaced each), beside
   datasketch's ``MinHashLSH`` (128 permutations, character 5-grams of the lowercased tokens; thresholds 0.8 and
   0.5). The reviews hold near copies of their own (one review posted twice with a few words changed): the
   pairs of original reviews with an exact Jaccard of 0.5 or more are listed with the run's codes, and flags on
   them count for no one (``duplicates_data.natural_near_texts``); every other flag outside the planted
   groups is listed with the Jaccard to the row it is held beside.
4. **images**: about 3,000 32x32 RGB PNGs (``bench/media_data.py``, ``--glyphs`` rendered digits beside the
   1,797 scans; Hugging Face ``struct<bytes, path>`` layout): exact, JPEG at quality 75, shifted one pixel,
   recoloured, label-conflicting, a 20-copy replicated poison (JPEG at quality 70 to 89), beside cleanlab's
   ``near_duplicate`` on the decoded pixels (flattened, scaled to [0, 1]). Then the harm on images as shipped:
   ``bench/media_quality.py``'s 6,000 images (``--shipped-glyphs`` rendered digits beside the scans), nothing
   planted: the rows held as copies, each listed beside the image it is held with.
5. **leak**: a real table (exact repeats dropped, so its two parts share no content) split 80/20 into train
   and holdout; 20 train rows appended as exact copies of holdout rows. One run with the holdout as Parquet,
   one with it as CSV: planted leaks found (and the holdout id they name), and leaks held among the other
   rows (false: the split is disjoint).

Scoring of the planted parts (``duplicates_data.score``): a planted copy is caught when held; flags outside
every planted group are false; the ``copies`` convention leaves a flag on the copied original neutral
(cleanlab and datasketch flag both members of a pair; the run holds a conflict's original by its majority
rule), the ``strict`` convention counts it false and first resolves the peers' pairs as deduplication tools
do (one row of each connected group kept). A "must reach" summary closes the output: every kind at
precision and recall >= 0.95 and F1 >= the peers' (copies convention), exact agreement with pandas outside
chance groups and the harm bars (<= 2% of rows, <= 5% of a class) on the shipped tables, every leak found
and none false.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import duplicates_data as dd  # noqa: E402
import media_data as md  # noqa: E402
import real_data as rd  # noqa: E402

ROOT = Path(__file__).resolve().parent / "_data" / "duplicates" / f"run-{os.getpid()}"
"""This process's inputs and outputs: runs side by side never rewrite each other's files."""
COPY_CODES = frozenset({"duplicate", "near_duplicate", "label_conflict"})
MIN_CLASS_ROWS = 50
HARM_SHARE, HARM_CLASS, BAR = 0.02, 0.05, 0.95
LEAKS = 20
LEAK_TABLES = ("breast_cancer", "mlc_churn")
SUMMARY: list[tuple[str, bool]] = []


@dataclass
class Run:
    rc: int
    prov: dict | None
    held: dict[int, list[tuple[str, str, dict]]]  # row position -> (detector, code, evidence) of each reason
    seconds: float

    def mask(self, n: int, codes=COPY_CODES, detector: str = "duplicates") -> np.ndarray:
        m = np.zeros(n, dtype=bool)
        for row, reasons in self.held.items():
            m[row] = any(d == detector and c in codes for d, c, _ in reasons)
        return m

    def codes_of(self, row: int) -> list[str]:
        return [c for d, c, _ in self.held.get(int(row), []) if d == "duplicates"]

    @property
    def stats(self) -> dict:
        return ((self.prov or {}).get("detectors") or {}).get("duplicates") or {}


def sanitize(path: Path, out: Path, label: str, *extra: str) -> Run:
    """The default run, in this process: its exit code, provenance, held rows' reasons, seconds."""
    from sanitizer.cli import main as cli

    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    logging.disable(logging.WARNING)  # the id inference's notes; errors still print
    try:
        rc = cli.main(["run", "--input", str(path), "--output", str(out), "--label-column", label, "-q", *extra])
    finally:
        logging.disable(logging.NOTSET)
    seconds = time.perf_counter() - started
    prov_path = out / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else None
    files = sorted((out / "quarantine").glob("*.parquet")) if (out / "quarantine").exists() else []
    held: dict[int, list[tuple[str, str, dict]]] = {}
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
        for row, reasons in zip(rows, table.column("sanitizer_reasons").to_pylist()):
            held[row] = [(r["detector"], r["code"], json.loads(r["evidence_json"] or "{}")) for r in reasons or []]
    return Run(rc, prov, held, seconds)


def check(line: str, ok: bool) -> None:
    SUMMARY.append((f"{line}: {'yes' if ok else 'NO'}", ok))


def _f(t: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in t)


# --------------------------------------------------------------------------- 1. shipped


def _worst_class(mask: np.ndarray, labels: pd.Series) -> tuple[float, str | None]:
    worst, which = 0.0, None
    present = labels.notna().to_numpy()
    text = labels.astype(str).to_numpy()
    for cls in np.unique(text[present]):
        idx = present & (text == cls)
        if idx.sum() >= MIN_CLASS_ROWS and mask[idx].mean() >= worst:
            worst, which = float(mask[idx].mean()), cls
    return worst, which


def shipped_pass(t: rd.Table) -> None:
    df = t.load()
    path = rd.write_parquet(df, ROOT / "in" / "shipped" / f"{t.key}.parquet")
    run = sanitize(path, ROOT / "out" / "shipped" / t.key, t.label)
    n = len(df)
    id_column = ((run.prov or {}).get("columns") or {}).get("id")
    content = [c for c in df.columns if c not in {t.label, id_column}]
    pandas_dup = df[content].duplicated(keep="first").to_numpy()
    in_group = df[content].duplicated(keep=False).to_numpy()
    group = pd.util.hash_pandas_object(df[content], index=False).to_numpy()[in_group]
    dup = run.mask(n, {"duplicate"})
    near = run.mask(n, {"near_duplicate"})
    conflict = run.mask(n, {"label_conflict"})
    copy_held = dup | near | conflict
    # per pandas group: its rows and the rows the run held in it as copies
    sizes = pd.Series(1, index=group).groupby(level=0).sum()
    held_in = pd.Series(copy_held[in_group].astype(int), index=group).groupby(level=0).sum()
    untouched_rows = int(sizes[held_in == 0].sum())
    short = int(((held_in > 0) & (held_in < sizes - 1)).sum())  # groups the run held fewer than all but one of
    groups = f"{int((held_in >= sizes - 1).sum())}/{len(sizes)}"
    chance_rows = run.stats.get("chance_rows")
    agree = (dup & ~in_group).sum() == 0 and short == 0 and untouched_rows == (chance_rows or 0)
    present = df[t.label].notna().to_numpy()
    held_any = np.zeros(n, dtype=bool)
    held_any[list(run.held)] = True
    only_dup = np.zeros(n, dtype=bool)
    only_dup[[r for r, reasons in run.held.items() if {c for _, c, _ in reasons} == {"duplicate"}]] = True
    share = float((held_any & present).sum() / present.sum())
    share_wo = float((held_any & ~only_dup & present).sum() / present.sum())
    worst, worst_cls = _worst_class(held_any, df[t.label])
    worst_wo, _ = _worst_class(held_any & ~only_dup, df[t.label])
    any_dup = run.mask(n, COPY_CODES | {"leak"})
    dup_share = float(any_dup[present].mean())
    dup_worst, dup_cls = _worst_class(any_dup, df[t.label])
    both = copy_held & pandas_dup
    print(f"{t.key:<18} {n:>7,} {int(pandas_dup.sum()):>6} {int(dup.sum()):>5} {int(near.sum()):>5} "
          f"{int(conflict.sum()):>5} {int(both.sum()):>6} {int((dup & ~in_group).sum()):>6} "
          f"{int((pandas_dup & ~copy_held).sum()):>6} {groups:>11} {short:>5} {untouched_rows:>7} "
          f"{chance_rows if chance_rows is not None else '-':>7}  {dup_share:>6.2%} "
          f"{f'{dup_worst:.2%} ({dup_cls})'[:18]:>18}  {share:>6.2%} {share_wo:>6.2%} {worst:>6.2%} "
          f"{run.seconds:>5.0f}{'' if not run.rc else f'  exit {run.rc}'}", flush=True)
    SHIPPED[t.key] = {"agree": bool(agree), "share": share, "worst": worst, "share_wo": share_wo,
                      "worst_wo": worst_wo, "worst_cls": worst_cls, "rc": run.rc}


SHIPPED: dict[str, dict] = {}


def shipped_part(tables: list[rd.Table]) -> None:
    print("\n1. shipped: the corpus as its packages ship it; pandas = DataFrame.duplicated(keep='first') over every "
          "column but the label and the run's id")
    print(f"{'table':<18} {'rows':>7} {'pandas':>6} {'dup':>5} {'near':>5} {'confl':>5} {'both':>6} "
          f"{'dup-pd':>6} {'pd-run':>6} {'groups held':>11} {'short':>5} {'unheld':>7} {'chance':>7}  {'copies':>6} "
          f"{'worst class (copies)':>18}  {'held':>6} {'w/o dup':>6} {'worst':>6} {'s':>5}")
    print("  pandas: rows DataFrame.duplicated(keep='first') finds; dup / near / confl: rows the run holds as duplicate, "
          "near_duplicate, label_conflict;\n  both: pandas' rows held as any of the three; dup-pd: held as duplicate "
          "outside pandas' groups; pd-run: pandas' rows not held as a copy (with an id column the run keeps the copy "
          "with the\n  smallest record key, not the first: rows differ, groups agree); groups held: pandas groups with "
          "all but one row held / all; short: pandas groups\n  held but with more than one row left; unheld: rows of pandas' groups with no row held; chance: the run's rows in chance "
          "groups;\n  copies: share of labelled rows held as copies (any of the three, or leak); held / w/o dup: "
          "held for any reason, with and without the rows held only as duplicate; worst: worst class, any reason")
    for t in tables:
        shipped_pass(t)
    if not SHIPPED:
        return
    agree = [k for k, v in SHIPPED.items() if not v["agree"]]
    check(f"shipped: pandas' duplicates found exactly outside chance groups (every held copy in a pandas group, "
          f"all but one of each such group held, the groups left alone = the run's chance rows) on every table "
          f"(disagree: {', '.join(agree) or 'none'})", not agree)
    share = max(v["share"] for v in SHIPPED.values())
    worst = max(v["worst"] for v in SHIPPED.values())
    share_wo = max(v["share_wo"] for v in SHIPPED.values())
    worst_wo = max(v["worst_wo"] for v in SHIPPED.values())
    check(f"shipped harm: worst table held {share:.2%} <= 2%, worst class {worst:.2%} <= 5% (without the "
          f"`duplicate` holds {share_wo:.2%}, {worst_wo:.2%})", share <= HARM_SHARE and worst <= HARM_CLASS)


# --------------------------------------------------------------------------- planted parts


def _code_note(run: Run, planted: dd.Planted, name: str) -> str:
    copies = np.flatnonzero((planted.kind == name) & (planted.role == 1))
    originals = np.flatnonzero((planted.kind == name) & (planted.role == 2))
    got = Counter(c for r in copies for c in run.codes_of(r) if c in COPY_CODES)
    orig = Counter(c for r in originals for c in run.codes_of(r) if c in COPY_CODES)
    text = ", ".join(f"{k} {v}" for k, v in sorted(got.items())) or "none held"
    return text + (f"; originals held: {', '.join(f'{k} {v}' for k, v in sorted(orig.items()))}" if orig else "")


def report_planted(part: str, data: str, run: Run, planted: dd.Planted,
                   peers: list[tuple[str, np.ndarray, list]]) -> None:
    """The per-kind table of one planted run and its peers, and its must-reach lines."""
    n = len(planted.kind)
    ours = run.mask(n)
    rows = {"sanitize": (dd.score(ours, planted, False), dd.score(ours, planted, True))}
    for who, flags, pairs in peers:
        rows[who] = (dd.score(flags, planted, False), dd.score(dd.keep_first(n, pairs), planted, True))
    outside = {who: int((f & (planted.role == 0) & ~planted.excused).sum())
               for who, f in [("sanitize", ours)] + [(w, f) for w, f, _ in peers]}
    natural = "" if planted.natural is None else (
        f", {int((planted.natural & ~planted.neutral).sum())} with a near copy as shipped, listed above; flags on "
        "them: " + ", ".join(f"{who} {int((f & planted.natural & ~planted.neutral).sum())}"
                             for who, f in [("sanitize", ours)] + [(w, f) for w, f, _ in peers]))
    print(f"{data}: {n:,} rows ({n - sum(planted.sizes.values()):,} base, {int(planted.neutral.sum())} of them "
          f"natural duplicates{natural}; neutral); run {run.seconds:.0f} s{'' if not run.rc else f', exit {run.rc}'}; "
          "flags outside the planted groups (false): " + ", ".join(f"{k} {v}" for k, v in outside.items()))
    stray = Counter(c for r in np.flatnonzero(ours & (planted.role == 0) & ~planted.excused)
                    for c in set(run.codes_of(r)) if c in COPY_CODES)
    if stray:
        print("  the run's flags outside the planted groups by code: "
              + ", ".join(f"{k} {v}" for k, v in sorted(stray.items())))
    head = f"  {'kind':<9} {'copies':>6}  " + "  ".join(f"{who + ' P/R/F1':>33}" for who in rows)
    print(head + "   (copies convention; [strict])")
    for name in [*planted.kinds, "all"]:
        size = planted.sizes.get(name, sum(planted.sizes.values()))
        cells = "  ".join(f"{_f(c[name]):>14} [{_f(s[name])}]" for c, s in rows.values())
        note = _code_note(run, planted, name) if name != "all" else ""
        print(f"  {name:<9} {size:>6}  {cells}   {note}", flush=True)
    ours_c = rows["sanitize"][0]
    low = [k for k in planted.kinds if ours_c[k][0] < BAR or ours_c[k][1] < BAR]
    check(f"{part} {data}: every kind at precision and recall >= {BAR} (below: "
          f"{', '.join(f'{k} {_f(ours_c[k][:2])}' for k in low) or 'none'})", not low)
    ours_s = rows["sanitize"][1]["all"][2]
    for who in list(rows)[1:]:
        theirs, theirs_s = rows[who][0]["all"][2], rows[who][1]["all"][2]
        check(f"{part} {data}: F1 {ours_c['all'][2]:.3f} >= {who} {theirs:.3f} (strict: {ours_s:.3f} vs "
              f"{theirs_s:.3f})", ours_c["all"][2] >= theirs)


def vectors_part(keys: list[str], seed: int, peers: bool) -> None:
    from sklearn.preprocessing import StandardScaler

    print(f"\n2. planted vectors: exact {dd.EXACT_RATE:.0%}, near {dd.NEAR_RATE:.0%} (noise {dd.NOISE} x feature "
          f"sd), conflict {dd.CONFLICT_RATE:.0%} (exact copy, another label; at least {dd.MIN_PLANT} each), poison "
          f"{dd.POISON_COPIES} copies of one row (noise, one other label); peer: cleanlab Datalab near_duplicate, "
          "default parameters, on the standardised features")
    tables = {t.key: t for t in rd.CORPUS}
    for key in keys:
        t = tables[key]
        df = t.load()
        frame, planted = dd.plant_vectors(df, t.label, np.random.default_rng([seed, 2]))
        path = rd.write_parquet(frame, ROOT / "in" / "vectors" / f"{key}.parquet")
        run = sanitize(path, ROOT / "out" / "vectors" / key, t.label)
        found = []
        if peers:
            X = StandardScaler().fit_transform(frame.drop(columns=[t.label]).to_numpy(dtype=float))
            flags, pairs, params = dd.cleanlab_near(X, frame[t.label].astype(str).to_numpy())
            found.append(("cleanlab", flags, pairs))
            print(f"  cleanlab: {params}")
        report_planted("planted vectors", key, run, planted, found)


def text_part(seed: int, peers: bool) -> None:
    df, text, label = md.reviews()
    df = df[[text, label]]
    frame, planted = dd.plant_texts(df, text, label, np.random.default_rng([seed, 3]))
    print(f"\n3. text: modeldata reviews ({len(df):,}; columns {text!r}, {label!r}); exact {dd.EXACT_RATE:.0%}, "
          f"edited {dd.NEAR_RATE:.0%} (3-5 words replaced by corpus words), conflict {dd.CONFLICT_RATE:.0%}, poison "
          f"{dd.POISON_COPIES} copies (1-2 words replaced, one other label); peer: datasketch MinHashLSH, "
          "num_perm 128, MinHash seed 1, character 5-gram shingles of the lowercased tokens")
    path = ROOT / "in" / "text" / "reviews.parquet"
    rd.write_parquet(frame, path)
    run = sanitize(path, ROOT / "out" / "text", label)
    natural_texts(frame[text].tolist(), planted, run)
    found = []
    if peers:
        texts = frame[text].tolist()
        for threshold in (0.8, 0.5):
            started = time.perf_counter()
            flags, pairs = dd.datasketch_near(texts, threshold)
            found.append((f"datasketch {threshold}", flags, pairs))
            print(f"  datasketch threshold {threshold}: {len(pairs) // 2} pairs, {time.perf_counter() - started:.0f} s")
    report_planted("text", "reviews", run, planted, found)


def natural_texts(texts: list, planted: dd.Planted, run: Run) -> None:
    """Mark and list the untouched reviews that have a near copy among the reviews as shipped: flags on them
    are neither right nor wrong (as for exact duplicates), and are counted apart."""
    pairs = dd.natural_near_texts(texts, planted.role != 1)
    natural = np.zeros(len(texts), dtype=bool)
    for a, b, _ in pairs:
        natural[[a, b]] = True
    planted.natural = natural & (planted.role == 0)
    print(f"  near copies in the reviews as shipped (two original reviews, exact character 5-gram Jaccard >= "
          f"{dd.NATURAL_JACCARD}): {len(pairs)} pairs; the run's codes on each row:")
    for a, b, sim in pairs:
        codes = [",".join(run.codes_of(r)) or "-" for r in (a, b)]
        print(f"    rows {a} ({codes[0]}) and {b} ({codes[1]}): Jaccard {sim:.3f}  {texts[a][:60]!r} / "
              f"{texts[b][:60]!r}")
    false = np.flatnonzero(run.mask(len(texts)) & (planted.role == 0) & ~planted.excused)
    for r in false:
        kept = next((e.get("kept_id") for d, c, e in run.held.get(int(r), []) if d == "duplicates"), None)
        k = int(str(kept).rsplit(":", 1)[1]) if kept else None
        sim = f"Jaccard {dd.exact_jaccard(texts[r], texts[k]):.3f} to row {k}" if k is not None else "no kept copy"
        print(f"    held outside the planted groups and not a near copy as shipped: row {r} "
              f"({','.join(run.codes_of(r))}), {sim}: {texts[r][:60]!r}")


def images_part(seed: int, glyphs: int, peers: bool) -> None:
    images = md.make_images(seed, glyphs)
    planted_images, planted = dd.plant_images(images, np.random.default_rng([seed, 4]))
    print(f"\n4. images: {len(images.labels):,} 32x32 RGB PNGs ({int((images.source == 'digits').sum())} scans, "
          f"{int((images.source == 'glyph').sum())} glyphs with a file name in `path`), HF struct layout; exact "
          f"{dd.EXACT_RATE:.0%}, jpeg q75 / 1-px shift / recolour (hue +10/256, brightness x1.05) {dd.IMAGE_NEAR_RATE:.0%} each, conflict "
          f"{dd.CONFLICT_RATE:.0%}, poison {dd.POISON_COPIES} JPEG copies (q70-89, one other label); a copy's `path` "
          "is its own row's name, as the original's is; peer: cleanlab Datalab near_duplicate, default "
          "parameters, on the decoded pixels flattened to [0, 1]")
    path = md.image_table(planted_images, ROOT / "in" / "images" / "images.parquet")
    run = sanitize(path, ROOT / "out" / "images", "label")
    found = []
    if peers:
        X = planted_images.pixels.reshape(len(planted_images.labels), -1).astype(np.float64) / 255.0
        flags, pairs, params = dd.cleanlab_near(X, planted_images.labels.astype(str))
        found.append(("cleanlab (pixels)", flags, pairs))
        print(f"  cleanlab: {params}")
    report_planted("images", "images", run, planted, found)
    exact = np.flatnonzero((planted.kind == "exact") & (planted.role == 1))
    named = exact[planted_images.source[exact] == "glyph"]
    held = run.mask(len(planted.kind))
    print(f"  exact copies with a file name in `path` held {int(held[named].sum())}/{len(named)}; without "
          f"{int(held[np.setdiff1d(exact, named)].sum())}/{len(exact) - len(named)}")


def shipped_images_part(seed: int, glyphs: int) -> None:
    """The harm on images as shipped: ``bench/media_quality.py``'s images, nothing planted; every row the
    duplicates detector holds is a false find unless the two images are near copies by eye (listed)."""
    if glyphs <= 0:
        return
    images = md.make_images(seed, glyphs)
    n = len(images.labels)
    path = md.image_table(images, ROOT / "in" / "images-shipped" / "images.parquet")
    run = sanitize(path, ROOT / "out" / "images-shipped", "label")
    held = run.mask(n)
    share = float(held.mean())
    worst, cls = _worst_class(held, pd.Series(images.labels))
    print(f"\n4b. images as shipped: bench/media_quality.py's {n:,} images (seed {seed}, {glyphs:,} glyphs), nothing "
          f"planted; run {run.seconds:.0f} s{'' if not run.rc else f', exit {run.rc}'}: {int(held.sum())} rows held "
          f"as copies ({share:.2%}), worst class {worst:.2%} ({cls}); each with the image it is held beside:")
    for r in np.flatnonzero(held):
        ev = next((e for d, _, e in run.held.get(int(r), []) if d == "duplicates"), {})
        k = int(str(ev["kept_id"]).rsplit(":", 1)[1]) if ev.get("kept_id") else None
        beside = "" if k is None else (
            f" beside row {k} ({images.source[k]}, label {images.labels[k]}): {ev.get('similarity', '')}; mean "
            f"absolute RGB difference {np.abs(images.pixels[r].astype(float) - images.pixels[k]).mean():.1f}")
        print(f"    row {r} ({images.source[r]}, label {images.labels[r]}; {','.join(run.codes_of(r))}){beside}")
    check(f"images as shipped: {share:.2%} of rows held as copies <= 2%, worst class {worst:.2%} <= 5%",
          share <= HARM_SHARE and worst <= HARM_CLASS)


# --------------------------------------------------------------------------- 5. leak


def leak_pass(t: rd.Table, seed: int) -> None:
    df = t.load().drop(columns=["rownames"], errors="ignore")
    content = [c for c in df.columns if c != t.label]
    df = df.loc[~df[content].duplicated()].reset_index(drop=True)
    rng = np.random.default_rng([seed, 5])
    order = rng.permutation(len(df))
    cut = int(0.8 * len(df))
    train, holdout = df.iloc[np.sort(order[:cut])], df.iloc[np.sort(order[cut:])].reset_index(drop=True)
    copied = np.sort(rng.choice(len(holdout), size=LEAKS, replace=False))
    planted = pd.concat([train, holdout.iloc[copied]], ignore_index=True)
    n = len(planted)
    truth = np.zeros(n, dtype=bool)
    truth[len(train):] = True
    folder = ROOT / "in" / "leak" / t.key
    path = rd.write_parquet(planted, folder / "train.parquet")
    holdouts = {"parquet": rd.write_parquet(holdout, folder / "holdout.parquet"), "csv": folder / "holdout.csv"}
    holdout.to_csv(holdouts["csv"], index=False)
    for fmt, hpath in holdouts.items():
        run = sanitize(path, ROOT / "out" / "leak" / f"{t.key}-{fmt}", t.label, "--holdout", str(hpath))
        leak = run.mask(n, {"leak"})
        named = [next((e.get("holdout_id") for d, c, e in run.held.get(int(r), []) if c == "leak"), None)
                 for r in np.flatnonzero(truth)]
        right = sum(1 for i, hid in zip(copied, named) if hid == f"{hpath.name}:{i}")
        recall = float(leak[truth].mean())
        false = int((leak & ~truth).sum())
        print(f"{t.key:<14} {fmt:<7} {len(train):>6} {len(holdout):>6} {LEAKS:>5} {recall:>7.3f} {right:>4}/{LEAKS} "
              f"{false:>6} {run.seconds:>5.0f}{'' if not run.rc else f'  exit {run.rc}'}  "
              f"leak holds in provenance: {run.stats.get('leak', '-')}", flush=True)
        check(f"leak {t.key} ({fmt} holdout): recall {recall:.3f} = 1, false leaks {false} = 0",
              recall == 1.0 and false == 0)


def leak_part(seed: int) -> None:
    print(f"\n5. leak: exact repeats dropped, split 80/20 (disjoint content), {LEAKS} train rows appended as exact "
          "copies of holdout rows; --holdout as Parquet, then as CSV")
    print(f"{'table':<14} {'holdout':<7} {'train':>6} {'hold':>6} {'leaks':>5} {'recall':>7} {'id ok':>7} "
          f"{'false':>6} {'s':>5}")
    tables = {t.key: t for t in rd.CORPUS}
    for key in LEAK_TABLES:
        leak_pass(tables[key], seed)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="shipped,planted,text,images,leak")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tables", default="", help="shipped: corpus keys (default all); planted: default "
                                                 "breast_cancer,digits")
    ap.add_argument("--glyphs", type=int, default=1200, help="rendered glyphs beside the 1,797 digit scans")
    ap.add_argument("--shipped-glyphs", type=int, default=4200,
                    help="images part: also run on bench/media_quality.py's images as shipped (the scans and this "
                         "many glyphs; 0: skip)")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    only = set(args.only.split(","))
    unknown = only - {"shipped", "planted", "text", "images", "leak"}
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}")
    keys = [k for k in args.tables.split(",") if k]
    known = {t.key for t in rd.CORPUS}
    if set(keys) - known:
        ap.error(f"unknown tables {sorted(set(keys) - known)}; known: {', '.join(sorted(known))}")
    started = time.perf_counter()
    print(f"default sanitize run, seed {args.seed}; outputs under {ROOT}")
    if "shipped" in only:
        shipped_part([t for t in rd.CORPUS if not keys or t.key in keys])
    if "planted" in only:
        vectors_part(keys or ["breast_cancer", "digits"], args.seed, not args.no_peers)
    if "text" in only:
        text_part(args.seed, not args.no_peers)
    if "images" in only:
        images_part(args.seed, args.glyphs, not args.no_peers)
        shipped_images_part(args.seed, args.shipped_glyphs)
    if "leak" in only:
        leak_part(args.seed)
    print("\nmust reach")
    for line, _ in SUMMARY:
        print(f"  {line}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
