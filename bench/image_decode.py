"""Image decoding speed: ``decode_images`` against a plain Pillow loop, on one core.

    python bench/image_decode.py [--images 4000] [--repeat 3]

Encodes scikit-learn's digits (8x8 gray, enlarged and coloured) as PNG at 32x32 and at 64x64, then
times, in this process and on the same bytes:

* pillow open+load: ``Image.open(io.BytesIO(b)).load()`` for every image, the floor any decoder pays;
* decode_images: the image column's batch decoded to (n, 32, 32, 3) uint8 RGB (mode conversion,
  resize, the bomb guard, the row problems, the copy into the output).

Prints images/s for each (best of ``--repeat``) and the ratio. The machines are shared and noisy: trust
the ratio, measured in the same run, more than the absolute figures.
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
import pyarrow as pa
from PIL import Image
from sklearn.datasets import load_digits

from sanitizer.representations.images import decode_images


def pngs(n: int, side: int) -> list[bytes]:
    gray = load_digits().images / 16.0
    tints = np.random.default_rng(0).integers(40, 256, (len(gray), 3))
    out = []
    for i in range(n):
        k = i % len(gray)
        big = np.kron(gray[k], np.ones((side // 8, side // 8)))
        buffer = io.BytesIO()
        Image.fromarray(np.rint(big[..., None] * tints[k]).astype(np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def best_rate(run, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    print(f"{args.images} PNG images, best of {args.repeat}, one core")
    print(f"{'source':>8}  {'pillow open+load':>18}  {'decode_images':>14}  {'ratio':>6}")
    for side in (32, 64):
        values = pngs(args.images, side)
        column = pa.array(values, pa.binary())

        def plain():
            for b in values:
                Image.open(io.BytesIO(b)).load()

        def ours():
            _, problems = decode_images(column, "bytes", 32)
            assert not problems

        floor, rate = best_rate(plain, len(values), args.repeat), best_rate(ours, len(values), args.repeat)
        print(f"{side}x{side:<5}  {floor:>13,.0f} /s  {rate:>11,.0f} /s  {rate / floor:>6.2f}  (-> 32x32)")


if __name__ == "__main__":
    main()
