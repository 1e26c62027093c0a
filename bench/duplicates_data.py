"""Planted copies for ``bench/duplicates_quality.py``, the peers that look for them, and how both are scored.

**Plants** (every planted row is appended after the original rows, so the original is the copy read first;
each original is copied by one plant only, and is no natural duplicate of another row):

* vectors (:func:`plant_vectors`, a numeric table): ``exact`` copies; ``near`` copies (every feature plus
  Gaussian noise of ``NOISE`` x the feature's standard deviation); ``conflict`` copies (exact, another
  label); ``poison`` (one row copied ``POISON_COPIES`` times, each with its own noise, all with one other
  label);
* texts (:func:`plant_texts`): ``exact`` copies; ``edited`` copies (3 to 5 words replaced by words drawn
  from the corpus); ``conflict`` copies (exact text, another label); ``poison`` (one review copied
  ``POISON_COPIES`` times, each with 1 or 2 words replaced, all with one other label);
* images (:func:`plant_images`): ``exact`` copies (the same PNG bytes); ``jpeg`` (the PNG's pixels re-encoded
  as JPEG at quality 75, stored as JPEG bytes); ``shift`` (moved one pixel down and right, edge rows
  repeated); ``recolour`` (hue +10/256, brightness x1.05); ``conflict`` (same bytes, another label);
  ``poison`` (one image re-encoded as JPEG ``POISON_COPIES`` times at qualities 70 to 89, all with one
  other label).

**Scoring** (:func:`score`). A planted copy is caught when flagged. Rows outside every planted group that are
flagged are false positives, except rows the base data already duplicates (``neutral``) and, for texts,
rows with a near copy in the base data as shipped (``natural``, :func:`natural_near_texts`: two original
reviews whose exact character 5-gram Jaccard is :data:`NATURAL_JACCARD` or more; they are counted and
listed apart). Two conventions:

* ``copies``: a flag on an original is neither right nor wrong (cleanlab and datasketch flag both members of
  a pair; the run holds a conflict's original by its majority rule);
* ``strict``: a flag on an original is a false positive; the peers' pairs are first resolved as
  deduplication tools do (connected components, the first row of each kept, :func:`keep_first`).

Per kind: recall over the kind's copies, and precision = the kind's caught copies over those plus the false
positives outside every group plus (strict) the kind's flagged originals: every false positive outside the
groups counts against every kind.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

NOISE = 0.01
POISON_COPIES = 20
EXACT_RATE, NEAR_RATE, CONFLICT_RATE = 0.02, 0.02, 0.01
IMAGE_NEAR_RATE = 0.01
"""Each of the three kinds of changed image copies (JPEG, shift, recolour): 3% of the rows together."""
MIN_PLANT = 10
_TOKEN = re.compile(r"[^\W_]+")


@dataclass
class Planted:
    """Which rows of a planted table are copies (``role`` 1) or originals (``role`` 2) of which kind."""

    kind: np.ndarray  # (n,) object: "" for rows no plant touched
    role: np.ndarray  # (n,) int8: 0 untouched, 1 planted copy, 2 original of a planted copy
    source: np.ndarray  # (n,) int64: a copy's original row, -1 elsewhere
    neutral: np.ndarray  # (n,) bool: rows the base data already duplicates (pandas, every member)
    sizes: dict[str, int]
    natural: np.ndarray | None = None  # (n,) bool: untouched rows with a near copy in the base data as shipped

    @property
    def excused(self) -> np.ndarray:
        """Rows whose flags are neither right nor wrong: copies the base data already holds."""
        return self.neutral if self.natural is None else self.neutral | self.natural

    @property
    def kinds(self) -> list[str]:
        return list(self.sizes)


def _count(n: int, rate: float) -> int:
    return max(MIN_PLANT, int(round(rate * n)))


def natural_duplicates(frame: pd.DataFrame) -> np.ndarray:
    """Every member of the base data's own groups of identical rows (pandas ``duplicated(keep=False)``)."""
    return frame.duplicated(keep=False).to_numpy()


def _other_label(value, classes: np.ndarray, rng: np.random.Generator):
    others = classes[classes != value]
    return others[int(rng.integers(len(others)))]


def _layout(n_base: int, plan: list[tuple[str, np.ndarray]], neutral: np.ndarray) -> Planted:
    """``plan``: (kind, original row of each copy) in the order the copies are appended."""
    sources = np.concatenate([rows for _, rows in plan]) if plan else np.zeros(0, dtype=np.int64)
    n = n_base + len(sources)
    kind = np.full(n, "", dtype=object)
    role = np.zeros(n, dtype=np.int8)
    source = np.full(n, -1, dtype=np.int64)
    at = n_base
    for name, rows in plan:
        kind[at:at + len(rows)] = name
        role[at:at + len(rows)] = 1
        source[at:at + len(rows)] = rows
        kind[rows] = name
        role[rows] = 2
        at += len(rows)
    return Planted(kind, role, source, np.concatenate([neutral, np.zeros(n - n_base, dtype=bool)]),
                   {name: len(rows) for name, rows in plan})


def _originals(n: int, neutral: np.ndarray, rng: np.random.Generator, sizes: list[int]) -> list[np.ndarray]:
    """Disjoint draws of distinct original rows, none a natural duplicate."""
    free = rng.permutation(np.flatnonzero(~neutral))
    out, at = [], 0
    for k in sizes:
        out.append(np.sort(free[at:at + k]))
        at += k
    return out


# --------------------------------------------------------------------------- vectors


def plant_vectors(df: pd.DataFrame, label: str, rng: np.random.Generator) -> tuple[pd.DataFrame, Planted]:
    """Exact, near, label-conflicting and replicated-poison copies of a numeric table's rows (appended)."""
    features = [c for c in df.columns if c != label]
    n = len(df)
    neutral = natural_duplicates(df[features])
    exact, near, conflict, poison = _originals(n, neutral, rng, [_count(n, EXACT_RATE), _count(n, NEAR_RATE),
                                                                 _count(n, CONFLICT_RATE), 1])
    X = df[features].to_numpy(dtype=float)
    sd = X.std(axis=0)
    classes = np.array(sorted(df[label].unique()))
    labels = df[label].to_numpy()
    parts = [df.iloc[exact]]
    noisy = df.iloc[near].copy()
    noisy[features] = X[near] + rng.normal(size=(len(near), len(features))) * NOISE * sd
    parts.append(noisy)
    flipped = df.iloc[conflict].copy()
    flipped[label] = [_other_label(v, classes, rng) for v in labels[conflict]]
    parts.append(flipped)
    rows = np.repeat(poison, POISON_COPIES)
    copies = df.iloc[rows].copy()
    copies[features] = X[rows] + rng.normal(size=(len(rows), len(features))) * NOISE * sd
    copies[label] = _other_label(labels[poison[0]], classes, rng)
    parts.append(copies)
    out = pd.concat([df, *parts], ignore_index=True)
    for c in features:  # integer columns with noise become float; the rest keep their type
        if out[c].dtype != df[c].dtype and not np.allclose(out[c], out[c].round()):
            continue
        out[c] = out[c].astype(df[c].dtype)
    planted = _layout(n, [("exact", exact), ("near", near), ("conflict", conflict), ("poison", rows)], neutral)
    return out, planted


# --------------------------------------------------------------------------- texts


def _edit(text: str, k: int, vocabulary: np.ndarray, rng: np.random.Generator) -> str:
    words = str(text).split(" ")
    real = np.flatnonzero([bool(w) for w in words])  # runs of spaces leave empty words: never edited
    for at in rng.choice(real, size=min(k, len(real)), replace=False):
        words[at] = vocabulary[int(rng.integers(len(vocabulary)))]
    return " ".join(words)


def plant_texts(df: pd.DataFrame, text: str, label: str, rng: np.random.Generator) -> tuple[pd.DataFrame, Planted]:
    """Exact, edited, label-conflicting and replicated-poison copies of a text table's rows (appended)."""
    n = len(df)
    neutral = natural_duplicates(df[[text]])
    exact, edited, conflict, poison = _originals(n, neutral, rng, [_count(n, EXACT_RATE), _count(n, NEAR_RATE),
                                                                   _count(n, CONFLICT_RATE), 1])
    vocabulary = np.array(sorted({w for t in df[text].dropna() for w in _TOKEN.findall(str(t).lower())}))
    classes = np.array(sorted(df[label].astype(str).unique()))
    labels = df[label].astype(str).to_numpy()
    parts = [df.iloc[exact]]
    changed = df.iloc[edited].copy()
    changed[text] = [_edit(t, int(rng.integers(3, 6)), vocabulary, rng) for t in df[text].to_numpy()[edited]]
    parts.append(changed)
    flipped = df.iloc[conflict].copy()
    flipped[label] = [_other_label(v, classes, rng) for v in labels[conflict]]
    parts.append(flipped)
    rows = np.repeat(poison, POISON_COPIES)
    copies = df.iloc[rows].copy()
    copies[text] = [_edit(t, int(rng.integers(1, 3)), vocabulary, rng) for t in df[text].to_numpy()[rows]]
    copies[label] = _other_label(labels[poison[0]], classes, rng)
    parts.append(copies)
    out = pd.concat([df, *parts], ignore_index=True)
    planted = _layout(n, [("exact", exact), ("edited", edited), ("conflict", conflict), ("poison", rows)], neutral)
    return out, planted


# --------------------------------------------------------------------------- images


def jpeg_bytes(pixels: np.ndarray, quality: int = 75) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def shift(pixels: np.ndarray) -> np.ndarray:
    """One pixel down and right, the first row and column repeated."""
    take = np.clip(np.arange(pixels.shape[0]) - 1, 0, pixels.shape[0] - 1)
    return pixels[take][:, take]


def recolour(pixels: np.ndarray) -> np.ndarray:
    """Hue +10/256 and brightness x1.05."""
    hsv = np.asarray(Image.fromarray(pixels).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + 10) % 256
    rgb = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")).astype(np.float64)
    return (rgb * 1.05).clip(0, 255).astype(np.uint8)


def plant_images(images, rng: np.random.Generator):
    """(planted ``media_data.Images`` whose pixels are what a decoder sees, Planted)."""
    from media_data import Images, png

    n = len(images.labels)
    encoded = [png(p) for p in images.pixels]
    neutral = natural_duplicates(pd.DataFrame({"png": encoded}))
    k, c = _count(n, IMAGE_NEAR_RATE), _count(n, CONFLICT_RATE)
    exact, jpg, moved, tinted, conflict, poison = _originals(n, neutral, rng, [_count(n, EXACT_RATE), k, k, k, c, 1])
    classes = np.array(sorted(set(images.labels)))
    rows = np.repeat(poison, POISON_COPIES)
    target = _other_label(images.labels[poison[0]], classes, rng)
    plan = [("exact", exact), ("jpeg", jpg), ("shift", moved), ("recolour", tinted), ("conflict", conflict),
            ("poison", rows)]
    pixels, labels, stored = [], [], {}
    at = n
    for name, originals in plan:
        for r in originals:
            p, lab = images.pixels[r], images.labels[r]
            if name in ("jpeg", "poison"):
                stored[at] = jpeg_bytes(p, 75 if name == "jpeg" else 70 + int(rng.integers(20)))
                p = decode(stored[at])
            elif name == "shift":
                p = shift(p)
            elif name == "recolour":
                p = recolour(p)
            if name == "conflict":
                lab = _other_label(lab, classes, rng)
            elif name == "poison":
                lab = target
            pixels.append(p)
            labels.append(lab)
            at += 1
    sources = np.concatenate([originals for _, originals in plan])
    out = Images(np.concatenate([images.pixels, np.stack(pixels)]),
                 np.concatenate([images.labels, np.array(labels, dtype=object)]),
                 np.concatenate([images.source, images.source[sources]]), stored)
    return out, _layout(n, plan, neutral)


# --------------------------------------------------------------------------- peers


def components(n: int, pairs) -> np.ndarray:
    """(n,) component id of each row under the pairs (union-find; a row alone is its own component)."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = find(int(i)), find(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)])


def keep_first(n: int, pairs) -> np.ndarray:
    """Deduplication as the LLM data tools run it: every member of a found group but its first row flagged."""
    comp = components(n, pairs)
    flagged = np.zeros(n, dtype=bool)
    paired = np.zeros(n, dtype=bool)
    for i, j in pairs:
        paired[[i, j]] = True
    flagged[paired] = comp[paired] != np.arange(n)[paired]
    return flagged


def cleanlab_near(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]], dict]:
    """cleanlab Datalab's ``near_duplicate`` issue with its defaults: (flags, pairs, parameters)."""
    import warnings

    from cleanlab import Datalab

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = Datalab(data={"label": np.asarray(y)}, label_name="label", verbosity=0)
        lab.find_issues(features=np.asarray(X, dtype=np.float64), issue_types={"near_duplicate": {}})
    issues = lab.get_issues("near_duplicate")
    info = lab.get_info("near_duplicate")
    sets = info.get("near_duplicate_sets") if "near_duplicate_sets" in info else issues["near_duplicate_sets"]
    pairs = [(i, int(j)) for i, s in enumerate(sets) for j in s if int(j) != i]
    metric = info.get("metric")
    params = {"threshold": info.get("threshold", 0.13), "k": info.get("k", 10),
              "metric": getattr(metric, "__name__", metric), "median_nn_distance": round(float(info.get("median_distance_to_nearest_neighbor", np.nan)), 4)}
    return issues["is_near_duplicate_issue"].to_numpy(dtype=bool), pairs, params


def shingles(text, n: int = 5) -> set[bytes]:
    """Character ``n``-grams of the lowercased letter-and-digit tokens joined by single spaces (as bytes)."""
    joined = " ".join(_TOKEN.findall(str(text).lower())) if isinstance(text, str) else ""
    if len(joined) <= n:
        return {joined.encode()} if joined else set()
    return {joined[i:i + n].encode() for i in range(len(joined) - n + 1)}


def datasketch_near(texts, threshold: float = 0.8, num_perm: int = 128,
                    seed: int = 1) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """datasketch's ``MinHashLSH``: every text inserted, then queried; (flags, pairs)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = []
    for k, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch(list(shingles(text)))
        lsh.insert(k, m)
        sketches.append(m)
    pairs = [(i, int(j)) for i, m in enumerate(sketches) for j in lsh.query(m) if int(j) != i]
    flags = np.zeros(len(sketches), dtype=bool)
    for i, j in pairs:
        flags[[i, j]] = True
    return flags, pairs


NATURAL_JACCARD = 0.5
"""Two original texts this similar (exact Jaccard of their character 5-grams, the lowest threshold the text
part runs datasketch at) are a near copy the data already holds, not a false find."""


def exact_jaccard(a, b) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def natural_near_texts(texts, base: np.ndarray, bar: float = NATURAL_JACCARD) -> list[tuple[int, int, float]]:
    """(row, row, exact Jaccard) of the pairs of ``base`` rows whose texts are near copies as shipped (Jaccard
    >= ``bar``, not identical strings): candidates from datasketch's MinHashLSH at a threshold well below
    ``bar`` (0.3), each verified on the exact shingle sets."""
    rows = np.flatnonzero(base)
    _, pairs = datasketch_near([texts[r] for r in rows], 0.3)
    out = set()
    for i, j in pairs:
        a, b = sorted((int(rows[i]), int(rows[j])))
        if texts[a] == texts[b]:
            continue
        sim = exact_jaccard(texts[a], texts[b])
        if sim >= bar:
            out.add((a, b, round(sim, 3)))
    return sorted(out)


# --------------------------------------------------------------------------- scoring


def score(flagged: np.ndarray, planted: Planted, strict: bool) -> dict[str, tuple[float, float, float]]:
    """Per kind and ``"all"``: (precision, recall, F1) under the ``copies`` or ``strict`` convention."""
    copy, original = planted.role == 1, planted.role == 2
    outside = flagged & (planted.role == 0) & ~planted.excused
    out = {}
    for name in [*planted.kinds, "all"]:
        mine = planted.kind == name if name != "all" else planted.role > 0
        tp = float((flagged & copy & mine).sum())
        fp = float(outside.sum()) + (float((flagged & original & mine).sum()) if strict else 0.0)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / float((copy & mine).sum())
        out[name] = (p, r, 2 * p * r / (p + r) if p + r else 0.0)
    return out
