"""The ``label_flip`` detector: records whose label disagrees with what the data says it should be (confident learning).

May import data/, representations/, param_checks, errors and the detector contract, base and shared/; never beam/, io/ or another detector.
"""

from sanitizer.detectors.label_flip.detector import LabelFlipDetector

__all__ = ["LabelFlipDetector"]
