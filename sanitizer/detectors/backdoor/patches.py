"""``backdoor``'s image triggers: a small patch stamped on images of other classes, which are then relabelled
to one target class (BadNets, Gu et al. 2017).

Each judged image (decoded to ``size x size`` RGB) is cut into ``BLOCK x BLOCK`` blocks; a block's content,
each channel cut to ``LEVELS`` levels, hashes to one code. A stamped patch gives the same code at the same
place on every image that carries it, whatever the image shows around it, while natural blocks that
repeat (a plain background) repeat across every class. The blocks that could be triggers - one code at one
place held by at least ``min_group`` and at most ``max_pattern_share`` of the sample's images, at least
``min_pattern_purity`` one label, the ``MAX_PATCHES`` least likely by chance first - each become a two-level
column ("image has the patch at x 28-31, y 28-31") for the categorical trigger search
(:mod:`sanitizer.detectors.backdoor.categorical`), which confirms one when the rest of its images' content
says other classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sanitizer.detectors.backdoor.tokens import ABSENT, PRESENT, _log_tail

BLOCK = 4
"""Side of a block, in pixels of the decoded image."""
LEVELS = 4
"""Levels each channel is cut to before a block is hashed (a re-encoded patch keeps its code)."""
MAX_PATCHES = 8
_MIX = np.random.default_rng(20170822).integers(1, 2**62, size=BLOCK * BLOCK * 3, dtype=np.int64) | 1


CHUNK_ROWS = 2048
"""Images hashed at a time (the working arrays are int64: a batch of tens of thousands at once would weigh
gigabytes)."""


def block_codes(pixels: np.ndarray) -> np.ndarray:
    """(n, blocks) int64: every block's code, blocks in row-major order, from uint8 (n, S, S, 3)."""
    n, side = len(pixels), pixels.shape[1]
    per = side // BLOCK
    out = np.empty((n, per * per), dtype=np.int64)
    for start in range(0, n, CHUNK_ROWS):
        part = pixels[start:start + CHUNK_ROWS, : per * BLOCK, : per * BLOCK]
        q = (part // (256 // LEVELS)).reshape(len(part), per, BLOCK, per, BLOCK, 3)
        q = q.transpose(0, 1, 3, 2, 4, 5).reshape(len(part), per * per, -1).astype(np.int64)
        out[start:start + len(part)] = (q * _MIX).sum(axis=2)  # wraps around: a hash, not a sum
    return out


@dataclass(frozen=True)
class PatchColumns:
    """The blocks offered as two-level columns: ``patches[i]`` = (image column index, block, code)."""

    patches: tuple[tuple[int, int, int], ...]
    names: tuple[str, ...]
    side: int  # of the decoded images

    def codes(self, pixels: np.ndarray | None) -> np.ndarray:
        """(n, len(patches)) int32: PRESENT where the row's image holds the block's code at its place."""
        n = 0 if pixels is None else len(pixels)
        out = np.full((n, len(self.patches)), ABSENT, dtype=np.int32)
        by_column: dict[int, np.ndarray] = {}
        for i, (j, block, code) in enumerate(self.patches):
            if j not in by_column:
                by_column[j] = block_codes(pixels[:, j])
            out[by_column[j][:, block] == code, i] = PRESENT
        return out

    def region(self, block: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), inclusive, of a block in the decoded image."""
        per = self.side // BLOCK
        y, x = divmod(block, per)
        return x * BLOCK, y * BLOCK, x * BLOCK + BLOCK - 1, y * BLOCK + BLOCK - 1


def choose_patches(pixels: np.ndarray, columns: tuple[str, ...], y: np.ndarray, C: int, params) -> PatchColumns:
    """The blocks of the sample's images (``pixels`` (n, k, S, S, 3), named ``columns``) to offer as trigger
    candidates."""
    n = len(y)
    if n == 0 or pixels.shape[1] == 0:
        return PatchColumns((), (), 0)
    side = int(pixels.shape[2])
    base = np.bincount(y, minlength=C) / n
    lo, hi = max(params.min_group, 5), params.max_pattern_share * n
    scored = []
    for j in range(pixels.shape[1]):
        codes = block_codes(pixels[:, j])
        for block in range(codes.shape[1]):
            values, inverse, counts = np.unique(codes[:, block], return_inverse=True, return_counts=True)
            table = np.bincount(inverse.ravel() * C + y, minlength=len(values) * C).reshape(len(values), C)
            t = table.argmax(axis=1)
            purity = table[np.arange(len(values)), t] / counts
            keep = ((counts >= lo) & (counts <= hi) & (purity >= params.min_pattern_purity)
                    & (purity >= 0.5 * (1.0 + base[t])))
            scored.extend((_log_tail(int(table[v, t[v]]), int(counts[v]), float(base[t[v]])), j, block,
                           int(values[v])) for v in np.flatnonzero(keep))
    scored.sort()
    chosen = tuple((j, block, code) for _, j, block, code in scored[:MAX_PATCHES])
    found = PatchColumns(chosen, (), side)
    names = tuple(f"{columns[j]} has the patch at x {r[0]}-{r[2]}, y {r[1]}-{r[3]}"
                  for (j, block, _), r in ((p, found.region(p[1])) for p in chosen))
    return PatchColumns(chosen, names, side)


def evidence_of(found: PatchColumns, names: tuple[str, ...], codes, columns: tuple[str, ...]) -> dict | None:
    """A carrier's evidence for a trigger made only of patches: the image column, the region (x0, y0, x1, y1
    in the decoded image) and whether the patch is there; None for any other trigger."""
    if not names or any(name not in found.names for name in names):
        return None
    parts = []
    for name, code in zip(names, codes):
        j, block, _ = found.patches[found.names.index(name)]
        parts.append({"feature": columns[j], "region": list(found.region(block)), "present": int(code) == PRESENT})
    return {"trigger": "patch", "pattern": parts, "image_size": found.side}
