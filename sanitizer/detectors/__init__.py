"""Built-in detectors. A new detector is one module plus one line in REGISTRY."""

from sanitizer.detectors.backdoor import BackdoorDetector
from sanitizer.detectors.base import Batch, Scores, Skipped
from sanitizer.detectors.feature_collision import FeatureCollisionDetector
from sanitizer.detectors.label_flip import LabelFlipDetector
from sanitizer.detectors.outlier import OutlierDetector

REGISTRY = {
    OutlierDetector.name: OutlierDetector,
    LabelFlipDetector.name: LabelFlipDetector,
    FeatureCollisionDetector.name: FeatureCollisionDetector,
    BackdoorDetector.name: BackdoorDetector,
}

__all__ = ["REGISTRY", "BackdoorDetector", "Batch", "Scores", "Skipped", "FeatureCollisionDetector", "LabelFlipDetector", "OutlierDetector"]
