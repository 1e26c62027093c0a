"""sanitizer.training: a training job reads only verified clean shards, once each, in any number of workers.

One real run on scikit-learn's digits (small record batches, so the clean shard has several row
groups); every tampering test works on a copy of its output folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import digit_ids, load_json, provenance_for, read_dir, run_cli, write_digits_parquet
from sanitizer.runs import provenance as prov
from sanitizer.errors import SanitizerError
from sanitizer.training import CleanData, ManifestError, load_manifest

ID = "image_id"
SHARD = "clean/part-00000-of-00001.parquet"
CONFIG = (
    "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
    "scoring:\n  batch_rows: 256\n"
)


@pytest.fixture(scope="module")
def published(tmp_path_factory, digits):
    """A finished run: (OUT folder, manifest)."""
    X, y = digits
    d = tmp_path_factory.mktemp("training")
    inp = write_digits_parquet(d / "in" / "digits.parquet", X, y, ids=digit_ids(len(y)), row_group_size=500)
    config = d / "fast.yaml"
    config.write_text(CONFIG)
    out = d / "out"
    rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", ID,
                 "--config", config, "-q")
    assert rc == 0
    return out, load_json(out / "manifest.json")


@pytest.fixture()
def copy_of(published, tmp_path):
    out, _ = published
    target = tmp_path / "out"
    shutil.copytree(out, target)
    return target


def clean_rows(out: Path) -> dict:
    """Record id -> (pixels, label) straight from the clean shards."""
    t = read_dir(out / "clean")
    pixels = np.asarray(t.column("pixels").combine_chunks().flatten().to_numpy(), dtype=np.float32).reshape(-1, 64)
    ids, labels = t.column(ID).to_pylist(), t.column("label").to_pylist()
    return {i: (pixels[k], lab) for k, (i, lab) in enumerate(zip(ids, labels))}


def stream(ds, workers: int) -> list[tuple]:
    """Every (id, features row, label) the DataLoader hands out."""
    seen = []
    for X, y, ids in DataLoader(ds, batch_size=None, num_workers=workers):
        assert X.dtype == torch.float32 and y.dtype == torch.int64
        assert X.ndim == 2 and X.shape[0] == y.shape[0] == len(ids)
        seen += [(i, X[k].numpy(), int(y[k])) for k, i in enumerate(ids)]
    return seen


# --------------------------------------------------------------------------- loading


def test_load_manifest_verifies_and_describes_the_run(published):
    out, manifest = published
    assert len(pq.ParquetFile(out / SHARD).metadata.to_dict()["row_groups"]) > 1  # the splitting below is real
    for path in (out, out / "manifest.json", str(out) + "/"):
        data = load_manifest(path)
        assert isinstance(data, CleanData)
        assert data.run_id == manifest["run_id"]
        assert data.rows == manifest["clean"]["rows"] == len(data)
        assert data.uris == [str(out / s["path"]) for s in manifest["clean"]["shards"]]
        assert (data.label_column, data.id_column, data.feature_columns) == ("label", ID, ["pixels"])


def test_to_pandas_and_to_table_hold_every_clean_row(published):
    out, manifest = published
    data = load_manifest(out)
    frame = data.to_pandas()
    assert len(frame) == manifest["clean"]["rows"]
    assert sorted(frame[ID]) == sorted(clean_rows(out))
    table = data.to_table(columns=[ID, "label"])
    assert table.column_names == [ID, "label"] and table.num_rows == manifest["clean"]["rows"]


def test_loading_a_manifest_needs_no_beam(published):
    """A training image has no Apache Beam: importing sanitizer.training and loading and reading a published
    output (a local folder, and the same folder as a file:// URI, which goes through pyarrow.fs like gs://
    and s3://) imports neither Beam nor torch. In a fresh interpreter: this one ran the pipeline."""
    out, manifest = published
    code = (
        "import sys, pathlib\n"
        "from sanitizer.training import load_manifest\n"
        "out = sys.argv[1]\n"
        "local = load_manifest(out)\n"
        "remote = load_manifest(pathlib.Path(out).resolve().as_uri())\n"
        "assert remote.uris[0].startswith('file://') and remote.rows == local.rows, remote.uris\n"
        "print(local.rows, local.to_table().num_rows, remote.to_table().num_rows)\n"
        "assert 'apache_beam' not in sys.modules, sorted(m for m in sys.modules if m.startswith('apache_beam'))[:5]\n"
        "assert 'torch' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = manifest["clean"]["rows"]
    assert proc.stdout.split() == [str(rows)] * 3


# --------------------------------------------------------------------------- torch


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_hands_out_every_clean_row_exactly_once(published, workers):
    out, manifest = published
    ds = load_manifest(out).torch_dataset(batch_size=100, ids=True)
    assert ds.feature_dim == 64 and ds.label_map is None and ds.classes is None
    expected = clean_rows(out)
    seen = stream(ds, workers)
    assert len(seen) == manifest["clean"]["rows"]
    assert Counter(i for i, _, _ in seen) == Counter(list(expected))  # every id once: nothing lost, nothing doubled
    for i, features, label in seen:
        assert np.array_equal(features, expected[i][0]) and label == expected[i][1]


def test_batches_are_full_but_the_last_and_len_counts_them(published):
    out, manifest = published
    ds = load_manifest(out).torch_dataset(batch_size=128)
    for workers in (0, 2):
        sizes = [len(y) for _, y in DataLoader(ds, batch_size=None, num_workers=workers)]
        assert sum(sizes) == manifest["clean"]["rows"] and len(sizes) == len(ds)
        assert sorted(sizes)[1:] == [128] * (len(sizes) - 1)


def test_string_labels_multi_shard_output_and_label_map(published, tmp_path):
    """Re-publish the clean rows as three shards with text labels; the map is sorted and every row comes once."""
    out, _ = published
    table = read_dir(out / "clean")
    table = table.set_column(table.column_names.index("label"), "label",
                             pa.array([f"digit-{v}" for v in table.column("label").to_pylist()], pa.string()))
    new = tmp_path / "republished"
    (new / "clean").mkdir(parents=True)
    (new / "quarantine").mkdir()
    cuts = [0, 400, 1100, table.num_rows]
    for k in range(3):
        pq.write_table(table.slice(cuts[k], cuts[k + 1] - cuts[k]), new / "clean" / f"part-{k:05d}-of-00003.parquet",
                       row_group_size=150 + 100 * k)
    shards = prov.describe_shards(str(new / "clean"))
    manifest = prov.build_manifest("republished", str(new), table.schema, shards, [], ID, "label", ["pixels"],
                                   provenance_for(new, "republished", shards))
    (new / "manifest.json").write_text(json.dumps(manifest))

    data = load_manifest(new)
    assert len(data.shards) == 3
    ds = data.torch_dataset(batch_size=64, ids=True)
    assert ds.classes == [f"digit-{v}" for v in range(10)]
    assert ds.label_map == {f"digit-{v}": v for v in range(10)}
    truth = dict(zip(table.column(ID).to_pylist(), table.column("label").to_pylist()))
    for workers in (0, 2):
        seen = stream(ds, workers)
        assert Counter(i for i, _, _ in seen) == Counter(list(truth))
        assert all(ds.classes[label] == truth[i] for i, _, label in seen)

    mine = data.torch_dataset(batch_size=500, label_map={f"digit-{v}": 9 - v for v in range(10)})
    X, y = next(iter(mine))
    assert X.shape == (500, 64)
    assert [9 - int(v) for v in y] == [int(s.split("-")[1]) for s in table.column("label").to_pylist()[:500]]
    with pytest.raises(ValueError, match="not in label_map"):
        next(iter(data.torch_dataset(label_map={"digit-0": 0})))


def test_review_publications_load_with_their_released_shards(copy_of):
    """`sanitize publish` twice: the current manifest and each superseded one load; older released shards
    left in clean/ are history (listed by a superseded manifest), not additions."""
    held = read_dir(copy_of / "quarantine").column(ID).to_pylist()
    before = sorted(clean_rows(copy_of))
    for rid in held[:2]:
        assert run_cli("review", copy_of, "release", rid, "--reason", "a clean digit", "--reviewer", "t") == 0
        assert run_cli("publish", copy_of) == 0
    assert len(list((copy_of / "clean").glob("part-released-*.parquet"))) == 2
    data = load_manifest(copy_of)
    assert len(data.shards) == 2 and data.rows == len(before) + 2
    ids = [i for _, _, batch in DataLoader(data.torch_dataset(batch_size=97, ids=True), batch_size=None,
                                           num_workers=2) for i in batch]
    assert sorted(ids) == sorted(before + held[:2])
    superseded = sorted(copy_of.glob("manifest-*.json"), key=lambda p: load_json(p)["clean"]["rows"])
    assert [load_manifest(p).rows for p in superseded] == [len(before), len(before) + 1]


# --------------------------------------------------------------------------- refusals


def test_a_flipped_byte_in_a_clean_shard_is_refused_naming_the_shard(copy_of):
    shard = copy_of / SHARD
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(ManifestError, match=r"shard clean/part-00000-of-00001\.parquet has been modified"):
        load_manifest(copy_of)


def test_a_missing_shard_is_refused(copy_of):
    (copy_of / SHARD).unlink()
    with pytest.raises(ManifestError, match=r"shard clean/part-00000-of-00001\.parquet is missing"):
        load_manifest(copy_of)


def test_an_unlisted_parquet_file_in_clean_is_refused(copy_of):
    shutil.copy(copy_of / SHARD, copy_of / "clean" / "extra.parquet")
    with pytest.raises(ManifestError, match=r"clean/extra\.parquet is not listed in the manifest"):
        load_manifest(copy_of)


def test_a_shard_whose_row_count_changed_is_refused_even_with_a_matching_hash(copy_of):
    """Someone drops a row and updates the hash and size in the manifest, but not the row count."""
    shard = copy_of / SHARD
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)
    manifest = load_json(copy_of / "manifest.json")
    entry = manifest["clean"]["shards"][0]
    entry["sha256"], entry["bytes"] = prov.sha256_of(str(shard))
    (copy_of / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=rf"shard clean/part-00000-of-00001\.parquet holds {table.num_rows - 1} "
                                            rf"rows but the manifest says {table.num_rows}"):
        load_manifest(copy_of)


def test_a_manifest_row_count_that_does_not_match_the_file_is_refused(copy_of):
    manifest = load_json(copy_of / "manifest.json")
    manifest["clean"]["shards"][0]["rows"] += 5
    manifest["clean"]["rows"] += 5
    (copy_of / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="but the manifest says"):
        load_manifest(copy_of)


def test_a_manifest_pointing_outside_clean_is_refused(copy_of):
    manifest = load_json(copy_of / "manifest.json")
    manifest["clean"]["shards"][0]["path"] = manifest["quarantine"]["shards"][0]["path"]
    (copy_of / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="not a Parquet file directly under clean/"):
        load_manifest(copy_of)


def test_no_manifest_means_no_data(copy_of):
    (copy_of / "manifest.json").unlink()
    with pytest.raises(ManifestError, match="no manifest at .*did not publish") as info:
        load_manifest(copy_of)
    assert isinstance(info.value, SanitizerError)
