"""The built-in text representation: TF-IDF on words and character n-grams, reduced by a truncated SVD.

A text column is judged through one vector per row. :func:`fit_text` learns, on the run's bounded sample,
one model per cross-fitting fold (:mod:`sanitizer.representations.media`): model ``f`` is fitted on the
sample rows of the *other* folds and embeds every record of fold ``f``, so no record is embedded by a model
that read it. Each model is

* a TF-IDF of word unigrams and bigrams (lowercased; one-letter and two-letter tokens such as "cf" or "mn"
  count; sublinear term frequency; a term must occur in at least two texts; at most ``word_terms`` terms),
* a TF-IDF of character 3- to 5-grams inside word boundaries (catches spelling, other alphabets, gibberish;
  at most ``char_terms`` n-grams),
* both side by side, reduced to ``dim`` directions by a seeded truncated SVD (latent semantic analysis),
  each output row scaled to unit length.

So two texts about the same thing in the same words point the same way (cosine similarity near 1), and a
text unlike anything in the sample (random letters, a language that spells unlike the sample's) points
away from all of them. A related language that shares many character sequences with the sample
("producto", "Produkt" and "product") can land among the sample's texts.

Every text is cut to ``max_chars`` characters before it is read, in fitting and in embedding alike, which
bounds the work per row. A missing (``None``) or empty text embeds as the **zero vector**, as does a text
none of whose words or n-grams occurs in the sample: it carries no content to compare. When the sample has
fewer usable texts or terms than ``dim``, the models use fewer dimensions; :meth:`FittedText.describe`
records both the dimensions asked for and those used.

The fitted state holds the vectorisers' vocabularies, their IDF weights and the SVD directions - never the
sample's texts - so it travels to the workers as a side input. Its size is bounded by the term caps: the
SVD directions (``dim`` x (``word_terms`` + ``char_terms``) float32) dominate, at most about 8 MB per fold
at the defaults.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.representations import media

KIND = "tfidf-svd"
MAX_CHARS = 2_000
WORD_TERMS = 20_000
CHAR_TERMS = 10_000
TOKEN_PATTERN = r"(?u)\b\w+\b"
SIGNALS = ("unknown_words", "unexplained")
"""What :meth:`FittedText.vectors` adds after the SVD directions."""


def _texts(values: np.ndarray, max_chars: int) -> list[str]:
    """Each value cut to ``max_chars``; anything that is not a string (``None``: missing) reads as ""."""
    return [v[:max_chars] if isinstance(v, str) else "" for v in values]


def _vectorisers(word_terms: int, char_terms: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), sublinear_tf=True,
                           min_df=2, max_features=word_terms, dtype=np.float32)
    char = TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                           min_df=2, max_features=char_terms, dtype=np.float32)
    return word, char


def _fit_or_none(vectoriser, texts: list[str]):
    """``(vectoriser, matrix)`` fitted on ``texts``, or ``(None, None)`` when no term occurs in two texts."""
    try:
        return vectoriser, vectoriser.fit_transform(texts)
    except ValueError:  # "empty vocabulary" / "After pruning, no terms remain"
        return None, None


@dataclass
class FoldModel:
    """One fold's model: the vectorisers (either may be absent when it found no terms) and the SVD."""

    word: Any
    char: Any
    svd: Any
    rows: int
    """Sample rows it was fitted on (all from the other folds)."""
    rotation: np.ndarray | None = None
    """Onto model 0's directions (:func:`sanitizer.representations.media.fold_rotations`)."""

    def features(self, texts: list[str]):
        import scipy.sparse as sp

        blocks = [v.transform(texts) for v in (self.word, self.char) if v is not None]
        return sp.hstack(blocks, format="csr")

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit SVD vectors of the texts' TF-IDF features (zero where a text has no known feature)."""
        return self._rotated(_unit(np.asarray(self.svd.transform(self.features(texts)), dtype=np.float32)))

    def _rotated(self, z: np.ndarray) -> np.ndarray:
        return media.rotate(z, self.rotation)

    def vectors(self, texts: list[str]) -> np.ndarray:
        """The unit SVD vectors followed by the :data:`SIGNALS` of each text (see :meth:`FittedText.vectors`)."""
        x = self.features(texts)
        z = np.asarray(self.svd.transform(x), dtype=np.float32)
        total = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        kept = np.linalg.norm(z, axis=1)
        unexplained = np.where(total > 1e-12, 1.0 - np.minimum(kept / np.maximum(total, 1e-12), 1.0), 0.0)
        return np.hstack([self._rotated(_unit(z)), self._unknown(texts)[:, None],
                          unexplained[:, None]]).astype(np.float32)

    def _unknown(self, texts: list[str]) -> np.ndarray:
        """Per text, the share of its words the model's word vocabulary does not hold (0 without words)."""
        out = np.zeros(len(texts), dtype=np.float32)
        if self.word is None:
            return out
        vocabulary, tokenize = self.word.vocabulary_, self.word.build_tokenizer()
        for i, text in enumerate(texts):
            words = tokenize(text.lower())
            if words:
                out[i] = sum(w not in vocabulary for w in words) / len(words)
        return out


def _unit(z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return np.divide(z, norms, out=np.zeros_like(z), where=norms > 1e-12)


@dataclass
class FittedText:
    """A fitted text representation of one column (:class:`sanitizer.representations.media.Fitted`).

    Small and picklable: the vectorisers' vocabularies and IDF weights and the SVD directions, per fold.
    """

    dim: int
    requested_dim: int
    folds: int
    seed: int
    max_chars: int
    models: list[FoldModel]

    def fold(self, keys: np.ndarray) -> np.ndarray:
        """Which model embeds each record: the index into ``models`` of the one fitted without its fold."""
        return media.fold_of(keys, self.folds)

    def _embed_one(self, model: FoldModel, values: np.ndarray) -> np.ndarray:
        return model.embed(_texts(values, self.max_chars))

    def embed(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32 unit vectors (zero for a missing, empty or wholly unseen text), each row by
        the model that did not see its fold. Deterministic."""
        values = np.asarray(values, dtype=object)
        keys = np.asarray(keys)
        if values.shape != keys.shape or values.ndim != 1:
            raise ValueError(f"values and keys must be 1-d and of one length, got {values.shape} and {keys.shape}")
        return media.embed_by_fold(self.models, keys, values, self.dim, self._embed_one)

    @property
    def names(self) -> tuple[str, ...]:
        """The names of :meth:`vectors`' columns: the SVD directions, then :data:`SIGNALS`."""
        return tuple(str(i) for i in range(self.dim)) + SIGNALS

    def vectors(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, dim + 2)`` float32: :meth:`embed`'s unit vectors, then two signals of how foreign each text is
        to the model that reads it: ``unknown_words``, the share of its words outside the model's vocabulary
        (gibberish, another language: near 1), and ``unexplained``, the share of its TF-IDF weight the SVD
        directions cannot express (a text about nothing the sample talks about). A unit vector hides both:
        a text the model barely reads still points somewhere. Zero for a missing or empty text."""
        values = np.asarray(values, dtype=object)
        return media.embed_by_fold(self.models, np.asarray(keys), values, self.dim + len(SIGNALS),
                                   lambda model, v: model.vectors(_texts(v, self.max_chars)))

    def describe(self) -> dict[str, Any]:
        """What was used, for provenance: kind, dimensions (asked for and used), folds, seed, the length
        texts are cut to, and per fold the rows fitted on, the word and character terms kept and the
        share of the TF-IDF variance the ``dim`` directions explain."""
        return {
            "kind": KIND,
            "dim": self.dim,
            "requested_dim": self.requested_dim,
            "folds": self.folds,
            "seed": self.seed,
            "max_chars": self.max_chars,
            "rows": [m.rows for m in self.models],
            "word_terms": [0 if m.word is None else len(m.word.vocabulary_) for m in self.models],
            "char_terms": [0 if m.char is None else len(m.char.vocabulary_) for m in self.models],
            "explained_variance": [round(float(np.nan_to_num(m.svd.explained_variance_ratio_.sum())), 4)
                                   for m in self.models],
            "zero_vector": "a missing or empty text, or one with no word or n-gram seen in the sample",
            "signals": list(SIGNALS),
        }

    def top_terms(self, text: str, fold: int, k: int = 5) -> list[str]:
        """The words of ``text`` with the largest TF-IDF weight in model ``fold``'s word vectoriser (its
        most unusual words that the sample knows), heaviest first, at most ``k``. A word the sample never
        showed twice has no weight and is not listed."""
        if not 0 <= fold < self.folds:
            raise ValueError(f"fold must be in [0, {self.folds}), got {fold}")
        word = self.models[fold].word
        if word is None or not isinstance(text, str) or k <= 0:
            return []
        text = text[: self.max_chars]
        row = word.transform([text]).tocsr()
        weights = dict(zip(row.indices.tolist(), row.data.tolist()))
        vocabulary = word.vocabulary_
        found = {t: weights[vocabulary[t]] for t in set(word.build_analyzer()(text))
                 if " " not in t and vocabulary.get(t) in weights}
        return [t for t, _ in sorted(found.items(), key=lambda item: (-item[1], item[0]))[:k]]


def _svd_seed(seed: int, fold: int) -> int:
    return int(np.random.SeedSequence([int(seed) % (1 << 64), fold]).generate_state(1)[0])


def fit_text(values: np.ndarray, keys: np.ndarray, seed: int, dim: int = 64, folds: int = media.FOLDS, *,
             max_chars: int = MAX_CHARS, word_terms: int = WORD_TERMS, char_terms: int = CHAR_TERMS) -> FittedText:
    """Fit the cross-fitted TF-IDF + SVD representation of a text column on the sample ``values`` (rows of
    records ``keys``): model ``f`` on the rows whose fold is not ``f``. Raises ``ValueError`` when some
    fold's model would find no word or n-gram shared by two texts (the column has too little text)."""
    for name, value, low in (("dim", dim, 1), ("folds", folds, 2), ("max_chars", max_chars, 1),
                             ("word_terms", word_terms, 1), ("char_terms", char_terms, 1)):
        if int(value) < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    values = np.asarray(values, dtype=object)
    keys = np.asarray(keys)
    if values.shape != keys.shape or values.ndim != 1:
        raise ValueError(f"values and keys must be 1-d and of one length, got {values.shape} and {keys.shape}")
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD

    texts = _texts(values, max_chars)
    fold = media.fold_of(keys, folds)
    fitted = []  # (word, char, matrix, rows, usable directions) per fold
    for f in range(folds):
        train = [texts[i] for i in np.flatnonzero(fold != f)]
        word_vectoriser, char_vectoriser = _vectorisers(word_terms, char_terms)
        word, xw = _fit_or_none(word_vectoriser, train)
        char, xc = _fit_or_none(char_vectoriser, train)
        blocks = [x for x in (xw, xc) if x is not None]
        matrix = sp.hstack(blocks, format="csr") if blocks else None
        # a truncated SVD finds fewer directions than both the texts with terms and the terms
        usable = 0 if matrix is None else min(int(np.count_nonzero(matrix.getnnz(axis=1))), matrix.shape[1])
        if usable < 2:
            raise ValueError(
                f"the text column has too little text to represent: the {len(train)} sample rows outside "
                f"fold {f} share too few words or 3-letter sequences (each must occur in two texts)")
        fitted.append((word, char, matrix, len(train), usable))
    directions = min([int(dim)] + [usable - 1 for *_, usable in fitted])
    models = []
    for f, (word, char, matrix, rows, _) in enumerate(fitted):
        svd = TruncatedSVD(n_components=directions, algorithm="randomized", random_state=_svd_seed(seed, f))
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # a variance ratio of texts that barely vary
            models.append(FoldModel(word, char, svd.fit(matrix), rows))
    anchor = [texts[i] for i in media.anchors(keys)]
    for model, rotation in zip(models, media.fold_rotations(lambda f, v: models[f].embed(v), folds, anchor)):
        model.rotation = rotation
    return FittedText(dim=directions, requested_dim=int(dim), folds=int(folds), seed=int(seed),
                      max_chars=int(max_chars), models=models)
