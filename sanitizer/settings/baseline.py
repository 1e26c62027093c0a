"""The ``baseline`` config section: data that was already vetted, to fit the detectors on and to compare
the new data against.

Example (YAML)::

    baseline:
      run: runs/2026-11/             # a published run (its folder or manifest.json): its clean rows ...
      run_sha256: 3f1c...            # ... optionally pinned to the manifest that was reviewed
      # data: vetted/*.parquet       # or data you trust, in any supported format (instead of run)
      drift:                         # optional: per-column drift thresholds and severities
        default_severity: warning    # a drifted column without its own setting: warning or critical
        columns:
          amount: {severity: critical}
          region: {threshold: 0.2}

With a baseline, the detectors fit on the baseline's rows (a bounded sample, as without one) and score the
new data against that reference, and every column's drift between the two is measured and recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sanitizer.errors import ConfigError

SEVERITIES = ("warning", "critical")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BaselineConfig:
    run: str | None = None
    """A published run's output folder or manifest.json: its verified clean shards are the baseline."""
    run_sha256: str | None = None
    """The sha256 of the baseline run's manifest.json; a manifest whose bytes differ is refused."""
    data: str | None = None
    """Data the user trusts (file, folder or glob; any supported format), instead of ``run``."""
    drift: dict[str, Any] = field(default_factory=dict)
    """``default_severity`` (warning or critical) and ``columns``: column -> {threshold, severity}."""

    @property
    def source(self) -> str | None:
        return self.run or self.data

    def validate(self) -> None:
        for key in ("run", "data"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"baseline.{key} must be a path, got {value!r}")
        if self.run and self.data:
            raise ConfigError("baseline.run and baseline.data are two ways to give one baseline: give one "
                              "(--baseline RUN for a published run, --baseline-data PATH for data you trust)")
        if self.run_sha256 is not None:
            if not isinstance(self.run_sha256, str) or not _SHA256.fullmatch(self.run_sha256.lower()):
                raise ConfigError(f"baseline.run_sha256 must be a sha256 (64 hex digits), got {self.run_sha256!r}")
            if not self.run:
                raise ConfigError("baseline.run_sha256 pins a baseline run's manifest: give baseline.run too")
        check_drift(self.drift)


def check_drift(drift: Any) -> None:
    """ConfigError naming the key when ``baseline.drift`` is malformed."""
    if not isinstance(drift, dict):
        raise ConfigError(f"baseline.drift must be a mapping, got {drift!r}")
    unknown = sorted(set(drift) - {"default_severity", "columns"})
    if unknown:
        raise ConfigError(f"unknown key 'baseline.drift.{unknown[0]}'; allowed keys: columns, default_severity")
    severity = drift.get("default_severity", "warning")
    if severity not in SEVERITIES:
        raise ConfigError(f"baseline.drift.default_severity must be warning or critical, got {severity!r}")
    columns = drift.get("columns", {})
    if not isinstance(columns, dict):
        raise ConfigError(f"baseline.drift.columns must map a column to its settings, got {columns!r}")
    for name, spec in columns.items():
        where = f"baseline.drift.columns.{name}"
        if not isinstance(spec, dict) or set(spec) - {"threshold", "severity"}:
            raise ConfigError(f"{where} must be a mapping with threshold and/or severity, got {spec!r}")
        if "severity" in spec and spec["severity"] not in SEVERITIES + ("off",):
            raise ConfigError(f"{where}.severity must be warning, critical or off, got {spec['severity']!r}")
        threshold = spec.get("threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 < threshold <= 1):
            raise ConfigError(f"{where}.threshold must be a number in (0, 1], got {threshold!r}")
