"""Helpers several detectors share: nearest-neighbour search over a fitted reference, and the plain-text
pieces their report lines are built from.

May import numpy, scikit-learn and faiss; never a detector package.
"""
