"""CRC32C (Castagnoli), the checksum TFRecord frames carry, with NumPy only.

One record at a time in Python would read a few MB/s; here many records are checksummed together.
The CRC is linear over GF(2): a message's checksum with a zero start is the XOR of each byte's
contribution, which depends only on the byte and on how many bytes follow it. Each record is
left-padded with zeros (which add nothing) to whole 64-byte blocks; every block's CRC is one table
look-up per byte and one XOR-reduction; each block's CRC is then carried past the blocks after it in
its record (shift tables for 2**p bytes), the blocks of a record are XORed together, and the
standard start value and final inversion are applied.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

POLY = 0x82F63B78  # CRC-32C, reflected
BLOCK = 64
CHUNK_BYTES = 1 << 22
"""Records are checksummed in groups of about this many bytes (memory: a few times this)."""
_MASK_DELTA = 0xA282EAD8


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(POLY), crc >> 1).astype(np.uint32)
    return crc


def _apply(shift: np.ndarray, crc: np.ndarray) -> np.ndarray:
    """``crc`` (zero-start CRC states) carried past the zero bytes ``shift`` (a (4, 256) table) stands for."""
    return (shift[0][crc & 0xFF] ^ shift[1][(crc >> 8) & 0xFF]
            ^ shift[2][(crc >> 16) & 0xFF] ^ shift[3][crc >> 24])


@lru_cache(maxsize=1)
def _shifts() -> np.ndarray:
    """(48, 4, 256): table ``p`` carries a CRC state past 2**p zero bytes."""
    t = _table()
    byte = np.arange(256, dtype=np.uint32)
    one = np.stack([t[(byte << (8 * i)) & 0xFF] ^ ((byte << (8 * i)) >> 8) for i in range(4)]).astype(np.uint32)
    tables = [one]
    for _ in range(47):
        prev = tables[-1]
        tables.append(_apply(prev, prev))
    return np.stack(tables)


@lru_cache(maxsize=1)
def _block_table() -> np.ndarray:
    """(64, 256): the zero-start CRC contribution of byte value b at position j of a 64-byte block."""
    rows = [_table()]
    one = _shifts()[0]
    for _ in range(BLOCK - 1):
        rows.append(_apply(one, rows[-1]))
    return np.stack(rows[::-1])


def _carry(crc: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """Each ``crc`` carried past its own number of zero bytes ``nbytes``."""
    crc = crc.copy()
    nbytes = nbytes.astype(np.int64)
    shifts = _shifts()
    p = 0
    while (nbytes >> p).any():
        bit = ((nbytes >> p) & 1).astype(bool)
        if bit.any():
            crc[bit] = _apply(shifts[p], crc[bit])
        p += 1
    return crc


def _raw_many(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Zero-start, uninverted CRC of each ``buf[start:start+length]``."""
    nblocks = (lengths + BLOCK - 1) // BLOCK
    total = int(nblocks.sum())
    out = np.zeros(len(starts), dtype=np.uint32)
    if total == 0:
        return out
    padded = np.zeros(total * BLOCK, dtype=np.uint8)
    ends = np.cumsum(nblocks) * BLOCK
    for start, length, end in zip(starts.tolist(), lengths.tolist(), ends.tolist()):
        if length:
            padded[end - length:end] = buf[start:start + length]
    blocks = padded.reshape(total, BLOCK)
    crcs = np.bitwise_xor.reduce(_block_table()[np.arange(BLOCK), blocks], axis=1)
    first = np.cumsum(nblocks) - nblocks
    owner = np.repeat(np.arange(len(starts)), nblocks)
    after = (first + nblocks - 1)[owner] - np.arange(total)  # blocks that follow each block in its record
    crcs = _carry(crcs, after * BLOCK)
    some = nblocks > 0
    out[some] = np.bitwise_xor.reduceat(crcs, first[some])
    return out


def crc32c_many(buf, starts, lengths) -> np.ndarray:
    """The CRC32C of each ``buf[start:start+length]`` (``buf``: bytes or a uint8 array)."""
    buf = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.empty(len(starts), dtype=np.uint32)
    cut = np.cumsum(lengths + BLOCK)
    lo = 0
    while lo < len(starts):
        hi = max(lo + 1, int(np.searchsorted(cut, cut[lo] - lengths[lo] - BLOCK + CHUNK_BYTES, side="right")))
        raw = _raw_many(buf, starts[lo:hi], lengths[lo:hi])
        start_value = _carry(np.full(hi - lo, 0xFFFFFFFF, dtype=np.uint32), lengths[lo:hi])
        out[lo:hi] = raw ^ start_value ^ np.uint32(0xFFFFFFFF)
        lo = hi
    return out


def crc32c(data: bytes) -> int:
    """The CRC32C of ``data``."""
    return int(crc32c_many(data, [0], [len(data)])[0])


def masked(crc):
    """TFRecord's masked CRC (rotate right by 15, add a constant), of an int or a uint32 array."""
    if isinstance(crc, np.ndarray):
        crc = crc.astype(np.uint64)
        return ((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF).astype(np.uint32)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
