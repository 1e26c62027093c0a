"""The review controls of report.html: decide in the page, keep the decisions, download them.

``REVIEW_JS`` (``static/review.js``) runs before the suspects table's script and offers it
``window.sanitizerReview`` (a decision cell per row, a filter, the current row); the table calls
``attach`` with its own small API. Decisions are bound to the content hash the quarantine stored
for each row (``sha``), kept in ``localStorage`` under the run id (a reload keeps them; "Clear
decisions" forgets them), and downloaded as the JSON Lines that ``sanitize review OUT import FILE``
takes: one ``{"id", "decision", "reason", "reviewer", "time", "run_id", "content_sha256"}`` per line.
Every value from the data reaches the page through ``textContent`` or a form field's value.
``REVIEW_CSS`` (``static/review.css``) styles the review bar and the decision cells.
"""

from sanitizer.report.assets import static_text

REVIEW_CSS = static_text("review.css")
REVIEW_JS = static_text("review.js")
