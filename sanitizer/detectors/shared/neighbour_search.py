"""Nearest-neighbour search over a fitted reference, shipped to workers inside detector state.

Small references (up to ``EXACT_ROWS``) use an exact flat L2 index. Larger ones
use an inverted-file index (faiss ``IndexIVFFlat``: k-means cells, searching
the ``nprobe`` nearest cells), which compares each query with a few percent of
the reference instead of all of it. The index is built once at fit time,
serialised to bytes (so the state stays picklable and identical on every
worker), and deserialised once per worker process.

:func:`build_checked` is the approximate index a detector may use on smaller
references too, but only as far as it is measured to agree with the exact
search: it picks the smallest ``nprobe`` whose neighbour *votes* match exact
search on held-out query rows at least ``target`` of the time (falling back to
the exact index when none does), and says what it measured, so provenance
records how close the run's answers are to exact ones.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

EXACT_ROWS = 10_000
APPROX_ROWS = 4_000
"""From this many reference rows :func:`build_checked` tries an inverted-file index (below, exact is cheap)."""
NPROBES = (4, 6, 8, 12, 16, 24, 32)
MIN_RECALL = 0.95
"""An approximate index must also find this share of the exact k nearest (the evidence names neighbours)."""
_CACHE: dict[str, object] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class NeighbourIndex:
    data: np.ndarray  # serialised faiss index (uint8)
    digest: str
    rows: int
    exact: bool
    nprobe: int

    @staticmethod
    def build(vectors: np.ndarray, *, seed: int = 0, nprobe: int = 32, exact_rows: int = EXACT_ROWS) -> "NeighbourIndex":
        return _built(vectors, seed, nprobe, exact_rows)[1]

    def with_nprobe(self, nprobe: int) -> "NeighbourIndex":
        """The same index searched over ``nprobe`` cells (its cache entry is separate)."""
        from dataclasses import replace

        return replace(self, nprobe=int(nprobe), digest=f"{self.digest[:56]}-p{int(nprobe)}")

    def _index(self):
        import faiss

        with _LOCK:
            index = _CACHE.get(self.digest)
            if index is None:
                index = faiss.deserialize_index(self.data)
                if not self.exact:
                    index.nprobe = self.nprobe
                _CACHE[self.digest] = index
        return index

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """(n, k) reference row indices, nearest first; -1 where fewer than k were found."""
        k = max(1, min(k, self.rows))
        _, found = self._index().search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return found

    def search_distances(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices), each (n, k), nearest first; Euclidean distances (faiss gives squares)."""
        k = max(1, min(k, self.rows))
        squared, found = self._index().search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.sqrt(np.maximum(squared, 0.0)), found

    def describe(self) -> dict:
        return {"kind": "exact (flat L2)" if self.exact else f"IVF-flat, nprobe {self.nprobe}", "rows": self.rows}


def _built(vectors: np.ndarray, seed: int, nprobe: int, exact_rows: int):
    """(the live faiss index, the NeighbourIndex that ships it)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if n <= exact_rows:
        index = faiss.IndexFlatL2(d)
        exact = True
    else:
        cells = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, cells)
        index.cp.seed = seed  # k-means initialisation: same reference, same cells
        index.train(vectors)
        index.nprobe = nprobe
        exact = False
    index.add(vectors)
    data = faiss.serialize_index(index)
    return index, NeighbourIndex(data, hashlib.sha256(data.tobytes()).hexdigest(), n, exact, nprobe)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of each row's exact neighbours (``truth``) that ``found`` holds, averaged over rows."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum(axis=1)
    return float(hits.mean() / truth.shape[1])


def _votes(labels: np.ndarray, found: np.ndarray, classes: int) -> np.ndarray:
    n, k = found.shape
    flat = np.repeat(np.arange(n), k) * classes + labels[np.maximum(found, 0)].ravel()
    return np.bincount(flat, minlength=n * classes).reshape(n, classes)


def build_checked(vectors: np.ndarray, labels: np.ndarray | None, probes: np.ndarray, k: int, *, seed: int = 0,
                  target: float = 0.99, min_recall: float = MIN_RECALL,
                  approx_rows: int = APPROX_ROWS) -> tuple[NeighbourIndex, dict]:
    """An index over ``vectors`` whose k-NN label votes agree with exact search on ``probes`` >= ``target``.

    ``labels`` (integer class per vector) define the votes; ``probes`` are query rows
    like those the index will serve. Returns the index and what was measured: the
    kind, nprobe, the vote agreement (share of probe rows whose vote counts equal the
    exact search's) and the neighbour recall (share of the exact k nearest found,
    which must also reach ``min_recall``). Without ``labels`` only the recall is
    checked (a detector that reads distances at ranks, not votes). A ``target`` of
    1.0 asks for the exact index."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    probes = np.ascontiguousarray(probes, dtype=np.float32)
    n = len(vectors)
    k = max(1, min(int(k), n))
    exact_live, exact = _built(vectors, seed, 32, n)

    def exact_info(kind: str) -> dict:
        info = {"kind": kind, "rows": n, "neighbour_recall": 1.0, "probes": int(len(probes))}
        if labels is not None:
            info["vote_agreement"] = 1.0
        return info

    if n < approx_rows or len(probes) < 100 or target >= 1.0:
        with _LOCK:
            _CACHE[exact.digest] = exact_live
        return exact, exact_info("exact (flat L2)")
    _, truth = exact_live.search(probes, k)
    truth_votes = None if labels is None else _votes(labels, truth, int(labels.max()) + 1)
    ivf_live, ivf = _built(vectors, seed, 32, 0)  # one live index, searched at each nprobe in turn
    cells = int(np.sqrt(n))
    for nprobe in [p for p in NPROBES if p < cells]:
        ivf_live.nprobe = nprobe
        _, found = ivf_live.search(probes, k)
        recall = _recall(found, truth)
        agreement = recall if truth_votes is None else float(
            np.mean((_votes(labels, found, truth_votes.shape[1]) == truth_votes).all(axis=1)))
        if agreement >= target and recall >= min_recall:
            chosen = ivf.with_nprobe(nprobe)
            with _LOCK:  # this process searches the live index; other workers deserialise chosen.data
                _CACHE[chosen.digest] = ivf_live
            info = {"kind": f"IVF-flat ({cells} cells, nprobe {nprobe})", "rows": n,
                    "neighbour_recall": round(recall, 4), "probes": int(len(probes)), "target": target}
            if truth_votes is not None:
                info["vote_agreement"] = round(agreement, 4)
            return chosen, info
    with _LOCK:
        _CACHE[exact.digest] = exact_live
    return exact, dict(exact_info("exact (flat L2): no nprobe reached the target agreement"), target=target)
