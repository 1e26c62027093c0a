"""The ``feature_collision`` detector: clean-label poisons that sit on top of, or part-way toward, another class.

May import data/, representations/, param_checks, errors and the detector contract, base and shared/; never beam/, io/ or another detector.
"""

from sanitizer.detectors.feature_collision.detector import FeatureCollisionDetector

__all__ = ["FeatureCollisionDetector"]
