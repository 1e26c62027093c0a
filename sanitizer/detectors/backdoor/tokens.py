"""``backdoor``'s text triggers: a rare word or token ("cf", "mn", "bb") inserted into texts of other classes,
which are then relabelled to one target class (Kurita et al. 2020; BadNL).

A text column's words become candidate patterns for the categorical trigger search
(:mod:`sanitizer.detectors.backdoor.categorical`): each chosen word is one more two-level column, "the
text contains this word" or not, and the search confirms it as a trigger the same way - its rows are
nearly one label while their content (the other words, through the text's representation, and every
other column) says other classes. Only words that could be triggers are offered: words held by at least
``min_group`` and at most ``max_pattern_share`` of the sample's texts whose rows are at least
``min_pattern_purity`` one label, the ``MAX_WORDS`` least likely by chance (binomial tail of the label
count at the label's share of the sample) first. Words are lowercased ``\\w+`` runs, so a one- or
two-letter token counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

MAX_WORDS = 8
"""Words offered to the trigger search per fit (they join its bounded set of columns)."""
PRESENT, ABSENT = 1, 2
"""The codes of the two levels of a word's column."""
_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text) -> set[str]:
    return set(_WORD.findall(text.lower())) if isinstance(text, str) else set()


@dataclass(frozen=True)
class TokenColumns:
    """The words offered as two-level columns: ``words[i]`` = (text column index, word)."""

    words: tuple[tuple[int, str], ...]
    names: tuple[str, ...]  # "review contains 'cf'"

    def codes(self, texts: np.ndarray) -> np.ndarray:
        """(n, len(words)) int32: PRESENT where the row's text holds the word, ABSENT elsewhere."""
        out = np.full((len(texts), len(self.words)), ABSENT, dtype=np.int32)
        if not self.words:
            return out
        by_column: dict[int, list[tuple[int, str]]] = {}
        for i, (j, word) in enumerate(self.words):
            by_column.setdefault(j, []).append((i, word))
        for j, wanted in by_column.items():
            for r, text in enumerate(texts[:, j]):
                found = _words(text)
                for i, word in wanted:
                    if word in found:
                        out[r, i] = PRESENT
        return out

    def word_of(self, name: str) -> tuple[int, str] | None:
        """The (text column, word) of one of :attr:`names`, or None for another column's name."""
        return self.words[self.names.index(name)] if name in self.names else None


def choose_words(texts: np.ndarray, columns: tuple[str, ...], y: np.ndarray, C: int, params) -> TokenColumns:
    """The words of the sample's texts (``texts`` (n, k), named ``columns``) to offer as trigger candidates."""
    n = len(y)
    if n == 0 or texts.shape[1] == 0:
        return TokenColumns((), ())
    base = np.bincount(y, minlength=C) / n
    lo, hi = max(params.min_group, 5), params.max_pattern_share * n
    scored = []
    for j in range(texts.shape[1]):
        rows_of: dict[str, list[int]] = {}
        for r, text in enumerate(texts[:, j]):
            for word in _words(text):
                rows_of.setdefault(word, []).append(r)
        for word, rows in rows_of.items():
            m = len(rows)
            if m < lo or m > hi:
                continue
            counts = np.bincount(y[rows], minlength=C)
            t = int(counts.argmax())
            purity = counts[t] / m
            if purity < params.min_pattern_purity or purity < 0.5 * (1.0 + base[t]):
                continue
            scored.append((_log_tail(int(counts[t]), m, float(base[t])), j, word))
    scored.sort()
    words = tuple((j, word) for _, j, word in scored[:MAX_WORDS])
    return TokenColumns(words, tuple(f"{columns[j]} contains '{word}'" for j, word in words))


def _log_tail(k: int, m: int, p: float) -> float:
    """log P(X >= k) for X ~ Binomial(m, p), by the Chernoff bound (enough to rank candidates)."""
    q = k / m
    if q <= p or p <= 0.0:
        return 0.0
    if q >= 1.0:
        return m * math.log(p)
    return -m * (q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)))


def with_columns(K: np.ndarray | None, values: np.ndarray | None, offered) -> np.ndarray | None:
    """The categorical codes ``K`` with the columns of ``offered`` (:class:`TokenColumns`, or the image
    blocks of :mod:`sanitizer.detectors.backdoor.patches`) first, coded from ``values`` (None when there is
    neither)."""
    if not offered.names:
        return K
    codes = offered.codes(values)
    return codes if K is None else np.ascontiguousarray(np.hstack([codes, K]))


def evidence_of(tokens: TokenColumns, names: tuple[str, ...], codes, columns: tuple[str, ...]) -> dict | None:
    """A carrier's evidence for a trigger made only of words (``codes``: each word's level in the pattern;
    ``columns``: the text columns' names): the columns, the words and whether each is present; None for
    any other trigger."""
    found = [tokens.word_of(name) for name in names]
    if not found or any(f is None for f in found):
        return None
    return {"trigger": "token", "pattern": [{"feature": columns[j], "token": word, "present": int(code) == PRESENT}
                                            for (j, word), code in zip(found, codes)]}
