"""Scores -> verdict + reasons.

A row is quarantined when it failed a row check (``invalid:*``: always) or when
a detector whose policy action is ``quarantine`` flagged it. A detector whose
action is ``report`` only annotates: its flags are counted in provenance and the
row stays clean. A row-level expectation whose Great Expectations ``severity`` is
warning or info works the same way: its failing rows carry the reason with action
``report``, are counted, and stay clean (and the detectors judge them).

Review decisions (``sanitize run --decisions``, see :mod:`sanitizer.review`)
come last: a released record stays clean even when a detector flags it (its
flags are kept as *overridden*), unless it failed a row check; a confirmed
record is quarantined with reason ``review:confirmed`` whatever the detectors
said. A decision applies only while the record holds the content it was made
for (its content hash); otherwise it is stale and the row is decided as if no
decision existed.

Every quarantined row carries machine-readable reasons: a JSON list of
``{"detector", "code", "score", "threshold", "evidence"}`` objects, plus the
plain list of reason codes for filtering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sanitizer.detectors.base import Scores
from sanitizer.data.batch import RowChecks, report_only


@dataclass
class Decision:
    quarantine: np.ndarray  # (n_rows,) bool
    reasons: dict[int, list[dict]]  # row -> reasons (quarantined or reported rows)
    reported: np.ndarray  # (n_rows,) bool: flagged by a report-only detector, kept clean
    scores: dict[str, np.ndarray]  # detector -> (n_rows,) float64, NaN where not scored
    released: np.ndarray | None = None  # (n_rows,) bool: released by review (only with decisions)
    overridden: np.ndarray | None = None  # released rows a quarantining detector flagged, kept clean
    confirmed: np.ndarray | None = None  # confirmed by review: quarantined
    held_by_review: np.ndarray | None = None  # confirmed rows nothing else would have quarantined
    stale: np.ndarray | None = None  # a decision on the id, made for other content (or unbound): not applied
    unbound: np.ndarray | None = None  # stale rows whose decision carries no content hash


def _clean_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def decide(n_rows: int, checks: RowChecks, results: dict[str, Scores], actions: dict[str, str],
           review=None, ids: np.ndarray | None = None, content=None) -> Decision:
    """``checks``: what the row checks found (:attr:`sanitizer.data.batch.Batch.checks`); ``results``:
    each detector's scores of the valid rows; ``review``: a sanitizer.review.ReviewDecisions; ``ids``:
    every row's id string (needed with it); ``content``: each row's sanitizer.data.content_hash.content_sha256 (None where not computed; needed for the rows
    with a decision). A decision applies only to the content it was made for; the others are ``stale``."""
    quarantine = ~checks.valid.copy()
    reported = np.zeros(n_rows, dtype=bool)
    reasons: dict[int, list[dict]] = {}

    for code, mask, evidence in checks.issues:
        only_report = report_only(evidence)  # a missing optional value, a non-critical row-level expectation
        if only_report:
            reported |= mask
        for i in np.flatnonzero(mask):
            reasons.setdefault(int(i), []).append(
                {"detector": "validation", "code": code, "score": None, "threshold": None, "evidence": evidence,
                 **({"action": "report"} if only_report else {})}
            )
    for i, entries in checks.per_row_issues.items():
        for e in entries:
            evidence = {k: v for k, v in e.items() if k != "code"}
            reasons.setdefault(int(i), []).append(
                {"detector": "validation", "code": e["code"], "score": None, "threshold": None, "evidence": evidence}
            )

    valid_rows = np.flatnonzero(checks.valid)
    scores: dict[str, np.ndarray] = {}
    for name, result in results.items():
        full = np.full(n_rows, np.nan)
        full[valid_rows] = result.score
        scores[name] = full
        flagged_rows = valid_rows[result.flagged]
        if actions.get(name, "quarantine") == "quarantine":
            quarantine[flagged_rows] = True
        else:
            reported[flagged_rows] = True
        for local in np.flatnonzero(result.flagged):
            row = int(valid_rows[local])
            reasons.setdefault(row, []).append(
                {
                    "detector": name,
                    "code": (result.codes or {}).get(int(local), name),
                    "action": actions.get(name, "quarantine"),
                    "score": _clean_number(result.score[local]),
                    "threshold": _clean_number(
                        result.thresholds[local] if result.thresholds is not None else result.threshold
                    ),
                    "evidence": result.evidence.get(int(local), {}),
                }
            )
    if review is None or ids is None:
        reported &= ~quarantine
        return Decision(quarantine, reasons, reported, scores)

    matched = review.lookup(ids, content)
    released, confirmed = matched.released, matched.confirmed
    released &= checks.valid  # a release overrides detectors, never a failed row check
    overridden = released & quarantine
    held_by_review = confirmed & ~quarantine
    quarantine &= ~released
    for i in np.flatnonzero(confirmed):
        reasons.setdefault(int(i), []).append(review.confirmed_reason(ids[i]))
    quarantine |= confirmed
    reported &= ~quarantine
    return Decision(quarantine, reasons, reported, scores, released, overridden, confirmed, held_by_review,
                    matched.stale, matched.unbound)
