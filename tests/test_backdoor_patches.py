"""``backdoor``'s image patch triggers on scikit-learn's digits (the 8x8 pixels as the content, the image
upscaled to 32x32 RGB and tinted as the image column): a 4x4 checker stamped on 3% of the images of other
classes and relabelled to one target is found at its place and its carriers are held, naming the region,
when the content does not hold the patch; the digits as shipped confirm no patch."""

from __future__ import annotations

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from sanitizer.data.batch import IMAGE, NUMERIC, Batch, mix64
from sanitizer.detectors.backdoor import BackdoorDetector, patches

CHECKER = np.kron([[255, 0], [0, 255]], np.ones((2, 2)))[:, :, None].repeat(3, axis=2).astype(np.uint8)


def digits_batch(stamp: bool):
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    pixels = np.empty((len(X), 32, 32, 3), dtype=np.uint8)
    for i, row in enumerate(X):
        grey = np.asarray(Image.fromarray((row.reshape(8, 8) * 16).clip(0, 255).astype(np.uint8)).resize((32, 32)))
        pixels[i] = (grey[:, :, None] * rng.uniform(0.4, 1.0, size=3)).astype(np.uint8)
    labels = y.astype(str).astype(object)
    rows = np.sort(rng.choice(np.flatnonzero(labels != "5"), int(0.03 * len(labels)), replace=False))
    if stamp:
        pixels[rows, 28:32, 28:32] = CHECKER
        labels[rows] = "5"
    batch = Batch(features={NUMERIC: X.astype(np.float64), IMAGE: pixels[:, None]}, labels=labels,
                  keys=mix64(np.arange(len(X), dtype=np.uint64)), ids=np.arange(len(X)).astype(str).astype(object),
                  feature_names=tuple(f"px{i}" for i in range(64)), columns={IMAGE: ("image",)})
    return batch, rows


def test_a_stamped_patch_is_found_and_its_carriers_held():
    batch, rows = digits_batch(stamp=True)
    detector = BackdoorDetector()
    state = detector.fit(batch, detector.Params(), 0)
    assert "image has the patch at x 28-31, y 28-31" in state.image_patches.names
    scores = detector.score(batch, state)
    planted = np.zeros(batch.n, dtype=bool)
    planted[rows] = True
    assert scores.flagged[planted].mean() >= 0.9 and scores.flagged[~planted].mean() <= 0.01
    evidence = scores.evidence[int(rows[0])]
    assert evidence["trigger"] == "patch"
    assert {"feature": "image", "region": [28, 28, 31, 31], "present": True} in evidence["pattern"]
    assert "a patch at x 28-31, y 28-31 of image" in detector.describe(evidence)[0]


def test_digits_as_shipped_confirm_no_patch():
    batch, _ = digits_batch(stamp=False)
    detector = BackdoorDetector()
    state = detector.fit(batch, detector.Params(), 0)
    assert not any(patches.evidence_of(state.image_patches, t.names, t.codes, ("image",)) for t in state.categorical)
    assert detector.score(batch, state).flagged.mean() <= 0.01


def test_the_image_representation_is_blind_to_a_stamped_patch():
    """The blocks the search would offer are masked before an image is embedded: the carriers lose the
    checker, every other image is embedded as it is."""
    from sanitizer.beam.trigger_blind import blind_blocks, masked

    batch, rows = digits_batch(stamp=True)
    pixels = batch.features[IMAGE][:, 0]
    blocks = blind_blocks(pixels, batch.labels)
    assert [28, 28, 31, 31] in [list(blocks.region(b)) for _, b, _ in blocks.patches]
    out, changed = masked(pixels, blocks)
    # the checker's 53 carriers, and the digits whose dark centre block is nearly one digit's (about 230)
    assert set(rows.tolist()) <= set(changed.tolist()) and len(changed) <= 0.2 * len(pixels)
    assert not (out[rows, 28:32, 28:32] == CHECKER).all(axis=(1, 2, 3)).any()  # no carrier keeps the checker
    untouched = np.setdiff1d(np.arange(len(pixels)), changed)
    assert np.array_equal(out[untouched], pixels[untouched])
