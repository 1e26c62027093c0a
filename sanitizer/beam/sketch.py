"""Which 64-bit keys occur more than once, in fixed memory: a counting Bloom filter with two-bit cells.

The duplicates stage groups records by content hash and by near-copy band key, and on a runner whose
GroupByKey holds all it groups (the DirectRunner) that memory grows with the data, although almost every key
belongs to one record only. A sketch built in an earlier read says which keys may be shared; the grouping
read then sends only those. Each key sets :data:`HASHES` cells; a cell is two bits, ``seen`` (hit once) and
``twice`` (hit again). A key is *maybe shared* when all its cells are ``twice``: a key that occurs twice
always is (no false negatives), a key of one record only when other keys hit all its cells - at ``n``
keys in ``2**bits`` cells, about ``(HASHES * n / 2**bits) ** HASHES`` of them (1M keys in 2**26 cells:
0.09%; 32M keys in 2**28 cells: 5.7%). The grouping that follows is exact, so a false positive costs
memory, never a wrong verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from sanitizer.data.batch import mix64

HASHES = 2
_SALTS = (np.uint64(0x51ED270B27C46A3D), np.uint64(0xA24BAED4963EE407))


def _cells(keys: np.ndarray, bits: int) -> list[np.ndarray]:
    keys = np.asarray(keys, dtype=np.uint64)
    return [mix64(keys ^ salt) >> np.uint64(64 - bits) for salt in _SALTS[:HASHES]]


def _mark(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, masks, repeated masks) for cell numbers: each byte touched once, with the OR of its bits, and
    the bits hit more than once among ``cells`` themselves."""
    cells, counts = np.unique(cells, return_counts=True)
    where = (cells >> np.uint64(3)).astype(np.int64)
    bit = np.left_shift(np.uint8(1), (cells & np.uint64(7)).astype(np.uint8))
    starts = np.flatnonzero(np.r_[True, where[1:] != where[:-1]]) if len(where) else np.zeros(0, dtype=np.int64)
    masks = np.bitwise_or.reduceat(bit, starts) if len(starts) else np.zeros(0, dtype=np.uint8)
    again = np.where(counts > 1, bit, np.uint8(0))
    repeated = np.bitwise_or.reduceat(again, starts) if len(starts) else np.zeros(0, dtype=np.uint8)
    return where[starts], masks, repeated


@dataclass
class SharedSketch:
    """Two bitsets of ``2**bits`` cells: ``seen`` and ``twice`` (see the module)."""

    bits: int
    seen: np.ndarray  # uint8, 2**bits / 8 bytes
    twice: np.ndarray

    @staticmethod
    def empty(bits: int) -> "SharedSketch":
        size = 1 << max(bits - 3, 0)
        return SharedSketch(bits, np.zeros(size, dtype=np.uint8), np.zeros(size, dtype=np.uint8))

    def add(self, keys: np.ndarray) -> "SharedSketch":
        for cells in _cells(keys, self.bits):
            where, masks, repeated = _mark(cells)
            self.twice[where] |= (self.seen[where] & masks) | repeated
            self.seen[where] |= masks
        return self

    def merge(self, other: "SharedSketch") -> "SharedSketch":
        self.twice |= other.twice
        self.twice |= self.seen & other.seen
        self.seen |= other.seen
        return self

    def shared(self, keys: np.ndarray) -> np.ndarray:
        """(n,) bool: the keys that may occur more than once (every key that does, and a few that do not)."""
        out = np.ones(len(keys), dtype=bool)
        for cells in _cells(keys, self.bits):
            byte = (cells >> np.uint64(3)).astype(np.int64)
            bit = np.left_shift(np.uint8(1), (cells & np.uint64(7)).astype(np.uint8))
            out &= (self.twice[byte] & bit) != 0
        return out

    def frozen(self) -> "SharedSketch":
        """The sketch a reader needs (``twice`` only), half the size to send to every worker."""
        return SharedSketch(self.bits, np.zeros(0, dtype=np.uint8), self.twice)


class SharedKeysFn(beam.CombineFn):
    """Arrays of uint64 keys -> a frozen :class:`SharedSketch` of ``2**bits`` cells."""

    def __init__(self, bits: int):
        self.bits = bits

    def create_accumulator(self):
        return SharedSketch.empty(self.bits)

    def add_input(self, acc, keys):
        return acc.add(keys)

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        out = next(accumulators)
        for other in accumulators:
            out.merge(other)
        return out

    def extract_output(self, acc):
        return acc.frozen()
