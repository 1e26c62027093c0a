"""The ``baseline`` config section: data that was already vetted, to fit the detectors on and to compare
the new data against.

Example (YAML)::

    baseline:
      run: runs/2026-11/             # a published run (its folder or manifest.json): its clean rows ...
      run_sha256: 3f1c...            # ... optionally pinned to the manifest that was reviewed
      # data: vetted/*.parquet       # or data you trust, in any supported format (instead of run)
      drift:                         # optional (sanitizer.drift.DriftConfig)
        severity: warning            # what a drifted column means: warning (recorded, shown) or critical
        columns:                     # (nothing is published); off records the scores, never alarms
          amount: {severity: critical}
          region: {min_effect: {linf: 0.2}}

With a baseline, the detectors fit on the baseline's rows (a bounded sample, as without one) and score the
new data against that reference, and every column's drift between the two is measured and recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sanitizer.errors import ConfigError

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
    """The drift thresholds and severities (:class:`sanitizer.drift.DriftConfig`'s keys)."""

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
    """ConfigError naming the problem when ``baseline.drift`` is not a valid drift configuration
    (:class:`sanitizer.drift.DriftConfig`: alpha, bins, severity, min_effect, columns, ...)."""
    from sanitizer.drift import DriftConfig

    if not isinstance(drift, dict):
        raise ConfigError(f"baseline.drift must be a mapping, got {drift!r}")
    try:
        DriftConfig.from_dict(drift)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"baseline.drift: {exc} (keys: alpha, bins, components, permutations, seed, severity, "
                          "min_effect, columns: {COLUMN: {severity, min_effect}})") from None
