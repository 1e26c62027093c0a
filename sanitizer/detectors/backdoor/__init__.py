"""The ``backdoor`` detector: groups of records whose label rests on a shared trigger, not on what they are.

May import data/, representations/, param_checks, errors and the detector contract, base and shared/; never beam/, io/ or another detector.
"""

from sanitizer.detectors.backdoor.detector import BackdoorDetector

__all__ = ["BackdoorDetector"]
