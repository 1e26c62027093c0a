"""``duplicates``: exact copies, label conflicts, near copies and copies of holdout records.

The verdicts come from a stage that sees every record (:mod:`sanitizer.beam.duplicates`); the detector looks
each batch's records up in them."""

from sanitizer.detectors.duplicates.detector import DuplicatesDetector

__all__ = ["DuplicatesDetector"]
