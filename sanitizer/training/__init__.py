"""What a training job imports: the clean shards of a published run, verified.

    from sanitizer.training import load_manifest

    data = load_manifest("out/")              # or out/manifest.json, gs://bucket/out, ...
    data = load_manifest("out/", expected_sha256=checked)   # only the manifest whose bytes were checked
    data = load_manifests(["run1/", "run2/"])   # a vetted run and one sanitized against it (--baseline run1/)
    frame = data.to_pandas()                  # every clean row, as a DataFrame
    ds = data.torch_dataset(batch_size=256)   # (features float32 [b, d], labels int64 [b]) batches
    ds = data.torch_dataset(categorical_columns="all", dates="days")  # (features, codes int64 [b, k], labels)
    ds = data.torch_dataset(text_columns="all")  # an image table: (images float32 [b, 3, H, W], texts, labels)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)

:func:`load_manifest` is the only door: it reads ``manifest.json`` and verifies every
clean shard it lists (sha256, size, row count; no unlisted Parquet file in ``clean/``)
before any row is handed out, and every later read verifies the bytes it parses again;
anything off raises :class:`ManifestError` naming the shard. The details are in
:mod:`sanitizer.training.manifest`; the torch stream is :mod:`sanitizer.training.torch`.

The package:

- :mod:`sanitizer.training.manifest`: :func:`load_manifest`, :class:`CleanData`,
  :class:`ManifestError`, shard verification, ``to_table``/``to_pandas``; local paths, and
  ``gs://``/``s3://``/... URIs through :mod:`pyarrow.fs`. It imports neither Apache Beam nor
  torch, so a training image needs neither to read the clean data;
- :mod:`sanitizer.training.torch`: :func:`make_torch_dataset` and :class:`TorchBatches`
  (a :class:`torch.utils.data.IterableDataset`; torch is imported on first use);
- :mod:`sanitizer.training.columns`: the column kinds the manifest records, :class:`Vocabulary`
  (categorical codes, the same for training and serving) and the date encodings;
- :mod:`sanitizer.training.media`: image columns decoded to tensors as the run decoded them
  (:class:`ImageError` when a clean record's image cannot be read now) and text columns as strings.
"""

from sanitizer.training.columns import Vocabulary
from sanitizer.training.media import ImageError
from sanitizer.training.manifest import CLEAN_DIR, MANIFEST, SUPPORTED_MANIFEST_VERSIONS, CleanData, load_manifest
from sanitizer.training.several import load_manifests
from sanitizer.training.shards import ManifestError, Shard
from sanitizer.training.torch import make_torch_dataset
from sanitizer.training.values import FLOAT32_MAX


def __getattr__(name: str):
    # ``sanitizer.training.TorchBatches`` (and pickling datasets into spawned DataLoader workers) needs torch.
    if name == "TorchBatches":
        from sanitizer.training.torch import _torch_batches_class

        return _torch_batches_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLEAN_DIR",
    "FLOAT32_MAX",
    "ImageError",
    "MANIFEST",
    "SUPPORTED_MANIFEST_VERSIONS",
    "CleanData",
    "ManifestError",
    "Shard",
    "TorchBatches",
    "Vocabulary",
    "load_manifest",
    "load_manifests",
    "make_torch_dataset",
]
