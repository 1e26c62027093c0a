"""The representation stage: image and text columns become vectors the detectors judge.

Before the detectors fit, each image or text column of the sample gets a representation fitted on the
sample (:mod:`sanitizer.representations.media`): by default, for text, TF-IDF word and character n-grams
reduced by truncated SVD (:mod:`sanitizer.representations.text_tfidf`); for images, a small CNN trained on
the sample's images and labels (:mod:`sanitizer.representations.image_cnn`). Both are cross-fitted: a
record is embedded by a model that never saw it. The vectors join the numeric features, named
``COLUMN:0``, ``COLUMN:1``, ..., so every detector judges them as it judges numbers (the dimensions of one
vector share one scale: :func:`sanitizer.representations.scaling.blocks`), with a few signals of what the
value is beside them: a text's share of unknown words and of weight its representation cannot express, an
image's contrast, edges and colour. The shards keep the user's columns untouched.

Every batch is embedded the same way inside the workers (:func:`with_media`), from the decoded pixels and
cut texts the batch carries. What each representation used (kind, dimensions, folds, seed) is in the
fit summary and provenance (``representations``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.data.batch import IMAGE, NUMERIC, TEXT, Batch

DIM = 64
"""Dimensions of the built-in representations' vectors ..."""
ROWS_PER_DIM = 20
"""... at most one per this many sample rows: the detectors' models fitted on the vectors (a classifier, a
neighbour vote) need many more rows than dimensions."""


def dimensions(rows: int) -> int:
    """The representation's dimensions for a sample of ``rows`` rows."""
    return int(max(2, min(DIM, rows // ROWS_PER_DIM)))


@dataclass(frozen=True)
class Unrepresented:
    """A column the sample gives too little to represent (no text at all, too few images): not judged,
    and provenance says why."""

    reason: str
    dim: int = 0

    def describe(self) -> dict[str, Any]:
        return {"kind": "none", "dim": 0, "reason": self.reason}


def fit_media(sample: Batch, seed: int, settings=None) -> dict[str, Any]:
    """Column name -> its fitted representation (or :class:`Unrepresented`, with why), for every image and
    text column of ``sample`` (in batch column order); empty when it has none. ``settings``: the config's
    ``media`` section (a user's image backbone or text encoder, pinned by its sha256, replaces the built-in
    CNN or TF-IDF)."""
    fitted: dict[str, Any] = {}
    for j, name in enumerate(sample.columns.get(TEXT, ())):
        from sanitizer.representations.text_tfidf import fit_text

        if settings is not None and settings.text_model:
            from sanitizer.representations.text_model import load_text_model

            fitted[name] = load_text_model(settings.text_model, settings.text_model_sha256)
            continue
        try:
            fitted[name] = fit_text(sample.features[TEXT][:, j], sample.keys, seed, dim=dimensions(sample.n))
        except ValueError as exc:  # too little text in the sample to learn a vocabulary from
            fitted[name] = Unrepresented(f"not judged: {exc}")
    for j, name in enumerate(sample.columns.get(IMAGE, ())):
        from sanitizer.representations.image_cnn import fit_images, load_backbone

        if settings is not None and settings.image_model:
            fitted[name] = load_backbone(settings.image_model, settings.image_model_sha256,
                                         int(sample.features[IMAGE].shape[2]))
            continue
        try:
            cnn = fit_images(sample.features[IMAGE][:, j], sample.labels, sample.keys, seed,
                             dim=dimensions(sample.n))
        except ValueError as exc:
            fitted[name] = Unrepresented(f"not judged: {exc}")
            continue
        from sanitizer.beam.trigger_blind import TriggerBlind, blind_blocks

        # trained on the labels, the CNN learns a stamped trigger too: it embeds images without such blocks
        fitted[name] = TriggerBlind(cnn, blind_blocks(sample.features[IMAGE][:, j], sample.labels))
    return fitted


def with_media(batch: Batch, fitted: dict[str, Any] | None) -> Batch:
    """``batch`` with each image and text column's vectors appended to its numeric features."""
    if not fitted:
        return batch
    parts, names = [batch.X], list(batch.feature_names)
    for kind in (TEXT, IMAGE):
        for j, name in enumerate(batch.columns.get(kind, ())):
            rep = fitted.get(name)
            if rep is None or rep.dim == 0:
                continue
            values = batch.features[kind][:, j]
            rows = IMAGE_ROWS if kind == IMAGE else max(len(values), 1)
            if hasattr(rep, "vectors"):  # the embedding and the representation's own signals
                parts.append(_by_rows(rep.vectors, values, batch.keys, rows))
                names.extend(f"{name}:{i}" for i in rep.names)
            else:
                parts.append(_by_rows(rep.embed, values, batch.keys, rows))
                names.extend(f"{name}:{i}" for i in range(rep.dim))
            if kind == IMAGE:
                parts.append(image_statistics(values))
                names.extend(f"{name}:{stat}" for stat in IMAGE_STATISTICS)
    X = np.ascontiguousarray(np.hstack(parts)) if len(parts) > 1 else batch.X
    out = Batch(features={**batch.features, NUMERIC: X}, labels=batch.labels, keys=batch.keys, ids=batch.ids,
                feature_names=tuple(names), checks=batch.checks, columns=batch.columns)
    return out


IMAGE_ROWS = 4096
"""Images a representation embeds at a time (:func:`with_media`): its working copies (the float pixels a
CNN reads, the masked images) weigh the same for a batch of scoring and for a sample of 100,000 rows."""


def _by_rows(embed, values: np.ndarray, keys: np.ndarray, rows: int) -> np.ndarray:
    """``embed(values, keys)`` as float64, ``rows`` rows at a time (every row is embedded on its own)."""
    if len(values) <= rows:
        return np.asarray(embed(values, keys), dtype=np.float64)
    parts = [np.asarray(embed(values[a:a + rows], keys[a:a + rows]), dtype=np.float64)
             for a in range(0, len(values), rows)]
    return np.concatenate(parts)


IMAGE_STATISTICS = ("contrast", "edges", "colour")
"""What every image column adds beside its representation's vector, from its decoded pixels."""


def image_statistics(pixels: np.ndarray) -> np.ndarray:
    """(n, 3) float64 per image (uint8 (n, S, S, 3)): ``contrast``, the standard deviation of its grey
    levels; ``edges``, the mean absolute difference between neighbouring pixels (noise is all edges, a blank
    or a smooth gradient none); ``colour``, the mean spread between a pixel's channels. All on a 0-1 scale:
    a representation's vector is unit length whatever the image, so a blank or a noise image can point
    anywhere; these say what it is."""
    out = np.zeros((len(pixels), len(IMAGE_STATISTICS)))
    for start in range(0, len(pixels), 4096):  # float working copies of a few thousand images at a time
        x = pixels[start:start + 4096].astype(np.float32) / 255.0
        grey = x.mean(axis=3)
        edges = (np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))) / 2
        colour = (x.max(axis=3) - x.min(axis=3)).mean(axis=(1, 2))
        out[start:start + len(x)] = np.stack([grey.std(axis=(1, 2)), edges, colour], axis=1)
    return out


def describe(fitted: dict[str, Any]) -> dict[str, Any]:
    """Column name -> what its representation used (for the fit summary and provenance)."""
    return {name: rep.describe() for name, rep in fitted.items()}
