"""Image columns: telling their layout, decoding batches to RGB pixels, row problems, thumbnails.

The images are scikit-learn's bundled digits (8x8 gray), enlarged to 32x32 and coloured, stored as PNG,
JPEG, WebP, GIF and BMP.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sanitizer.representations.images import decode_images, encode_png, image_layout, thumbnail_png

SIZE = 32


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    """Six coloured digits, (32, 32, 3) uint8, each a different colour."""
    from sklearn.datasets import load_digits

    gray = load_digits().images[:6] / 16.0  # (6, 8, 8) in [0, 1]
    big = np.kron(gray, np.ones((4, 4)))  # (6, 32, 32)
    tints = np.array([[255, 40, 40], [40, 200, 60], [30, 60, 255], [250, 200, 0], [200, 0, 200], [0, 180, 180]])
    return [np.rint(big[i][..., None] * tints[i]).astype(np.uint8) for i in range(6)]


def encoded(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pillow(data: bytes, size: int = SIZE) -> np.ndarray:
    """What Pillow gives for the bytes directly: RGB, resized bilinearly."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` RGB pixels and holds none (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- layout


def test_layout_of_each_way_a_column_holds_images(pictures, tmp_path):
    png = encoded(pictures[0])
    formats = [encoded(pictures[0], f) for f in ("PNG", "JPEG", "WEBP", "GIF", "BMP")]
    assert image_layout(pa.array([None, *formats], pa.binary())) == "bytes"
    assert image_layout(pa.array(formats, pa.large_binary())) == "bytes"
    assert image_layout(pa.chunked_array([pa.array([None], pa.binary()), pa.array([png])])) == "bytes"
    hf = pa.array([{"bytes": png, "path": "a.png"}, {"bytes": None, "path": "b.PNG"}])
    assert image_layout(hf) == "struct"
    assert image_layout(pa.array([{"bytes": None, "path": "photos/b.jpg"}],
                                 pa.struct([("bytes", pa.binary()), ("path", pa.string())]))) == "struct"
    assert image_layout(pa.array([None, "a.png", "dir/B.JPEG", "gs://bucket/c.webp", "d.gif", "e.bmp"])) == "path"
    pixels = pa.array([[0.5] * 12], pa.list_(pa.float32(), 12))
    assert image_layout(pixels, declared=True) == "pixels"
    assert image_layout(pa.array([[1, 2, 3]]), declared=True) == "pixels"


def test_layout_is_none_for_columns_that_are_not_images(pictures):
    assert image_layout(pa.array(["red", "green", None])) is None
    assert image_layout(pa.array(["a.png", "notes.txt"])) is None  # every path must name an image
    assert image_layout(pa.array([[0.1, 0.2], [0.3, 0.4]], pa.list_(pa.float64(), 2))) is None  # not declared
    assert image_layout(pa.array([[1, 2, 3]])) is None
    assert image_layout(pa.array([b"\x00\x01\x02", b"hello world", b"BM\x00\x00"])) is None
    assert image_layout(pa.array([None, None], pa.binary())) is None
    assert image_layout(pa.array([1, 2, 3])) is None
    audio = pa.array([{"bytes": b"RIFF\x24\x00\x00\x00WAVEfmt ", "path": "a.wav"}])  # HF Audio looks alike
    assert image_layout(audio) is None
    assert image_layout(pa.array([["a.png"]]), declared=True) is None  # a list of strings holds no pixels


def test_layout_tolerates_a_few_corrupt_files_among_images(pictures):
    values = [encoded(p) for p in pictures] + [b"garbage"]
    assert image_layout(pa.array(values)) == "bytes"
    assert image_layout(pa.array([b"garbage", b"more garbage", encoded(pictures[0])])) is None


# --------------------------------------------------------------------------- decoding


def test_png_bytes_decode_exactly_as_pillow_does(pictures):
    values = [encoded(p) for p in pictures]
    pixels, problems = decode_images(pa.array(values), "bytes", SIZE)
    assert problems == {} and pixels.shape == (6, SIZE, SIZE, 3) and pixels.dtype == np.uint8
    assert all(np.array_equal(pixels[i], pictures[i]) for i in range(6))
    small, _ = decode_images(pa.array(values), "bytes", 12)
    assert all(np.array_equal(small[i], pillow(values[i], 12)) for i in range(6))
    assert not np.array_equal(small[0], small[1])


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF", "BMP"])
def test_every_format_decodes_as_pillow_does(pictures, fmt):
    values = [encoded(p, fmt) for p in pictures[:3]]
    pixels, problems = decode_images(pa.array(values), "bytes", SIZE)
    assert problems == {}
    assert all(np.array_equal(pixels[i], pillow(values[i])) for i in range(3))
    # lossy or paletted, still the same digit
    assert np.abs(pixels.astype(int) - np.stack(pictures[:3]).astype(int)).mean() < 20


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(pictures):
    """Pillow's draft: a 128x128 JPEG asked for at 32x32 is decoded at 1/4 scale, not decoded and shrunk."""
    big = np.asarray(Image.fromarray(pictures[4]).resize((128, 128), Image.Resampling.NEAREST))
    data = encoded(big, "JPEG", quality=95)
    reference = Image.open(io.BytesIO(data))
    reference.draft(None, (SIZE, SIZE))
    assert reference.size == (SIZE, SIZE)
    pixels, problems = decode_images(pa.array([data]), "bytes", SIZE)
    assert problems == {} and np.array_equal(pixels[0], np.asarray(reference.convert("RGB")))
    assert np.abs(pixels[0].astype(int) - pictures[4].astype(int)).mean() < 20


def test_gray_palette_sixteen_bit_and_cmyk_images_become_rgb(pictures):
    gray = np.asarray(Image.fromarray(pictures[0]).convert("L"))
    palette = Image.fromarray(pictures[1]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    sixteen = gray.astype(np.uint16) * 257  # 16-bit gray holding the same levels
    values = [encoded(gray), _save(palette, "PNG"),
              encoded(sixteen), _save(Image.fromarray(pictures[2]).convert("CMYK"), "JPEG")]
    pixels, problems = decode_images(pa.array(values), "bytes", SIZE)
    assert problems == {}
    assert np.array_equal(pixels[0], np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(pixels[1], np.asarray(palette.convert("RGB")))
    assert np.array_equal(pixels[2], pixels[0])  # 16-bit scaled to 8 bits, not clipped to white
    assert np.abs(pixels[3].astype(int) - pictures[2].astype(int)).mean() < 20


def _save(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_transparent_pixels_lie_on_white(pictures):
    rgba = np.dstack([pictures[0], np.full((SIZE, SIZE), 255, np.uint8)])
    rgba[:16, :, 3] = 0  # top half fully transparent
    pixels, problems = decode_images(pa.array([encoded(rgba)]), "bytes", SIZE)
    assert problems == {}
    assert (pixels[0, :16] == 255).all()
    assert np.array_equal(pixels[0, 16:], pictures[0][16:])


def test_struct_rows_read_their_bytes_or_else_their_path(pictures, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "two.png").write_bytes(encoded(pictures[2]))
    column = pa.array([{"bytes": encoded(pictures[0]), "path": "ignored.png"},
                       {"bytes": None, "path": "imgs/two.png"},
                       None,
                       {"bytes": encoded(pictures[1]), "path": None}],
                      pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pixels, problems = decode_images(column, "struct", SIZE, base=str(tmp_path))
    assert problems == {2: "missing image"}
    assert np.array_equal(pixels[0], pictures[0]) and np.array_equal(pixels[1], pictures[2])
    assert np.array_equal(pixels[3], pictures[1]) and not pixels[2].any()


def test_paths_are_read_relative_to_the_base_or_as_written(pictures, tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(3):
        (tmp_path / "a" / f"{i}.png").write_bytes(encoded(pictures[i]))
    absolute = str(tmp_path / "a" / "2.png")
    column = pa.chunked_array([pa.array(["a/0.png", "a/1.png"]), pa.array([absolute, " a/0.png "])])
    pixels, problems = decode_images(column, "path", SIZE, base=str(tmp_path))
    assert problems == {}
    assert [np.array_equal(pixels[i], pictures[j]) for i, j in [(0, 0), (1, 1), (2, 2), (3, 0)]] == [True] * 4


def test_paths_under_a_uri_base_are_read_through_beam_filesystems(pictures, tmp_path):
    """A Beam FileSystem registered for a made-up scheme stands in for gs:// or s3://."""
    from apache_beam.io.localfilesystem import LocalFileSystem

    class ImageTestStore(LocalFileSystem):  # found by FileSystems through FileSystem's subclasses
        @classmethod
        def scheme(cls):
            return "sanitizerimages"

        def open(self, path, *args, **kwargs):
            return super().open(str(tmp_path / path.split("://", 1)[1]), *args, **kwargs)

    (tmp_path / "bucket").mkdir()
    (tmp_path / "bucket" / "one.png").write_bytes(encoded(pictures[1]))
    column = pa.array(["one.png", "gone.png", "sanitizerimages://bucket/one.png"])
    pixels, problems = decode_images(column, "path", SIZE, base="sanitizerimages://bucket")
    assert set(problems) == {1} and problems[1].startswith("cannot read gone.png (")
    assert np.array_equal(pixels[0], pictures[1]) and np.array_equal(pixels[2], pictures[1])
    assert not pixels[1].any()
    assert ImageTestStore.scheme() == "sanitizerimages"  # the class lives until here


def test_declared_pixel_lists_in_either_range(pictures):
    flat = [p.reshape(-1) for p in pictures[:3]]
    as_floats = pa.array([(f / 255.0).tolist() for f in flat], pa.list_(pa.float32(), SIZE * SIZE * 3))
    as_ints = pa.array([f.astype(np.int64).tolist() for f in flat])
    shape = (SIZE, SIZE, 3)
    from_floats, problems_f = decode_images(as_floats, "pixels", SIZE, shape=shape)
    from_ints, problems_i = decode_images(pa.chunked_array([as_ints[:1], as_ints[1:]]), "pixels", SIZE, shape=shape)
    assert problems_f == problems_i == {}
    assert all(np.array_equal(from_ints[i], pictures[i]) for i in range(3))
    assert np.array_equal(from_floats, from_ints)
    # gray and RGBA rows, values out of range clipped, resized to the output size
    gray = pa.array([[0, 300, -5, 128]], pa.list_(pa.int32()))
    pixels, _ = decode_images(gray, "pixels", 2, shape=(2, 2, 1))
    assert pixels[0, :, :, 0].tolist() == [[0, 255], [0, 128]] and (pixels[0, :, :, 1] == pixels[0, :, :, 0]).all()
    dark = pa.array([[0, 1, 1, 0]], pa.list_(pa.int16()))  # integers are levels, however small
    pixels, _ = decode_images(dark, "pixels", 2, shape=(2, 2, 1))
    assert pixels[0, :, :, 0].tolist() == [[0, 1], [1, 0]]
    rgba = pa.array([[10, 20, 30, 0, 10, 20, 30, 255]])
    pixels, _ = decode_images(rgba, "pixels", 1, shape=(1, 2, 4))
    assert pixels.shape == (1, 1, 1, 3) and (pixels[0, 0, 0] > 100).all()  # half of it white


def test_unreadable_rows_are_problems_with_zeros_and_the_others_intact(pictures, tmp_path):
    good = encoded(pictures[3])
    corrupt = good[:40] + b"\x00" * 60
    (tmp_path / "ok.png").write_bytes(good)
    cases = {
        "bytes": ([good, corrupt, None, png_header(100_000, 100_000), b"\x89PNG\r\n\x1a\nnot really", good], {}),
        "path": (["ok.png", "missing.png", None, "ok.png"], {"base": str(tmp_path)}),
    }
    expected = {
        "bytes": {1: "not a readable image (", 2: "missing image", 3: "image too large (10000000000 pixels, over 64",
                  4: "not a readable image ("},
        "path": {1: "cannot read missing.png (no such file)", 2: "missing image"},
    }
    for layout, (values, options) in cases.items():
        pixels, problems = decode_images(pa.array(values), layout, SIZE, **options)
        assert set(problems) == set(expected[layout])
        assert all(problems[i].startswith(text) and "\n" not in problems[i] for i, text in expected[layout].items())
        assert all(not pixels[i].any() for i in problems)
        assert all(np.array_equal(pixels[i], pictures[3]) for i in range(len(values)) if i not in problems)
    wrong = pa.array([pictures[0].reshape(-1).tolist(), [1, 2, 3], None], pa.list_(pa.uint8()))
    pixels, problems = decode_images(wrong, "pixels", SIZE, shape=(SIZE, SIZE, 3))
    assert problems == {1: "expected 3072 pixel values (32x32x3), got 3", 2: "missing image"}
    assert np.array_equal(pixels[0], pictures[0]) and not pixels[1:].any()


def test_a_decompression_bomb_is_refused_before_decoding_and_warns_nothing(pictures):
    """Pillow warns above ~89 megapixels and raises above ~179: both, and our own 64 megapixel bound,
    end as the row's problem; no warning reaches the caller."""
    values = [png_header(9000, 9000), png_header(12_000, 12_000), png_header(100_000, 100_000),
              encoded(pictures[0])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels, problems = decode_images(pa.array(values), "bytes", SIZE)
    assert caught == []
    assert problems == {0: "image too large (9000x9000 pixels, over 64 megapixels)",
                        1: "image too large (144000000 pixels, over 64 megapixels)",
                        2: "image too large (10000000000 pixels, over 64 megapixels)"}
    assert np.array_equal(pixels[3], pictures[0])
    _, small_bound = decode_images(pa.array([encoded(pictures[0])]), "bytes", SIZE, max_pixels=1000)
    assert small_bound == {0: "image too large (32x32 pixels, over 0.001 megapixels)"}


def test_a_file_over_the_size_bound_is_not_read(pictures, tmp_path):
    (tmp_path / "big.png").write_bytes(encoded(pictures[0]) + b"\x00" * 5000)
    _, problems = decode_images(pa.array(["big.png"]), "path", SIZE, base=str(tmp_path), max_file_bytes=4096)
    assert problems[0].startswith("cannot read big.png (larger than")


def test_decoding_is_deterministic_and_the_same_in_any_batching(pictures):
    values = [encoded(p, f) for p, f in zip(pictures, ["PNG", "JPEG", "WEBP", "GIF", "BMP", "PNG"])]
    values[4] = b"broken"
    whole = decode_images(pa.array(values), "bytes", 20)
    again = decode_images(pa.array(values), "bytes", 20)
    chunked = decode_images(pa.chunked_array([pa.array(values[:2]), pa.array(values[2:])]), "bytes", 20)
    assert np.array_equal(whole[0], again[0]) and whole[1] == again[1]
    assert np.array_equal(whole[0], chunked[0]) and whole[1] == chunked[1] and set(whole[1]) == {4}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="layout must be one of"):
        decode_images(pa.array([b""]), "jpeg", SIZE)
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        decode_images(pa.array([b""]), "bytes", 0)
    with pytest.raises(ValueError, match=r"needs shape=\(H, W, C\)"):
        decode_images(pa.array([[1, 2]]), "pixels", SIZE)
    with pytest.raises(ValueError, match="encode_png needs uint8"):
        encode_png(np.zeros((4, 4, 3), dtype=np.float32))


# --------------------------------------------------------------------------- PNG and thumbnails


def test_encode_png_round_trips(pictures):
    gray = pictures[0][..., 0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(pictures[0])))), pictures[0])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(gray)))), gray)
    assert encode_png(pictures[0]) == encode_png(pictures[0].copy())


def test_thumbnails_keep_the_aspect_ratio_and_give_none_when_unreadable(pictures, tmp_path):
    wide = np.concatenate([pictures[0], pictures[1]], axis=1)  # 32 x 64
    thumb = thumbnail_png(encoded(wide, "JPEG"), "bytes", size=32)
    assert Image.open(io.BytesIO(thumb)).size == (32, 16)
    assert Image.open(io.BytesIO(thumbnail_png(pa.scalar(encoded(wide)), "bytes"))).size == (64, 32)
    (tmp_path / "w.png").write_bytes(encoded(wide))
    by_path = thumbnail_png({"bytes": None, "path": "w.png"}, "struct", size=32, base=str(tmp_path))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(by_path))),
                          np.asarray(Image.fromarray(wide).resize((32, 16), Image.Resampling.BILINEAR)))
    flat = (pictures[2].reshape(-1) / 255.0).tolist()
    from_pixels = thumbnail_png(flat, "pixels", size=16, shape=(SIZE, SIZE, 3))
    assert Image.open(io.BytesIO(from_pixels)).size == (16, 16)
    assert thumbnail_png(b"broken", "bytes") is None
    assert thumbnail_png(None, "bytes") is None
    assert thumbnail_png("gone.png", "path", base=str(tmp_path)) is None
    assert thumbnail_png(png_header(100_000, 100_000), "bytes") is None
    assert thumbnail_png(encoded(wide), "bytes") == thumbnail_png(encoded(wide), "bytes")
