"""Built-in detectors, one package each (outlier/, label_flip/, feature_collision/, backdoor/; shared/ holds
what several use), and REGISTRY, the detectors a run may enable."""

from sanitizer.detectors.backdoor import BackdoorDetector
from sanitizer.detectors.base import Batch, Scores, Skipped
from sanitizer.detectors.contract import Detector
from sanitizer.detectors.feature_collision import FeatureCollisionDetector
from sanitizer.detectors.label_flip import LabelFlipDetector
from sanitizer.detectors.outlier import OutlierDetector

REGISTRY = {
    OutlierDetector.name: OutlierDetector,
    LabelFlipDetector.name: LabelFlipDetector,
    FeatureCollisionDetector.name: FeatureCollisionDetector,
    BackdoorDetector.name: BackdoorDetector,
}

__all__ = ["REGISTRY", "BackdoorDetector", "Batch", "Detector", "Scores", "Skipped", "FeatureCollisionDetector", "LabelFlipDetector", "OutlierDetector"]
