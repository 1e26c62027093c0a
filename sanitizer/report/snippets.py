"""The report's text snippets: each suspect's text and its neighbours', with the words worth a look marked.

The page stores each distinct text once (at most :data:`MAX_TEXT_CHARS` characters, longer ones end in
"…"; past :data:`TEXT_BUDGET_CHARS` for the page, the lowest-priority texts keep only their first
:data:`SNIPPET_CHARS`). It shows a snippet of about :data:`SNIPPET_CHARS` characters (around the first
marked word when that lies further in) with the stored text in its tooltip and, when longer, in an
expandable "full text" element; all of it as text, never as markup.

Which words are marked (``hl`` on a suspect, lowercased ``\\w+`` words):

- the words its evidence names as a text trigger (``trigger_token`` / ``tokens``, see
  :func:`sanitizer.report.evidence.trigger_words`; ``hw``), in its text and in its neighbours';
- its unusual words: the report holds no fitted model, so "unusual" is measured on the texts the page
  shows (the suspects and their neighbours): up to :data:`MARKED_WORDS` of its words of at least three
  characters, not all digits, that occur in no more than :data:`RARE_SHARE` of those texts (or in no more
  than two, when that is more), the rarest first, then the longest; only when the page shows at least :data:`MIN_TEXTS`
  texts (among fewer, every word is rare).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

MAX_TEXT_CHARS = 2000
SNIPPET_CHARS = 280  # characters shown before "…" (the page's script cuts the snippet: media.snippet)
TEXT_BUDGET_CHARS = 3_000_000  # characters of all stored texts of one page
MARKED_WORDS = 5
RARE_SHARE = 0.02
MIN_TEXTS = 10
_WORD = re.compile(r"\w+", re.UNICODE)


def as_text(value: Any) -> str | None:
    """A text value as stored for the page: at most MAX_TEXT_CHARS characters; None when missing."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def words(text: str) -> list[str]:
    """The lowercased words of ``text``, in order."""
    return [w.lower() for w in _WORD.findall(text)]


def unusual_words(text: str, counts: Counter, shown: int) -> list[str]:
    """Up to MARKED_WORDS words of ``text`` that few of the ``shown`` texts hold (``counts``: word -> texts)."""
    if shown < MIN_TEXTS:
        return []
    limit = max(2, int(RARE_SHARE * shown))
    own = [w for w in dict.fromkeys(words(text)) if len(w) >= 3 and not w.isdigit() and counts[w] <= limit]
    return sorted(own, key=lambda w: (counts[w], -len(w)))[:MARKED_WORDS]


def attach(entries: list[dict], texts: list[str | None], rows: list[dict]) -> list[str]:
    """Give each entry (a suspect or a reference, in priority order) ``tx`` (the index of its text in the
    returned list; none when missing) and each of ``rows`` (the suspects) ``hl``; return the distinct texts."""
    pool: list[str] = []
    index: dict[str, int] = {}
    used = 0
    for entry, text in zip(entries, texts):
        if text is None:
            continue
        if used + len(text) > TEXT_BUDGET_CHARS and len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS] + "…"
        if text not in index:
            index[text] = len(pool)
            pool.append(text)
            used += len(text)
        entry["tx"] = index[text]
    counts: Counter = Counter()
    for text in pool:
        counts.update(set(words(text)))
    for row in rows:
        if "tx" in row:
            marked = unusual_words(pool[row["tx"]], counts, len(pool))
            if marked:
                row["hl"] = marked
    return pool
