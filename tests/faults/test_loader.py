"""Fault injection on what the training job reads: bytes that change after they were verified.

One real, small run (200 digits, several row groups in its clean shard) per module; each test
works on a copy of its output folder. The faults:

- a clean shard swapped for another valid Parquet file AFTER ``load_manifest`` verified it (the
  time-of-check/time-of-use gap): ``to_table``, ``to_pandas`` and the torch stream (in-process and
  in DataLoader workers) must refuse it, naming the shard, and hand out none of its rows;
- a manifest whose bytes are not the ones a caller checked (``expected_sha256``), also through
  ``pipelines/train_example.py --manifest-sha256``;
- float64 feature values that float32 cannot hold (they would silently become inf).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from torch.utils.data import DataLoader

from sanitizer.runs import provenance as prov
from sanitizer.training import ManifestError, load_manifest
from conftest import digit_ids, load_json, provenance_for, read_dir, run_cli, write_digits_parquet


def _load_train_example():
    """pipelines/train_example.py by path: pipelines/ is a folder of launchable files, not an installed package."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "pipelines" / "train_example.py"
    spec = importlib.util.spec_from_file_location("train_example_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_example = _load_train_example()

ID = "image_id"
N = 200
ROW_GROUP = 64  # the scoring batch size, so the clean shard holds several row groups
CONFIG = (
    "detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
    f"scoring:\n  batch_rows: {ROW_GROUP}\n"
)
CHANGED = r"changed since the manifest was written"


@pytest.fixture(scope="module")
def published(tmp_path_factory, digits):
    """A finished `sanitize run` on 200 digits: its OUT folder."""
    X, y = digits
    d = tmp_path_factory.mktemp("loader-faults")
    inp = write_digits_parquet(d / "in" / "digits.parquet", X[:N], y[:N], ids=digit_ids(N))
    config = d / "fast.yaml"
    config.write_text(CONFIG)
    out = d / "out"
    rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", ID,
                 "--config", config, "-q")
    assert rc == 0
    return out


@pytest.fixture()
def out(published, tmp_path) -> Path:
    target = tmp_path / "out"
    shutil.copytree(published, target)
    return target


def shard_of(out: Path) -> Path:
    (entry,) = load_json(out / "manifest.json")["clean"]["shards"]
    return out / entry["path"]


def row_groups(path: Path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def swap_for_impostor(shard: Path) -> set:
    """Replace a shard with another valid Parquet file: same schema and row groups, other rows.

    Every id is new ("evil-..."), labels are rotated, so any row of it handed out is recognisable; the
    row-group layout is the original's, so only the bytes (not the footer's shape) tell them apart.
    Returns the impostor's ids.
    """
    original = pq.read_table(shard)
    groups = row_groups(shard)
    ids = [f"evil-{i:05d}" for i in range(original.num_rows)]
    labels = pa.array([(v + 1) % 10 for v in original.column("label").to_pylist()], pa.int64())
    table = original.set_column(original.column_names.index(ID), ID, pa.array(ids, pa.string()))
    table = table.set_column(table.column_names.index("label"), "label", labels)
    writer = pq.ParquetWriter(shard, table.schema)
    start = 0
    for n in groups:
        writer.write_table(table.slice(start, n))
        start += n
    writer.close()
    assert row_groups(shard) == groups and pq.read_metadata(shard).num_rows == original.num_rows
    return set(ids)


def stream_ids(ds, workers: int, seen: list) -> None:
    """Record ids the DataLoader hands out, appended to ``seen`` as they come (so a failure keeps them)."""
    for _, _, ids in DataLoader(ds, batch_size=None, num_workers=workers):
        seen += ids


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- unchanged data


def test_published_output_has_several_row_groups(published):
    assert len(row_groups(shard_of(published))) > 1  # the streaming and splitting below is real


def test_unchanged_data_loads_exactly_the_published_rows(out):
    truth = read_dir(out / "clean")
    data = load_manifest(out)
    assert data.to_table().equals(truth)
    assert data.to_pandas().equals(truth.to_pandas())
    assert data.to_table(columns=[ID, "label"]).equals(truth.select([ID, "label"]))
    pixels = np.asarray(truth.column("pixels").combine_chunks().flatten().to_numpy(), np.float32).reshape(-1, 64)
    expected = {i: (pixels[k], lab) for k, (i, lab) in
                enumerate(zip(truth.column(ID).to_pylist(), truth.column("label").to_pylist()))}
    ds = data.torch_dataset(batch_size=50, ids=True)
    for workers in (0, 2):
        seen = [(i, X[k].numpy(), int(y[k])) for X, y, ids in DataLoader(ds, batch_size=None, num_workers=workers)
                for k, i in enumerate(ids)]
        assert sorted(i for i, _, _ in seen) == sorted(expected)
        assert all(np.array_equal(x, expected[i][0]) and lab == expected[i][1] for i, x, lab in seen)


# --------------------------------------------------------------------------- a shard swapped after verification


@pytest.mark.parametrize("read", ["to_table", "to_pandas"])
def test_a_shard_swapped_after_load_manifest_is_refused_by_to_table_and_to_pandas(out, read):
    data = load_manifest(out)  # verified: the published bytes
    shard = shard_of(out)
    swap_for_impostor(shard)
    with pytest.raises(ManifestError, match=rf"shard clean/{shard.name} .*{CHANGED}"):
        getattr(data, read)()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_shard_swapped_after_load_manifest_is_refused_by_the_torch_stream(out, workers):
    data = load_manifest(out)
    ds = data.torch_dataset(batch_size=50, ids=True)
    shard = shard_of(out)
    evil = swap_for_impostor(shard)
    seen: list = []
    with pytest.raises(ManifestError, match=rf"shard clean/{shard.name} .*{CHANGED}"):
        stream_ids(ds, workers, seen)
    assert not evil & set(seen), "rows of the swapped shard were handed to training"


def test_a_shard_swapped_for_a_smaller_file_is_refused(out):
    data = load_manifest(out)
    shard = shard_of(out)
    pq.write_table(pq.read_table(shard).slice(0, 10), shard)
    with pytest.raises(ManifestError, match=rf"shard clean/{shard.name} .*{CHANGED}"):
        data.to_table()
    with pytest.raises(ManifestError, match=rf"shard clean/{shard.name} .*{CHANGED}"):
        next(iter(data.torch_dataset(batch_size=50)))


def test_each_worker_verifies_its_own_shards_and_hands_out_none_of_a_swapped_one(out, tmp_path):
    """Three shards, the middle one swapped after loading: the DataLoader's workers (each streaming
    its own rows) refuse it; rows of the untouched shards may come, none of the impostor's."""
    table = read_dir(out / "clean")
    new = tmp_path / "three"
    (new / "clean").mkdir(parents=True)
    cuts = [0, table.num_rows // 3, 2 * table.num_rows // 3, table.num_rows]
    for k in range(3):
        pq.write_table(table.slice(cuts[k], cuts[k + 1] - cuts[k]), new / "clean" / f"part-{k:05d}-of-00003.parquet",
                       row_group_size=20)
    shards = prov.describe_shards(str(new / "clean"))
    manifest = prov.build_manifest("three", str(new), table.schema, shards, [], ID, "label", ["pixels"],
                                   provenance_for(new, "three", shards))
    (new / "manifest.json").write_text(json.dumps(manifest))
    data = load_manifest(new)
    ds = data.torch_dataset(batch_size=20, ids=True)
    middle = new / "clean" / "part-00001-of-00003.parquet"
    evil = swap_for_impostor(middle)
    for workers in (0, 2):
        seen: list = []
        with pytest.raises(ManifestError, match=rf"shard clean/{middle.name} .*{CHANGED}"):
            stream_ids(ds, workers, seen)
        assert not evil & set(seen)
        assert set(seen) <= set(table.column(ID).to_pylist())


# --------------------------------------------------------------------------- the manifest's own hash


def test_expected_sha256_right_loads_wrong_is_refused_naming_both(out):
    right = sha256_file(out / "manifest.json")
    data = load_manifest(out, expected_sha256=right)
    assert data.manifest_sha256 == right
    assert data.to_table().equals(read_dir(out / "clean"))
    assert load_manifest(out / "manifest.json", expected_sha256=right.upper()).rows == data.rows
    wrong = "0" * 64
    with pytest.raises(ManifestError, match=rf"expected sha256 {wrong}.*is {right}") as info:
        load_manifest(out, expected_sha256=wrong)
    assert "manifest.json" in str(info.value)
    with pytest.raises(ManifestError, match="expected_sha256 .* 64 hexadecimal digits"):
        load_manifest(out, expected_sha256="abc")


def test_a_manifest_edited_after_it_was_hashed_is_refused(out):
    path = out / "manifest.json"
    checked = sha256_file(path)
    manifest = load_json(path)
    manifest["note"] = "edited"  # (a new run id would no longer match provenance.json's)
    path.write_text(json.dumps(manifest, indent=1))
    assert load_manifest(out).manifest["note"] == "edited"  # still a valid manifest on its own...
    with pytest.raises(ManifestError, match=rf"expected sha256 {checked}"):
        load_manifest(out, expected_sha256=checked)  # ...but not the one that was checked


def test_train_example_takes_the_manifest_sha256(out, capsys):
    manifest = out / "manifest.json"
    right = sha256_file(manifest)
    metrics = out / "metrics.json"
    assert train_example.main(["--manifest", str(manifest), "--metrics", str(metrics), "--manifest-sha256", right]) == 0
    record = load_json(metrics)
    assert record["manifest_sha256"] == right and record["manifest_sha256_checked"] is True
    refused = out / "refused.json"
    rc = train_example.main(["--manifest", str(manifest), "--metrics", str(refused), "--manifest-sha256", "1" * 64])
    assert rc == 2 and not refused.exists()
    err = capsys.readouterr().err
    assert "1" * 64 in err and right in err and "nothing trained" in err
    for bad in ("", "abc"):  # an empty hash is refused, never read as "no check"
        with pytest.raises(SystemExit) as info:
            train_example.main(["--manifest", str(manifest), "--metrics", str(refused), "--manifest-sha256", bad])
        assert info.value.code == 2 and not refused.exists()
    assert "is not a sha256" in capsys.readouterr().err


# --------------------------------------------------------------------------- values float32 cannot hold


def test_float64_features_beyond_float32_range_are_refused_naming_the_column(tmp_path):
    """A clean shard (hashed and listed like any other) with a value float32 cannot hold: the stream
    refuses it by column instead of handing out inf."""
    n = 40
    table = pa.table({
        ID: pa.array([f"r{i}" for i in range(n)]),
        "small": pa.array(np.linspace(0, 1, n)),
        "huge": pa.array(np.where(np.arange(n) == 7, 1e300, 1.0)),
        "label": pa.array(np.arange(n) % 2, pa.int64()),
    })
    (tmp_path / "clean").mkdir()
    pq.write_table(table, tmp_path / "clean" / "part-00000-of-00001.parquet")
    shards = prov.describe_shards(str(tmp_path / "clean"))
    manifest = prov.build_manifest("big", str(tmp_path), table.schema, shards, [], ID, "label", ["small", "huge"],
                                   provenance_for(tmp_path, "big", shards))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    ds = load_manifest(tmp_path).torch_dataset(batch_size=16)
    with pytest.raises(ManifestError, match=r"feature column 'huge' .*float32"):
        list(ds)
    fine = load_manifest(tmp_path).torch_dataset(features=["small"], batch_size=16)
    assert sum(len(y) for _, y in fine) == n
