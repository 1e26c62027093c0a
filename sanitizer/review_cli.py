"""Kept for ``sanitizer.cli`` and older imports: the review commands live in :mod:`sanitizer.review.cli`."""

from sanitizer.review.cli import add_parsers, printable, run_publish, run_review  # noqa: F401
