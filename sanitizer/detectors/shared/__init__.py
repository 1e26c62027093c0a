"""Helpers several detectors share (nearest-neighbour search over a fitted reference).

May import numpy, scikit-learn and faiss; never a detector package.
"""
