"""Nearest-neighbour search over a fitted reference, shipped to workers inside detector state.

Small references (up to ``EXACT_ROWS``) use an exact flat L2 index. Larger ones
use an inverted-file index (faiss ``IndexIVFFlat``: k-means cells, searching
the ``nprobe`` nearest cells), which compares each query with a few percent of
the reference instead of all of it. The index is built once at fit time,
serialised to bytes (so the state stays picklable and identical on every
worker), and deserialised once per worker process.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

EXACT_ROWS = 10_000
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
    def build(vectors: np.ndarray, *, seed: int = 0, nprobe: int = 32) -> "NeighbourIndex":
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if n <= EXACT_ROWS:
            index = faiss.IndexFlatL2(d)
            exact = True
        else:
            cells = int(np.sqrt(n))
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, cells)
            index.cp.seed = seed  # k-means initialisation: same reference, same cells
            index.train(vectors)
            exact = False
        index.add(vectors)
        data = faiss.serialize_index(index)
        return NeighbourIndex(data, hashlib.sha256(data.tobytes()).hexdigest(), n, exact, nprobe)

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
