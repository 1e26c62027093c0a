"""How drift is judged: the false-alarm rate, the smallest change worth an alarm, and severities.

A statistic alarms when it is beyond both

* what two samples of those sizes from one distribution would give, at a false-alarm rate of ``alpha``
  for the whole comparison (shared out over every statistic compared, Bonferroni), and
* its minimum effect (``min_effect``), so that very large data sets do not alarm on trivial changes.

An alarm has its column's severity: ``warning`` (recorded and shown) or ``critical`` (stops
publication); ``off`` still computes and records the column's statistics but never alarms on them.
``columns`` overrides the severity and any minimum effect for one column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

STATISTICS = {
    "js_distance": "Jensen-Shannon distance (base 2) on the baseline's quantile bins",
    "wasserstein": "Wasserstein-1 distance divided by the baseline's standard deviation",
    "linf": "largest change of a level's share (L-infinity)",
    "new_categories": "share of new rows holding a level the baseline never had",
    "class_shares": "largest change of a class's share (L-infinity)",
    "missing_rate": "change of the share of missing values",
    "vector_js": "largest Jensen-Shannon distance on the baseline's principal components",
}
MIN_EFFECT = MappingProxyType({
    "js_distance": 0.05, "wasserstein": 0.1, "linf": 0.05, "new_categories": 0.01,
    "class_shares": 0.05, "missing_rate": 0.02, "vector_js": 0.05,
})
SEVERITIES = ("warning", "critical", "off")


def _check_effects(effects: Mapping[str, float], where: str) -> None:
    for name, value in effects.items():
        if name not in STATISTICS:
            raise ValueError(f"{where}: unknown drift statistic {name!r}; choose from {sorted(STATISTICS)}")
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{where}: min_effect[{name!r}] must be in [0, 1], got {value!r}")


def _check_severity(severity: str, where: str) -> None:
    if severity not in SEVERITIES:
        raise ValueError(f"{where}: severity must be one of {SEVERITIES}, got {severity!r}")


@dataclass(frozen=True)
class ColumnDrift:
    """One column's overrides: its severity and minimum effects (None or absent: the default)."""

    severity: str | None = None
    min_effect: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity is not None:
            _check_severity(self.severity, "column drift")
        _check_effects(self.min_effect, "column drift")


@dataclass(frozen=True)
class DriftConfig:
    """Drift thresholds and severities, with per-column overrides."""

    alpha: float = 0.01
    bins: int = 10
    components: int = 5
    permutations: int = 200
    seed: int = 0
    severity: str = "warning"
    min_effect: Mapping[str, float] = field(default_factory=lambda: dict(MIN_EFFECT))
    columns: Mapping[str, ColumnDrift] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, float | int) or not 0 < self.alpha < 1:
            raise ValueError(f"drift alpha must be in (0, 1), got {self.alpha!r}")
        for name, low in (("bins", 2), ("components", 1), ("permutations", 20)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"drift {name} must be an integer >= {low}, got {value!r}")
        _check_severity(self.severity, "drift")
        _check_effects(self.min_effect, "drift")
        for name, rule in self.columns.items():
            if not isinstance(rule, ColumnDrift):
                raise TypeError(f"drift columns[{name!r}] must be a ColumnDrift, got {type(rule).__name__}")

    def severity_of(self, column: str) -> str:
        rule = self.columns.get(column)
        return rule.severity if rule is not None and rule.severity is not None else self.severity

    def min_effect_of(self, column: str, statistic: str) -> float:
        rule = self.columns.get(column)
        if rule is not None and statistic in rule.min_effect:
            return float(rule.min_effect[statistic])
        return float(self.min_effect.get(statistic, MIN_EFFECT[statistic]))

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "bins": self.bins, "components": self.components,
                "permutations": self.permutations, "seed": self.seed, "severity": self.severity,
                "min_effect": dict(self.min_effect),
                "columns": {name: {"severity": rule.severity, "min_effect": dict(rule.min_effect)}
                            for name, rule in self.columns.items()}}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DriftConfig:
        fields = dict(raw)
        fields["columns"] = {name: ColumnDrift(rule.get("severity"), dict(rule.get("min_effect", {})))
                             for name, rule in raw.get("columns", {}).items()}
        if "min_effect" in fields:
            fields["min_effect"] = {**MIN_EFFECT, **fields["min_effect"]}
        return cls(**fields)
