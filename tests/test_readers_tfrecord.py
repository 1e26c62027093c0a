"""TFRecord input: files of tf.train.Example written here byte by byte (framing, masked CRC32C,
protobuf wire format; no TensorFlow) from palmerpenguins, read back as Arrow and run end to end."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, run_cli

from sanitizer.errors import InputError
from sanitizer.io.discover import InputFile
from sanitizer.io.readers import format_of, reader_for
from sanitizer.io.readers.base import read_tables
from sanitizer.io.readers.crc32c import crc32c, crc32c_many

# --------------------------------------------------------------------------- a TFRecord writer


def _crc32c(data: bytes) -> int:
    """Bit by bit, as the CRC-32C definition says (independent of the reader's tables)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # a negative int64 is its two's complement: ten bytes
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _ld(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(payload)) + payload


def feature(kind: str, values, packed: bool = True) -> bytes:
    """A serialized tf.train.Feature: BytesList (1), FloatList (2) or Int64List (3), numbers packed or not."""
    if kind == "bytes":
        return _ld(1, b"".join(_ld(1, v) for v in values))
    if kind == "float":
        body = (_ld(1, struct.pack(f"<{len(values)}f", *values)) if packed
                else b"".join(_tag(1, 5) + struct.pack("<f", v) for v in values))
        return _ld(2, body)
    body = (_ld(1, b"".join(_varint(v) for v in values)) if packed
            else b"".join(_tag(1, 0) + _varint(v) for v in values))
    return _ld(3, body)


def example(features: dict[str, bytes]) -> bytes:
    """A serialized tf.train.Example: Features (1) holding map entries {1: key, 2: Feature}."""
    entries = b"".join(_ld(1, _ld(1, key.encode()) + _ld(2, value)) for key, value in features.items())
    return _ld(1, entries)


def frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", _masked(_crc32c(length))) + record + struct.pack("<I", _masked(_crc32c(record)))


def write_tfrecord(path: Path, records: list[bytes]) -> Path:
    data = b"".join(frame(r) for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# --------------------------------------------------------------------------- penguins as tf.train.Example

PNG = b"\x89PNG\r\n\x1a\n"


def _present(v) -> bool:
    return not (v is None or (isinstance(v, float) and np.isnan(v)))


def penguin_records(frame_) -> list[bytes]:
    """One Example per penguin: strings, float32 numbers (packed and not), int64 (a negative one unpacked),
    a 2-vector, a list of strings of varying length and raw bytes; a missing number is an absent
    feature, a missing sex an empty BytesList."""
    records = []
    for i, row in enumerate(frame_.itertuples(index=False)):
        f = {"id": feature("int64", [i]), "species": feature("bytes", [row.species.encode()]),
             "island": feature("bytes", [row.island.encode()]),
             "sex": feature("bytes", [row.sex.encode()] if _present(row.sex) else []),
             "year_offset": feature("int64", [int(row.year) - 2010], packed=False),
             "tags": feature("bytes", [row.island.encode()] + ([row.sex.encode()] if _present(row.sex) else [])),
             "raw": feature("bytes", [PNG + i.to_bytes(2, "little")])}
        if _present(row.bill_length_mm):
            f["bill_length_mm"] = feature("float", [row.bill_length_mm])
            f["bill_depth_mm"] = feature("float", [row.bill_depth_mm])
            f["flipper_length_mm"] = feature("float", [row.flipper_length_mm], packed=False)
            f["body_mass_g"] = feature("int64", [int(row.body_mass_g)])
            f["bill"] = feature("float", [row.bill_length_mm, row.bill_depth_mm])
        records.append(example(f))
    return records


def expected_table(frame_) -> pa.Table:
    """What the reader must give: the penguins' values, float32 where TFRecord stores float, nulls kept."""
    def f32(name):
        return pa.array(frame_[name].to_numpy(np.float32), mask=frame_[name].isna().to_numpy(), type=pa.float32())

    sex = [s if _present(s) else None for s in frame_["sex"]]
    bill = [[a, b] if _present(a) else None for a, b in
            zip(f32("bill_length_mm").to_pylist(), f32("bill_depth_mm").to_pylist())]
    return pa.table({
        "bill": pa.array(bill, type=pa.list_(pa.float32())),  # missing in two records: not fixed-size
        "bill_depth_mm": f32("bill_depth_mm"),
        "bill_length_mm": f32("bill_length_mm"),
        "body_mass_g": pa.array(frame_["body_mass_g"].astype("Int64"), type=pa.int64()),
        "flipper_length_mm": f32("flipper_length_mm"),
        "id": pa.array(np.arange(len(frame_)), type=pa.int64()),
        "island": pa.array(frame_["island"].tolist(), type=pa.string()),
        "raw": pa.array([PNG + i.to_bytes(2, "little") for i in range(len(frame_))], type=pa.binary()),
        "sex": pa.array(sex, type=pa.string()),
        "species": pa.array(frame_["species"].tolist(), type=pa.string()),
        "tags": pa.array([[i] + ([s] if s else []) for i, s in zip(frame_["island"], sex)], type=pa.list_(pa.string())),
        "year_offset": pa.array(frame_["year"] - 2010, type=pa.int64()),
    })


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    from palmerpenguins import load_penguins

    frame_ = load_penguins()
    d = tmp_path_factory.mktemp("tfrecord")
    path = write_tfrecord(d / "input" / "penguins.tfrecord", penguin_records(frame_))
    return {"frame": frame_, "path": path, "dir": path.parent, "expected": expected_table(frame_)}


def input_file(path: Path) -> InputFile:
    fmt, why = format_of(str(path), "auto")
    assert why is None, why
    return InputFile(str(path), path.name, fmt, path.stat().st_size)


def read(path: Path, batch_rows: int = 4096, columns=None) -> list[pa.Table]:
    return list(read_tables(reader_for("tfrecord"), input_file(path), batch_rows, columns=columns))


# --------------------------------------------------------------------------- tests


def test_crc32c_matches_the_standard_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA and crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720, B.4
    assert crc32c(bytes(range(32))) == 0x46DD794E and crc32c(b"") == 0
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    cuts = [(0, 0), (3, 1), (7, 63), (100, 64), (1000, 65), (17, 4000)]
    got = crc32c_many(data, [s for s, _ in cuts], [n for _, n in cuts])
    assert [int(c) for c in got] == [_crc32c(data[s:s + n]) for s, n in cuts]


def test_penguins_read_back_as_typed_columns(penguins):
    tables = read(penguins["path"])
    table = pa.concat_tables(tables)
    expected = penguins["expected"]
    assert table.schema.equals(expected.schema), table.schema
    for name in expected.column_names:
        assert table.column(name).to_pylist() == expected.column(name).to_pylist(), name
    assert table.column("sex").null_count == 11 and table.column("bill_length_mm").null_count == 2
    assert min(table.column("year_offset").to_pylist()) == -3  # a ten-byte varint
    assert reader_for("tfrecord").schema(input_file(penguins["path"]), 0).equals(expected.schema)


def test_batch_rows_and_columns_are_respected(penguins):
    tables = read(penguins["path"], batch_rows=100, columns=["species", "bill"])
    assert [t.num_rows for t in tables] == [100, 100, 100, 44]
    assert all(t.column_names == ["species", "bill"] for t in tables)
    assert pa.concat_tables(tables).column("bill").equals(penguins["expected"].column("bill"))


def test_gzip_compressed_files_are_read(penguins, tmp_path):
    path = tmp_path / "penguins.tfrecord.gz"
    path.write_bytes(gzip.compress(penguins["path"].read_bytes()))
    assert format_of(str(path), "auto") == ("tfrecord", None)
    assert pa.concat_tables(read(path)).equals(pa.concat_tables(read(penguins["path"])))


def test_int64_extremes_vectors_and_variable_lists(tmp_path):
    big = [-(2 ** 63), -1, 2 ** 63 - 1, 0]
    path = write_tfrecord(tmp_path / "ints.tfrecords", [
        example({"n": feature("int64", [v], packed=i % 2 == 0), "v": feature("float", [0.5] * (i + 1)),
                 "w": feature("float", [1.5, -float(i)], packed=i < 2), "k": feature("int64", [i, -i, 7])})
        for i, v in enumerate(big)])
    table = pa.concat_tables(read(path))
    assert table.column("n").to_pylist() == big
    assert table.schema.field("v").type == pa.list_(pa.float32())
    assert table.column("v").to_pylist() == [[0.5] * (i + 1) for i in range(4)]
    assert table.schema.field("w").type == pa.list_(pa.float32(), 2)  # present everywhere, one length
    assert table.column("w").to_pylist() == [[1.5, -float(i)] for i in range(4)]
    assert table.schema.field("k").type == pa.list_(pa.int64(), 3)
    assert table.column("k").to_pylist() == [[i, -i, 7] for i in range(4)]


def _corrupt(path: Path, at: int) -> Path:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    out = path.with_name("corrupt.tfrecord")
    out.write_bytes(bytes(data))
    return out


def test_a_corrupt_or_truncated_file_is_refused_naming_the_file_and_the_offset(penguins, tmp_path):
    records = penguin_records(penguins["frame"].head(10))
    path = write_tfrecord(tmp_path / "ok.tfrecord", records)
    fifth = sum(len(frame(r)) for r in records[:5])
    with pytest.raises(InputError, match=rf"corrupt\.tfrecord.*the record at byte offset {fifth} fails its checksum"):
        read(_corrupt(path, fifth + 12 + 3))  # a byte of the fifth record's data
    with pytest.raises(InputError, match=rf"length of the record at byte offset {fifth} fails its checksum"):
        read(_corrupt(path, fifth + 9))  # its length's checksum
    short = tmp_path / "short.tfrecord"
    short.write_bytes(path.read_bytes()[:-7])
    last = sum(len(frame(r)) for r in records[:-1])
    with pytest.raises(InputError, match=rf"short\.tfrecord.*ends inside the record at byte offset {last}"):
        read(short)


def test_a_feature_that_changes_kind_is_refused_naming_it(tmp_path):
    path = write_tfrecord(tmp_path / "mixed.tfrecord", [
        example({"x": feature("float", [1.0]), "ok": feature("int64", [1])}),
        example({"x": feature("int64", [2]), "ok": feature("int64", [2])})])
    with pytest.raises(InputError, match=r"feature 'x' holds int64 values in the record at byte offset \d+ "
                                         r"but float values in earlier records"):
        read(path)


def test_a_record_that_is_no_example_is_refused(tmp_path):
    path = write_tfrecord(tmp_path / "junk.tfrecord", [example({"x": feature("int64", [1])}), b"\x0a\xff"])
    with pytest.raises(InputError, match=r"record at byte offset \d+ is not a tf\.train\.Example"):
        read(path)


def test_sanitize_run_publishes_every_tfrecord_row(penguins, tmp_path):
    out = tmp_path / "out"
    code = run_cli("run", "--input", penguins["dir"], "--output", out, "--label-column", "species",
                   "--id-column", "id", "-q")
    assert code == 0
    manifest = load_json(out / "manifest.json")
    shards = sorted((out / "clean").glob("*.parquet")) + sorted((out / "quarantine").glob("*.parquet"))
    expected = penguins["expected"]
    published = pa.concat_tables([pq.read_table(p, columns=expected.column_names) for p in shards])
    published = published.sort_by("id")
    assert published.num_rows == expected.num_rows
    for name in expected.column_names:
        assert published.column(name).to_pylist() == expected.column(name).to_pylist(), name
    provenance = load_json(out / "provenance.json")
    assert [f["format"] for f in provenance["inputs"]] == ["tfrecord"] and manifest["id_column"] == "id"
    counts = provenance["counts"]
    assert counts["rows_in"] == expected.num_rows == counts["clean"] + counts["quarantined"]
    assert counts["quarantined"] <= 0.02 * expected.num_rows  # the two penguins measured by nobody, and few others
    kinds = {k["name"]: k["kind"] for k in provenance["columns"]["kinds"]}
    assert kinds["island"] == kinds["sex"] == "categorical" and kinds["bill"] == kinds["year_offset"] == "numeric"
