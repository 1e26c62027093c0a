"""The report page's stylesheets and scripts: package data under ``sanitizer/report/static/``.

They are read once, with :mod:`importlib.resources` (so they are found in a wheel, a zip or a
source tree alike), and inlined into report.html: the page fetches nothing. Each file starts a
new line of the page (its text follows a line break). The files:

``report.css``, ``neighbours.css``, ``media.css`` (:data:`CSS`)
    the page's own styles, then those of the suspects' "compared with" blocks and of their images and texts.
``review.css`` (``review_assets.REVIEW_CSS``)
    the review bar and the decision cells; see :mod:`sanitizer.report.review_assets`.
``errors.js`` (:data:`ERROR_JS`)
    runs first: anything that goes wrong on the page (a script error, something the content
    security policy blocked) is written into ``#js-errors``, visibly.
``review.js`` (``review_assets.REVIEW_JS``)
    the decision controls; runs before the table's script and offers it ``window.sanitizerReview``.
``table.js`` with ``neighbours.js`` spliced in at its ``/*NEIGHBOURS*/`` line (:data:`TABLE_JS`)
    the suspects table: filter, sort, pages, thumbnails, the view kept in the address.
    ``neighbours.js`` is a fragment of it (it shares ``el``, ``data`` and ``pixels``) that draws
    each suspect beside the reference rows its evidence names: with thumbnails, the suspect and
    each named neighbour at the same size and brightness scale, labelled, the ones carrying the
    suggested label marked; for tabular data a small table of the columns that matter for the
    row, the ones its evidence names first (its value: a number, or a categorical value or date as
    written, cut short on screen with the whole value in its tooltip; the typical values of clean
    rows: a number's or date's 5th-95th percentile range, a categorical column's most frequent
    values; each neighbour's value; see :mod:`sanitizer.report.tabular`).
    Neighbours named in the evidence but not in the output (or past the lookup cap) say so.
    ``media.js``, spliced in right after it, draws an image column's thumbnails (``<img>`` of a data: URI) and a
    text column's snippets, the suspect's in the table and its neighbours' in the same block
    (:mod:`sanitizer.report.media`).

Every value from the data reaches the page through ``textContent`` or a form field's value.
"""

from __future__ import annotations

from importlib.resources import files

MAX_SHOWN = 8  # neighbours drawn per suspect (deduplicated across detectors): __MAX_SHOWN__ in neighbours.js


def static_text(name: str) -> str:
    """The file ``static/<name>`` as inlined into the page: after a line break."""
    return "\n" + files("sanitizer.report").joinpath("static", name).read_text(encoding="utf-8")


CSS = static_text("report.css") + static_text("neighbours.css") + static_text("media.css")
ERROR_JS = static_text("errors.js")
_NEIGHBOURS_JS = static_text("neighbours.js").replace("__MAX_SHOWN__", str(MAX_SHOWN))
TABLE_JS = static_text("table.js").replace("/*NEIGHBOURS*/", _NEIGHBOURS_JS + static_text("media.js"))
