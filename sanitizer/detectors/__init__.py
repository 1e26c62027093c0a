"""Detectors: the contract every detector meets, and REGISTRY, the detectors a run may enable.

Each built-in detector is one package (outlier/, label_flip/, feature_collision/, backdoor/) that owns
its params, fit, score, evidence and how the report shows that evidence (its ``report.py``); shared/
holds what several use. Adding one is its package plus one line in :data:`BUILT_IN`; a detector that
lives elsewhere joins with one call, ``register(MyDetector)``.

May import data/, representations/, param_checks and errors; never beam/, io/, runs/, report/ or review/.
"""

from __future__ import annotations

from importlib import import_module

from sanitizer.detectors.base import Batch, Scores, Skipped
from sanitizer.detectors.contract import Detector

BUILT_IN = (
    "sanitizer.detectors.outlier:OutlierDetector",
    "sanitizer.detectors.label_flip:LabelFlipDetector",
    "sanitizer.detectors.feature_collision:FeatureCollisionDetector",
    "sanitizer.detectors.backdoor:BackdoorDetector",
    "sanitizer.detectors.duplicates:DuplicatesDetector",
)
"""The built-in detectors as ``package:Class``, in the order runs list them (config, outputs, report)."""

REGISTRY: dict[str, type[Detector]] = {}
"""Detector name -> its class: every detector a config may name."""


def register(detector: type[Detector] | str) -> type[Detector]:
    """Add a detector (a :class:`Detector` subclass, or ``"package.module:Class"``) to :data:`REGISTRY`
    under its ``name`` and return its class. Raise ValueError when the name is taken, TypeError when it
    is not a Detector."""
    if isinstance(detector, str):
        module, _, attr = detector.partition(":")
        detector = getattr(import_module(module), attr)
    if not (isinstance(detector, type) and issubclass(detector, Detector)):
        raise TypeError(f"a detector must be a subclass of sanitizer.detectors.contract.Detector, got {detector!r}")
    if detector.name in REGISTRY:
        raise ValueError(f"a detector named {detector.name!r} is registered already ({REGISTRY[detector.name].__qualname__})")
    REGISTRY[detector.name] = detector
    return detector


def unregister(name: str) -> None:
    """Remove the detector ``name`` from :data:`REGISTRY` (KeyError when there is none)."""
    del REGISTRY[name]


for _entry in BUILT_IN:
    register(_entry)

__all__ = ["BUILT_IN", "REGISTRY", "Batch", "Detector", "Scores", "Skipped", "register", "unregister"]
