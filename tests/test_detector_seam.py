"""A new detector is one package plus one registry line: two test-only detectors, end to end.

``FirstOver`` flags rows whose first feature exceeds a limit and says so in its own words (its
``describe`` and ``colour`` hooks); ``SecondOver`` does the same on the second feature with no
report hooks at all, so the report shows it through its generic fallback. Each is registered with
one line, a real ``sanitize run`` (in-process, 240 rows) enables them from its config, and their
reasons reach the quarantine, provenance.json and report.html. The registry is restored afterwards.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import load_json, read_dir, run_cli, write_rows

from sanitizer.detectors import BUILT_IN, REGISTRY, Batch, Scores, register, unregister
from sanitizer.detectors.contract import Detector
from sanitizer.report.evidence import summarise_reasons

REPORT = Path(__file__).resolve().parents[1] / "sanitizer" / "report"
PLANTED = 5  # write_rows pushes its first rows 60 away on every feature
LIMIT = 30.0


@dataclass(frozen=True)
class OverParams:
    enabled: bool = False  # off unless a config turns it on
    limit: float = LIMIT

    def validate(self) -> None:
        pass


@dataclass(frozen=True)
class OverState:
    limit: float
    column: str


class FirstOver(Detector):
    """Flags a row whose first feature exceeds ``limit``."""

    name = "first_over"
    needs = frozenset({"features"})
    row_independent = True
    Params = OverParams
    column: ClassVar[int] = 0
    colour = "#123456"

    def fit(self, sample: Batch, params: OverParams, seed: int) -> OverState:
        return OverState(params.limit, sample.feature_names[self.column])

    def score(self, batch: Batch, state: OverState) -> Scores:
        values = batch.X[:, self.column]
        flagged = values > state.limit
        evidence = {int(i): {"feature": state.column, "value": float(values[i]), "limit": state.limit}
                    for i in np.flatnonzero(flagged)}
        return Scores(values - state.limit, flagged, 0.0, evidence)

    def summary(self, state: OverState) -> dict[str, Any]:
        return {"limit": state.limit, "column": state.column}

    def describe(self, evidence: dict[str, Any]) -> list[str]:
        return [f"{evidence['feature']} is {evidence['value']:.1f}, over the limit of {evidence['limit']:g}"]


class SecondOver(Detector):
    """The same on the second feature, with none of the report hooks."""

    name = "second_over"
    needs = frozenset({"features"})
    row_independent = True
    Params = OverParams
    column: ClassVar[int] = 1
    fit, score, summary = FirstOver.fit, FirstOver.score, FirstOver.summary


@pytest.fixture
def registered():
    register(FirstOver)
    register(SecondOver)
    try:
        yield
    finally:
        unregister("first_over")
        unregister("second_over")


def test_registering_takes_one_line_and_unregistering_restores_the_registry(registered):
    assert list(REGISTRY)[-2:] == ["first_over", "second_over"] and REGISTRY["first_over"] is FirstOver
    with pytest.raises(ValueError, match="already"):
        register(FirstOver)
    with pytest.raises(TypeError, match="subclass"):
        register(OverParams)


def test_each_built_in_detector_is_its_own_package_in_order():
    assert list(REGISTRY) == ["outlier", "label_flip", "feature_collision", "backdoor", "duplicates"]
    for entry, (name, cls) in zip(BUILT_IN, REGISTRY.items(), strict=True):
        assert entry.partition(":")[0] == f"sanitizer.detectors.{name}" == cls.__module__.rpartition(".")[0]


def test_a_detector_without_hooks_reads_as_key_value_pairs():
    reason = {"detector": "second_over", "code": "second_over", "score": 31.0, "threshold": 0.0,
              "evidence": {"feature": "b", "value": 61.0, "limit": 30.0}}
    (shown,) = summarise_reasons([reason])
    assert shown["lines"] == ["feature: b; value: 61; limit: 30"]


def test_a_registered_detector_reaches_quarantine_provenance_and_report(tmp_path, registered):
    data = write_rows(tmp_path / "in" / "rows.parquet", n=240, outliers=PLANTED)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"detectors": {"first_over": {"enabled": True}, "second_over": {"enabled": True}}}))
    out = tmp_path / "out"
    assert run_cli("run", "--input", data, "--output", out, "--label-column", "label", "--id-column", "rid",
                   "--config", config, "-q") == 0

    quarantine = read_dir(out / "quarantine")
    reasons = {rid: {r["code"]: json.loads(r["evidence_json"]) for r in rows}
               for rid, rows in zip(quarantine.column("rid").to_pylist(), quarantine.column("sanitizer_reasons").to_pylist())}
    planted = set(range(PLANTED))
    assert {rid for rid, codes in reasons.items() if "first_over" in codes} == planted
    assert {rid for rid, codes in reasons.items() if "second_over" in codes} == planted
    first = reasons[0]["first_over"]
    assert first["feature"] == "a" and first["limit"] == LIMIT and first["value"] > LIMIT
    assert "sanitizer_score_first_over" in quarantine.column_names

    provenance = load_json(out / "provenance.json")
    assert provenance["detectors"]["first_over"] == {"status": "fitted", "limit": LIMIT, "column": "a"}
    assert provenance["counts"]["by_detector"]["first_over"]["flagged"] == PLANTED

    html = (out / "report.html").read_text()
    assert f"a is {first['value']:.1f}, over the limit of 30" in html  # its own describe hook
    assert '"first_over":"#123456"' in html  # its colour hook
    assert f'"feature: b; limit: 30; value: {reasons[0]["second_over"]["value"]:.3g}"' in html  # the generic fallback


def test_the_report_names_no_detector():
    """What the report says about a detector comes from its hooks: no report code or script names one."""
    names = set(REGISTRY)
    found = []
    for path in sorted(REPORT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node)}
        found += [f"{path.name}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and any(re.search(rf"\b{name}\b", node.value) for name in names)]
    for path in sorted(REPORT.glob("static/*")):
        found += [f"{path.name}: {name}" for name in names if re.search(rf"\b{name}\b", path.read_text())]
    assert found == []
