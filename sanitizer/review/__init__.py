"""Human review of quarantined records: decisions, and publishing them. Imported only by cli/; it reads
what runs/ and data/ define (decision records, the content hash, the output layout).

A reviewer looks at what a run quarantined (``sanitize review OUT list|show``)
and decides, record by record, to **release** it (a false alarm: it belongs in
the clean set) or to **confirm** it (it stays quarantined, whatever the
detectors say next time), with ``sanitize review OUT release|confirm`` or in
report.html, whose "Download decisions" file ``sanitize review OUT import FILE``
takes in; ``sanitize publish OUT`` turns the decisions into a new manifest, and
``sanitize run --decisions`` carries them into a new run.

The package, one job per module (each imports only the ones above it):

- :mod:`sanitizer.runs.decisions`: the decisions files (format, reading,
  writing a batch), record content hashes and the binding of a decision to
  them; all a run needs (``sanitize run --decisions``);
- :mod:`sanitizer.review.output`: a published run read for review (manifest,
  quarantined records, filters) and recording ``release``/``confirm`` on it;
- :mod:`sanitizer.review.importing`: ``sanitize review OUT import FILE``, a decisions file (report.html's
  "Download decisions") checked line by line and taken into OUT's decisions;
- :mod:`sanitizer.review.lock`: the output lock a publish holds (one run or publish per output);
- :mod:`sanitizer.review.publish`: ``sanitize publish``;
- :mod:`sanitizer.cli.review`: the ``sanitize review`` and ``sanitize publish``
  commands (not imported here).

File access (local paths, or any Beam filesystem for ``scheme://`` URIs) is
:mod:`sanitizer.io.fs`. The names below are the package's API, importable as
``from sanitizer.review import ...`` whichever module defines them.
"""

from sanitizer.errors import ConfigError, IntegrityError, SanitizerError
from sanitizer.io.fs import exists, read_bytes
from sanitizer.data.batch import id_strings
from sanitizer.data.content_hash import content_columns, content_sha256
from sanitizer.runs.decisions import (
    CONFIRM,
    CONFIRMED_CODE,
    CONTENT_FIELD,
    DECISION_KINDS,
    DECISIONS_DIR,
    DECISIONS_FILE,
    RELEASE,
    REQUIRED_FIELDS,
    REVIEW_DETECTOR,
    ROW_CHECK_DETECTOR,
    Matched,
    ReviewDecisions,
    ReviewError,
    binding,
    decision_sources,
    decisions_dir,
    decisions_path,
    default_reviewer,
    load_decisions,
    load_output_decisions,
    parse_decisions,
    provenance_entry,
    utc_now,
)
from sanitizer.data.layout import CODES_COLUMN, CONTENT_COLUMN, REASONS_COLUMN, REVIEW_DIR, SCORE_PREFIX
from sanitizer.review.importing import ImportResult, import_decisions
from sanitizer.review.lock import LOCK_FILE, publish_lock
from sanitizer.review.output import (
    STATUSES,
    Output,
    QuarantinedRecord,
    applied_decisions,
    code_matches,
    filter_records,
    find_record,
    natural_key,
    open_output,
    parse_reasons,
    quarantine_content,
    quarantined_records,
    read_quarantine,
    record_decisions,
    relative_to_out,
)
from sanitizer.review.publish import PUBLICATION_RECORD, RELEASED_SHARD, SUPERSEDED_MANIFEST, publication_id, publish

__all__ = [
    "CODES_COLUMN", "CONFIRM", "CONFIRMED_CODE", "CONTENT_COLUMN", "CONTENT_FIELD", "DECISION_KINDS",
    "DECISIONS_DIR", "DECISIONS_FILE", "LOCK_FILE", "PUBLICATION_RECORD", "REASONS_COLUMN", "RELEASE",
    "RELEASED_SHARD", "REQUIRED_FIELDS", "REVIEW_DETECTOR", "REVIEW_DIR", "ROW_CHECK_DETECTOR", "SCORE_PREFIX",
    "STATUSES", "SUPERSEDED_MANIFEST",
    "ConfigError", "ImportResult", "IntegrityError", "Matched", "Output", "QuarantinedRecord", "ReviewDecisions",
    "ReviewError", "SanitizerError",
    "applied_decisions", "binding", "code_matches", "content_columns", "content_sha256", "decision_sources",
    "decisions_dir", "decisions_path", "default_reviewer", "exists", "filter_records", "find_record", "id_strings",
    "import_decisions",
    "load_decisions", "load_output_decisions", "natural_key", "open_output", "parse_decisions", "parse_reasons",
    "provenance_entry", "publication_id", "publish", "publish_lock", "quarantine_content", "quarantined_records",
    "read_bytes", "read_quarantine", "record_decisions", "relative_to_out", "utc_now",
]
