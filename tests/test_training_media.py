"""The training hand-off of an image and text table: scikit-learn's digits enlarged to 32x32 RGB PNGs, stored
in the Hugging Face layout (``{bytes, path}``) and as files named by relative paths, beside a caption. The
manifest records how each image column is decoded; torch gets float32 [b, 3, S, S] images in [0, 1] as
Pillow decodes them and the captions as strings, in the clean rows' order; pandas gets the original values;
a clean image deleted since the run is an error naming the record, and a tampered shard is refused."""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import run_cli
from PIL import Image

from sanitizer import schemas
from sanitizer.training import ImageError, ManifestError, load_manifest

torch.set_num_threads(1)
ROWS = 300
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
INKS = ["blue", "red", "green"]


def _digit_pngs(rows: int, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pngs = []
    for image in digits.images[:rows]:
        gray = Image.fromarray((image / 16 * 255).astype(np.uint8), "L").resize((32, 32), Image.Resampling.BILINEAR)
        rgb = (np.stack([np.asarray(gray)] * 3, axis=-1) * rng.uniform(0.5, 1.0, 3)).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs, digits.target[:rows]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    (root / "in" / "imgs").mkdir(parents=True)
    pngs, target = _digit_pngs(ROWS)
    ids = [f"r{i:04d}" for i in range(ROWS)]
    for rid, png in zip(ids, pngs):
        (root / "in" / "imgs" / f"{rid}.png").write_bytes(png)
    captions = [f"A handwritten {WORDS[t]} in {INKS[i % 3]} ink, scan {i}." for i, t in enumerate(target)]
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({
        "rid": ids,
        "image": pa.array([{"bytes": png, "path": f"{rid}.png"} for rid, png in zip(ids, pngs)], struct),
        "file": [f"imgs/{rid}.png" for rid in ids],
        "caption": captions,
        "label": [WORDS[t] for t in target],
    }), root / "in" / "data.parquet")
    here = os.getcwd()
    os.chdir(root)  # relative input and output: the manifest must still say where the images are
    try:
        assert run_cli("run", "--input", "in/data.parquet", "--output", "out", "--label-column", "label",
                       "--id-column", "rid", "-q") == 0
    finally:
        os.chdir(here)
    return {"out": root / "out", "root": root, "png": dict(zip(ids, pngs)), "caption": dict(zip(ids, captions))}


def _pillow(png: bytes, size: int) -> np.ndarray:
    """uint8 (3, size, size): the image as Pillow decodes it, resized bilinearly, channels first."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image).transpose(2, 0, 1)


def _stream(ds) -> tuple[dict[str, list], list]:
    """Every batch of ``ds`` joined by part name."""
    joined: dict[str, list] = {name: [] for name in ds.parts}
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0))
    for batch in batches:
        assert len(batch) == len(ds.parts)
        for name, item in zip(ds.parts, batch):
            joined[name].append(item)
    return joined, batches


def test_the_manifest_records_how_each_image_column_is_decoded(run):
    manifest = json.loads((run["out"] / "manifest.json").read_text())
    schemas.validate("manifest", manifest)
    columns = {c["name"]: c for c in manifest["columns"]}
    base = str(run["root"] / "in")  # absolute, though the run was given a relative input
    assert columns["image"] == {"name": "image", "kind": "image", "layout": "struct", "size": 32, "base": base}
    assert columns["file"] == {"name": "file", "kind": "image", "layout": "path", "size": 32, "base": base}
    assert columns["caption"] == {"name": "caption", "kind": "text"}
    data = load_manifest(run["out"])
    assert data.image_columns == ["image", "file"] and data.text_columns == ["caption"]


def test_images_are_pillow_decoded_tensors_and_texts_the_clean_strings_in_order(run):
    data = load_manifest(run["out"])
    frame = data.to_pandas()
    assert 0.9 * ROWS <= len(frame) <= ROWS
    # pandas: the original values, untouched.
    assert [v["bytes"] for v in frame["image"]] == [run["png"][i] for i in frame["rid"]]
    assert frame["file"].tolist() == [f"imgs/{i}.png" for i in frame["rid"]]
    ds = data.torch_dataset(batch_size=64, ids=True, text_columns="all")
    assert ds.parts == ["image:image", "image:file", "text:caption", "labels", "ids"] and ds.image_size == 32
    joined, batches = _stream(ds)
    assert [len(b[-1]) for b in batches] == [64, 64, 64, 64, len(frame) - 256]
    ids = [i for part in joined["ids"] for i in part]
    assert ids == frame["rid"].tolist()
    texts = [t for part in joined["text:caption"] for t in part]
    assert all(type(t) is str for t in texts) and texts == frame["caption"].tolist()
    assert texts == [run["caption"][i] for i in ids]
    images = torch.cat(joined["image:image"])
    assert images.dtype == torch.float32 and images.shape == (len(frame), 3, 32, 32)
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.5
    expected = np.stack([_pillow(run["png"][i], 32) for i in ids])
    np.testing.assert_array_equal((images.numpy() * 255).round().astype(np.uint8), expected)
    assert torch.equal(torch.cat(joined["image:file"]), images)  # the files hold the same PNGs
    again, _ = _stream(ds)  # the same tensors every time
    assert all(torch.equal(a, b) for a, b in zip(again["image:image"], joined["image:image"]))


def test_image_size_and_the_columns_asked_for(run):
    data = load_manifest(run["out"])
    ds = data.torch_dataset(batch_size=100, ids=True, image_columns=["file"], image_size=20)
    assert ds.parts == ["image:file", "labels", "ids"] and ds.image_size == 20
    joined, _ = _stream(ds)
    images = torch.cat(joined["image:file"])
    ids = [i for part in joined["ids"] for i in part]
    assert images.shape == (len(ids), 3, 20, 20)
    expected = np.stack([_pillow(run["png"][i], 20) for i in ids])
    np.testing.assert_array_equal((images.numpy() * 255).round().astype(np.uint8), expected)
    labels = torch.cat(joined["labels"])
    assert [ds.classes[k] for k in labels.tolist()] == data.to_pandas().set_index("rid").loc[ids, "label"].tolist()
    only_text = data.torch_dataset(image_columns=False, text_columns=["caption"])
    assert only_text.parts == ["text:caption", "labels"]
    with pytest.raises(ValueError, match=r"column 'caption' is text: ask for it with text_columns=\['caption'\]"):
        data.torch_dataset(features=["caption"])
    with pytest.raises(ValueError, match=r"image_columns names 'caption'.*'text'.*\['image', 'file'\]"):
        data.torch_dataset(image_columns=["caption"])
    with pytest.raises(ValueError, match="image_size must be a whole number >= 1"):
        data.torch_dataset(image_size=0)


def test_relative_paths_resolve_against_the_input_folder_or_image_root(run, tmp_path):
    data = load_manifest(run["out"])
    frame = data.to_pandas()
    victim = frame["rid"].iloc[70]  # in the second batch of 64
    moved = tmp_path / "moved"
    shutil.copytree(run["root"] / "in" / "imgs", moved / "imgs")
    default, _ = _stream(data.torch_dataset(batch_size=64, image_columns=["file"]))
    rooted, _ = _stream(data.torch_dataset(batch_size=64, image_columns=["file"], image_root=moved))
    assert all(torch.equal(a, b) for a, b in zip(default["image:file"], rooted["image:file"]))

    (moved / "imgs" / f"{victim}.png").unlink()  # deleted since the run: an error naming it, never zeros
    batches = iter(data.torch_dataset(batch_size=64, image_columns=["file"], image_root=moved))
    next(batches)  # the first batch has every image
    with pytest.raises(ImageError, match=rf"record '{victim}': cannot read imgs/{victim}\.png \(no such file\)"):
        next(batches)
    assert issubclass(ImageError, ManifestError)

    original = run["root"] / "in" / "imgs" / f"{victim}.png"
    hidden = original.with_suffix(".hidden")
    original.rename(hidden)
    try:
        with pytest.raises(ImageError, match=rf"image column 'file'.*record '{victim}'.*inside {run['root'] / 'in'}"):
            list(data.torch_dataset(batch_size=64, image_columns=["file"]))
        assert len(list(data.torch_dataset(batch_size=64, image_columns=["image"]))) == 5  # bytes need no file
    finally:
        hidden.rename(original)


def test_a_tampered_shard_or_image_entry_is_refused(run, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(run["out"], copy)
    data = load_manifest(copy)  # verified now; the bytes each batch parses are verified again
    shard = sorted((copy / "clean").glob("*.parquet"))[0]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(ManifestError, match=r"has changed since the manifest was written.*none of its rows"):
        list(data.torch_dataset(text_columns="all"))
    with pytest.raises(ManifestError, match=r"shard clean/.*\.parquet has been modified"):
        load_manifest(copy)

    again = tmp_path / "again"
    shutil.copytree(run["out"], again)
    manifest = json.loads((again / "manifest.json").read_text())
    manifest["columns"][1]["layout"] = "jpeg"
    (again / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"columns\[1\]\.layout is 'jpeg', not one of bytes, struct, path"):
        load_manifest(again)
