"""The run record: what one run read, decided, wrote and measured, as typed fields.

``provenance.json`` is its JSON form (:meth:`RunRecord.to_dict` writes it,
:meth:`RunRecord.from_dict` and :func:`load` read it back). The pipeline's
scoring stage emits one :class:`Counts` per bundle; they are summed with
:meth:`Counts.total` and the publishing stage builds the :class:`RunRecord`.
The summary a run prints, the report, lineage and the review loop read these fields instead of
indexing a dict, so a renamed or missing key is an error in one place, not a silent zero in five.

Beam-free and import-light: the training image and the report read it too. Reading is tolerant: a
provenance.json written by an older release, or with keys this release does not know, loads (missing
counts read as zero, unknown keys are kept and written back unchanged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Iterable

from sanitizer.runs.level_counts import add_levels
from sanitizer.runs.score_histogram import ScoreHistogram
from sanitizer.data.layout import PROVENANCE
from sanitizer.io import fs
from sanitizer.schemas import VERSION


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, n in b.items():
        out[key] = out.get(key, 0) + int(n)
    return out


def _ints(d: dict | None) -> dict[str, int]:
    return {str(k): int(v) for k, v in (d or {}).items()}


# --------------------------------------------------------------------------- counts


@dataclass
class DetectorCounts:
    """Rows one detector scored and flagged, and what its flags do (``quarantine`` or ``report``)."""

    scored: int = 0
    flagged: int = 0
    action: str = "quarantine"
    histogram: ScoreHistogram | None = None  # every scored row's score, in the detector's fixed bins

    def __add__(self, other: "DetectorCounts") -> "DetectorCounts":
        histogram = self.histogram + other.histogram if self.histogram and other.histogram \
            else self.histogram or other.histogram
        return DetectorCounts(self.scored + other.scored, self.flagged + other.flagged, self.action, histogram)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scored": self.scored, "flagged": self.flagged, "action": self.action}
        if self.histogram is not None:
            out["histogram"] = self.histogram.to_dict()
        return out

    @classmethod
    def from_dict(cls, c: dict) -> "DetectorCounts":
        return cls(int(c.get("scored", 0)), int(c.get("flagged", 0)), str(c.get("action", "quarantine")),
                   ScoreHistogram.from_dict(c.get("histogram")))


@dataclass
class ReviewCounts:
    """How the reviewers' decisions (``--decisions``) were applied to this run's rows."""

    released_seen: int = 0
    released_kept_clean: int = 0
    released_overridden: int = 0
    overridden_flags: dict[str, int] = field(default_factory=dict)
    confirmed_held: int = 0
    confirmed_held_unflagged: int = 0
    stale: int = 0  # decided for other content (or unbound): not applied
    stale_unbound: int = 0

    def __add__(self, other: "ReviewCounts") -> "ReviewCounts":
        values = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = _add(a, b) if isinstance(a, dict) else a + b
        return ReviewCounts(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "ReviewCounts":
        known = {f.name for f in fields(cls)}
        values = {k: (_ints(v) if k == "overridden_flags" else int(v)) for k, v in d.items() if k in known}
        return cls(**values)


@dataclass
class Counts:
    """Row counts of a run (or of one scored batch): in, clean, quarantined, and why.

    ``by_reason`` counts rows per reason code (a row with two reasons counts
    under both); ``class_rows`` / ``class_quarantined`` count rows per label.
    """

    rows_in: int = 0
    clean: int = 0
    quarantined: int = 0
    invalid: int = 0
    reported_kept_clean: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_detector: dict[str, DetectorCounts] = field(default_factory=dict)
    class_rows: dict[str, int] = field(default_factory=dict)
    class_quarantined: dict[str, int] = field(default_factory=dict)
    review: ReviewCounts | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Seconds the scoring stage spent per part (row checks, each detector, the split), summed over batches
    and workers; the record keeps them in ``timings.scoring_s``, not in ``counts``."""
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    """Clean rows per value of each categorical column (sanitizer.runs.level_counts): the vocabularies."""

    def __add__(self, other: "Counts") -> "Counts":
        by_detector = dict(self.by_detector)
        for name, c in other.by_detector.items():
            by_detector[name] = by_detector[name] + c if name in by_detector else c
        if self.review is None or other.review is None:
            review = self.review or other.review
        else:
            review = self.review + other.review
        return Counts(
            rows_in=self.rows_in + other.rows_in,
            clean=self.clean + other.clean,
            quarantined=self.quarantined + other.quarantined,
            invalid=self.invalid + other.invalid,
            reported_kept_clean=self.reported_kept_clean + other.reported_kept_clean,
            by_reason=_add(self.by_reason, other.by_reason),
            by_detector=by_detector,
            class_rows=_add(self.class_rows, other.class_rows),
            class_quarantined=_add(self.class_quarantined, other.class_quarantined),
            review=review,
            levels=add_levels(self.levels, other.levels),
            seconds={k: self.seconds.get(k, 0.0) + other.seconds.get(k, 0.0)
                     for k in dict.fromkeys([*self.seconds, *other.seconds])},
        )

    @staticmethod
    def total(parts: Iterable["Counts"]) -> "Counts":
        """The sum of ``parts`` (a CombineGlobally function; no parts -> all zero)."""
        out = Counts()
        for part in parts:
            out = out + part
        return out

    def rows_failing(self, prefix: str) -> dict[str, int]:
        """``by_reason`` restricted to codes starting with ``prefix`` (``validation:``, ``invalid:``)."""
        return {code: n for code, n in self.by_reason.items() if code.startswith(prefix)}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows_in": self.rows_in,
            "clean": self.clean,
            "quarantined": self.quarantined,
            "invalid": self.invalid,
            "reported_kept_clean": self.reported_kept_clean,
            "by_reason": dict(self.by_reason),
            "by_detector": {name: c.to_dict() for name, c in self.by_detector.items()},
            "by_class": {"rows": dict(self.class_rows), "quarantined": dict(self.class_quarantined)},
        }
        if self.review is not None:
            out["review"] = self.review.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict | None) -> "Counts":
        d = d or {}
        by_class = d.get("by_class") or {}
        return cls(
            rows_in=int(d.get("rows_in", 0) or 0),
            clean=int(d.get("clean", 0) or 0),
            quarantined=int(d.get("quarantined", 0) or 0),
            invalid=int(d.get("invalid", 0) or 0),
            reported_kept_clean=int(d.get("reported_kept_clean", 0) or 0),
            by_reason=_ints(d.get("by_reason")),
            by_detector={str(name): DetectorCounts.from_dict(c) for name, c in (d.get("by_detector") or {}).items()},
            class_rows=_ints(by_class.get("rows")),
            class_quarantined=_ints(by_class.get("quarantined")),
            review=ReviewCounts.from_dict(d["review"]) if d.get("review") else None,
        )


# --------------------------------------------------------------------------- the run


@dataclass
class Accounting:
    """The proof publication rests on: input rows = clean rows + quarantined rows, and no other problem."""

    input_rows: int = 0
    clean_rows: int = 0
    quarantined_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"input_rows": self.input_rows, "clean_rows": self.clean_rows,
                "quarantined_rows": self.quarantined_rows, "holds": self.holds, "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Accounting":
        d = d or {}
        problems = [str(p) for p in d.get("problems") or []]
        if d.get("holds") is False and not problems:
            problems = ["the accounting did not hold (no reason recorded)"]
        return cls(int(d.get("input_rows", 0) or 0), int(d.get("clean_rows", 0) or 0),
                   int(d.get("quarantined_rows", 0) or 0), problems)


@dataclass
class Shard:
    """One written Parquet shard: path (relative to the output folder in the record), rows, bytes, sha256."""

    path: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict) -> "Shard":
        return cls(str(d.get("path", "")), int(d.get("rows", 0) or 0), int(d.get("bytes", 0) or 0),
                   str(d.get("sha256", "")))


@dataclass
class Columns:
    """The column roles the run used."""

    label: str = ""
    id: str = ""
    id_generated: bool = False
    features: list[str] = field(default_factory=list)
    feature_count: int = 0
    ignored: list[dict[str, str]] = field(default_factory=list)
    """Every input column the detectors did not judge: {"name", "reason", "detail"} (sanitizer.data.column_roles)."""
    id_inferred: bool = False
    """The id is an id-like input column the run chose because none was given."""
    kinds: list[dict[str, Any]] = field(default_factory=list)
    """Every input column's kind, in input order (sanitizer.data.column_kinds.ColumnKind.to_dict); empty in
    provenance written before kinds existed."""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "id": self.id, "id_generated": self.id_generated,
                "id_inferred": self.id_inferred, "features": list(self.features),
                "feature_count": self.feature_count, "ignored": [dict(c) for c in self.ignored],
                "kinds": [dict(k) for k in self.kinds]}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Columns":
        d = d or {}
        ignored = [{k: str(c.get(k, "")) for k in ("name", "reason", "detail")}
                   for c in d.get("ignored") or [] if isinstance(c, dict)]
        return cls(str(d.get("label", "") or ""), str(d.get("id", "") or ""), bool(d.get("id_generated", False)),
                   [str(f) for f in d.get("features") or []], int(d.get("feature_count", 0) or 0),
                   ignored, bool(d.get("id_inferred", False)),
                   [dict(k) for k in d.get("kinds") or [] if isinstance(k, dict)])


@dataclass
class Timings:
    """Seconds spent planning, in the pipeline, publishing, and in all (construction to manifest), and
    where the work went: ``fit_s`` per detector (the fit stage, on the sample) and ``scoring_s`` per part
    of the scoring stage (row checks, each detector, the split into clean and quarantine), summed over
    batches and workers - so they can add up to more than the wall time when workers run side by side."""

    plan_s: float | None = None
    pipeline_s: float | None = None
    finalize_s: float | None = None
    total_s: float | None = None
    fit_s: dict[str, float] = field(default_factory=dict)
    scoring_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                               if getattr(self, f.name) is not None and not isinstance(getattr(self, f.name), dict)}
        if self.fit_s:
            out["fit_s"] = {k: round(v, 3) for k, v in self.fit_s.items()}
        if self.scoring_s:
            out["scoring_s"] = {k: round(v, 3) for k, v in self.scoring_s.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict | None) -> "Timings":
        d = d or {}
        scalars = {f.name: float(d[f.name]) for f in fields(cls)
                   if f.name not in ("fit_s", "scoring_s") and d.get(f.name) is not None}
        return cls(**scalars, fit_s={str(k): float(v) for k, v in (d.get("fit_s") or {}).items()},
                   scoring_s={str(k): float(v) for k, v in (d.get("scoring_s") or {}).items()})


@dataclass
class RunRecord:
    """One run, as provenance.json records it (the module docstring says who reads it).

    ``detectors`` holds each detector's fit summary (``status`` is ``fitted`` or
    ``skipped``; the rest is the detector's own: thresholds, calibration, what it
    skipped and why); ``validation`` and ``decisions`` are the Great
    Expectations and review-decision records, or None when the run had none.
    """

    run_id: str
    status: str  # "succeeded" or "failed"
    started_at: str
    finished_at: str
    seed: int
    runner: str
    pipeline_options: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    skipped_inputs: list[dict[str, Any]] = field(default_factory=list)  # files under the input not read, and why
    columns: Columns = field(default_factory=Columns)
    warnings: list[str] = field(default_factory=list)
    sample: dict[str, Any] = field(default_factory=dict)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    validation: dict[str, Any] | None = None
    decisions: dict[str, Any] | None = None
    guard: dict[str, Any] | None = None  # the run-level guard's reading (sanitizer.runs.guard.verdict)
    accounting: Accounting = field(default_factory=Accounting)
    clean: list[Shard] = field(default_factory=list)
    quarantine: list[Shard] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this release does not know, kept as read

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def guard_tripped(self) -> bool:
        return bool((self.guard or {}).get("tripped"))

    def skipped_detectors(self) -> dict[str, str]:
        """Detectors that did not run: name -> why."""
        return {name: str(info.get("reason", "")) for name, info in self.detectors.items()
                if info.get("status") == "skipped"}

    def failed_checks(self) -> list[dict[str, Any]]:
        """The data-set-level expectations that failed (empty without a suite)."""
        return [c for c in (self.validation or {}).get("checks") or [] if not c.get("success")]

    def to_dict(self) -> dict[str, Any]:
        """The provenance.json content."""
        out = dict(self.extra)
        out.update({
            "schema_version": VERSION,  # sanitizer/schemas/provenance-1.schema.json
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seed": self.seed,
            "runner": self.runner,
            "pipeline_options": list(self.pipeline_options),
            "versions": dict(self.versions),
            "config": self.config,
            "inputs": self.inputs,
            "skipped_inputs": self.skipped_inputs,
            "columns": self.columns.to_dict(),
            "warnings": list(self.warnings),
            "sample": self.sample,
            "detectors": self.detectors,
            "counts": self.counts.to_dict(),
            "validation": self.validation,
            "decisions": self.decisions,
            "guard": self.guard,
            "accounting": self.accounting.to_dict(),
            "outputs": {"clean": [s.to_dict() for s in self.clean],
                        "quarantine": [s.to_dict() for s in self.quarantine]},
            "timings": self.timings.to_dict(),
        })
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        if not isinstance(d, dict):
            raise ValueError(f"a run record is a JSON object, not {type(d).__name__}")
        outputs = d.get("outputs") or {}
        known = {f.name for f in fields(cls)} | {"outputs", "schema_version"}
        return cls(
            run_id=str(d.get("run_id", "") or ""),
            status=str(d.get("status", "") or ""),
            started_at=str(d.get("started_at", "") or ""),
            finished_at=str(d.get("finished_at", "") or ""),
            seed=int(d.get("seed", 0) or 0),
            runner=str(d.get("runner", "") or ""),
            pipeline_options=[str(o) for o in d.get("pipeline_options") or []],
            versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
            config=dict(d.get("config") or {}),
            inputs=[dict(i) for i in d.get("inputs") or []],
            skipped_inputs=[dict(i) for i in d.get("skipped_inputs") or []],
            columns=Columns.from_dict(d.get("columns")),
            warnings=[str(w) for w in d.get("warnings") or []],
            sample=dict(d.get("sample") or {}),
            detectors={str(k): dict(v) for k, v in (d.get("detectors") or {}).items()},
            counts=Counts.from_dict(d.get("counts")),
            validation=d.get("validation"),
            decisions=d.get("decisions"),
            guard=d.get("guard") if isinstance(d.get("guard"), dict) else None,
            accounting=Accounting.from_dict(d.get("accounting")),
            clean=[Shard.from_dict(s) for s in outputs.get("clean") or []],
            quarantine=[Shard.from_dict(s) for s in outputs.get("quarantine") or []],
            timings=Timings.from_dict(d.get("timings")),
            extra={k: v for k, v in d.items() if k not in known},
        )

    @classmethod
    def coerce(cls, value: "RunRecord | dict[str, Any]") -> "RunRecord":
        """A record from a record or its provenance dict (the report and summary take either)."""
        return value if isinstance(value, cls) else cls.from_dict(value)


def load(out: str) -> RunRecord:
    """Read ``OUT/provenance.json`` (local, gs:// or s3://) as a record."""
    return RunRecord.from_dict(json.loads(fs.read_bytes(f"{out.rstrip('/')}/{PROVENANCE}")))
