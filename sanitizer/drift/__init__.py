"""Drift between a trusted baseline and new data: per-column profiles built in one pass and merged
(profile), the distances between two profiles (statistics), what those distances reach by chance for the
samples' sizes (thresholds), the configuration (config), text and image columns through their
representation vectors (vectors) and the report with its verdict (verdict). Pure numpy, pyarrow and
scipy; may import data/ and representations/, never Beam, io/, detectors/, runs/ or review/."""

from sanitizer.drift.config import ColumnDrift, DriftConfig
from sanitizer.drift.profile import Profile, build_profile, merge_profiles
from sanitizer.drift.verdict import drift_report
from sanitizer.drift.vectors import vector_drift

__all__ = ["ColumnDrift", "DriftConfig", "Profile", "build_profile", "drift_report", "merge_profiles",
           "vector_drift"]
