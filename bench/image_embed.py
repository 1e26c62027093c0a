"""The built-in image CNN on one core: fit time, embedding throughput and held-out accuracy.

    python bench/image_embed.py                 # 10,000 32x32 images, 2 folds
    python bench/image_embed.py --rows 20000 --size 64

Times are given as wall-clock and as CPU seconds of this process (the figure that holds on a busy
machine). The images are scikit-learn's digits, upscaled, tinted and shifted at random (a different tint and shift
for every copy), so the held-out accuracy measures how well each fold's model learnt digits it never saw.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits

from sanitizer.data.batch import mix64
from sanitizer.representations.image_cnn import EPOCHS, MAX_ROWS, fit_images


def coloured_digits(rows: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    pick = np.arange(rows) % len(X)
    big = np.stack([np.asarray(Image.fromarray((X[i].reshape(8, 8) * (255 / 16)).astype(np.uint8))
                               .resize((size, size), Image.BILINEAR), dtype=np.float32) / 255 for i in range(len(X))])
    fg, bg = rng.uniform(0.55, 1.0, (rows, 1, 1, 3)), rng.uniform(0.0, 0.35, (rows, 1, 1, 3))
    shift = rng.integers(-size // 16, size // 16 + 1, (rows, 2))
    v = np.stack([np.roll(big[i], tuple(s), axis=(0, 1)) for i, s in zip(pick, shift)])[..., None]
    pixels = np.round(255 * (bg + (fg - bg) * v)).astype(np.uint8)
    return pixels, np.array([str(c) for c in y[pick]], dtype=object)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pixels, labels = coloured_digits(args.rows, args.size, args.seed)
    keys = mix64(np.arange(args.rows, dtype=np.uint64))
    start, cpu = time.perf_counter(), time.process_time()
    fitted = fit_images(pixels, labels, keys, seed=args.seed, epochs=args.epochs, max_rows=args.max_rows)
    fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    fitted.embed(pixels[:64], keys[:64])  # builds the modules once, as a worker does
    start, cpu = time.perf_counter(), time.process_time()
    fitted.embed(pixels, keys)
    embed_s, embed_cpu = time.perf_counter() - start, time.process_time() - cpu
    info = fitted.describe()
    print(f"{args.rows} images {args.size}x{args.size}, {info['folds']} folds, {args.epochs} epochs, one thread")
    print(f"fit: {fit_s:.1f} s, {fit_cpu:.1f} s of CPU ({info['rows_per_fold']} training rows per fold model)")
    print(f"embed: {args.rows / embed_s:,.0f} images/s, {args.rows / embed_cpu:,.0f} per CPU second")
    print(f"train accuracy {info['train_accuracy']}, held-out accuracy {info['held_out_accuracy']}")


if __name__ == "__main__":
    main()
