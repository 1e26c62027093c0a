"""The checked approximate neighbour index: used only as far as it is measured to agree with exact search."""

from __future__ import annotations

import numpy as np
import pytest

from sanitizer.detectors.shared.neighbour_search import MIN_RECALL, NeighbourIndex, build_checked


def _clusters(n, d=16, classes=8, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, d))
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(0, spread, (n, d))).astype(np.float32), y


def _exact_votes(ref, y, queries, k):
    d = ((queries[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.stack([np.bincount(y[row], minlength=y.max() + 1) for row in nearest])


def test_a_large_reference_gets_an_approximate_index_that_agrees_with_exact_search():
    ref, y = _clusters(6000)
    probes, _ = _clusters(800, seed=1)
    index, info = build_checked(ref, y, probes, 10, seed=0)
    assert not index.exact and info["kind"].startswith("IVF-flat")
    assert info["vote_agreement"] >= 0.99 and info["neighbour_recall"] >= MIN_RECALL
    # What it measured holds on other queries from the same data, against a brute-force search.
    queries, _ = _clusters(300, seed=2)
    found = index.search(queries, 10)
    votes = np.stack([np.bincount(y[row], minlength=y.max() + 1) for row in found])
    assert np.mean((votes == _exact_votes(ref, y, queries, 10)).all(axis=1)) >= 0.97


def test_small_references_and_a_target_of_one_stay_exact():
    ref, y = _clusters(1500)
    probes, _ = _clusters(500, seed=1)
    index, info = build_checked(ref, y, probes, 10)
    assert index.exact and info["vote_agreement"] == 1.0
    big, yb = _clusters(6000)
    index, info = build_checked(big, yb, probes, 10, target=1.0)
    assert index.exact and info["kind"] == "exact (flat L2)"


def test_no_nprobe_good_enough_falls_back_to_exact():
    # Uniform noise in 32 dimensions: neighbours are nearly equidistant, so a few probed cells miss many.
    rng = np.random.default_rng(0)
    ref = rng.random((5000, 32)).astype(np.float32)
    y = rng.integers(0, 10, 5000)
    probes = rng.random((400, 32)).astype(np.float32)
    index, info = build_checked(ref, y, probes, 10, target=0.999)
    assert index.exact and "no nprobe" in info["kind"]


@pytest.mark.parametrize("nprobe", [4, 16])
def test_an_index_with_another_nprobe_is_cached_apart(nprobe):
    ref, _ = _clusters(6000)
    base = NeighbourIndex.build(ref, exact_rows=0)
    other = base.with_nprobe(nprobe)
    assert other.digest != base.digest and other.nprobe == nprobe
    assert other.search(ref[:5], 3).shape == (5, 3)
