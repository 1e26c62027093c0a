"""The ``outlier`` detector: records unlike the rest of their class or of the data (tail and k-NN distance signals).

May import data/, representations/, param_checks, errors and the detector contract, base and shared/; never beam/, io/ or another detector.
"""

from sanitizer.detectors.outlier.detector import OutlierDetector

__all__ = ["OutlierDetector"]
