"""TFRecord: files of ``tf.train.Example`` records (what TFX and Beam's ``WriteToTFRecord`` write), read
without TensorFlow.

A file is a run of frames: the record's length (uint64, little-endian), the masked CRC32C of those
8 bytes, the record, the masked CRC32C of the record. Both checksums of every frame are verified
(``sanitizer.io.readers.crc32c``); a corrupt or truncated file is refused, naming the file and the byte
offset of the frame. Each record is decoded as a ``tf.train.Example`` by the ``protobuf`` runtime
Apache Beam already installs, from a descriptor built here (no generated TensorFlow code).

Every feature key is one column, typed from the whole file:

* ``int64_list`` -> ``int64``; ``float_list`` -> ``float32`` (the width TFRecord stores; the detectors
  read it as float64); ``bytes_list`` -> ``string`` where every value is UTF-8 (the column-kind
  inference then says categorical, text or id-like), otherwise ``binary`` (images);
* a feature with at most one value in every record is a scalar column, a record with an empty list
  holding null; numbers with the same count n > 1 in every record make a fixed-size list
  (``fixed_size_list<float32>[n]``: a vector feature); any other count, or a vector missing from some
  record, makes a ``list<...>`` column, kept as written (Parquet readers cannot read back a fixed-size
  list holding nulls; the plan still reads a list of constant length as a vector feature);
* the columns are in the order of their keys, sorted; a feature absent from a record is null there;
  a feature holding one kind of list in one record and another kind elsewhere is refused, naming it.

A gzip-compressed file (``part-0.tfrecord.gz``, what ``TFRecordWriter`` with ``GZIP`` writes) is
decompressed as it is read, like the other formats' compressed files. TFRecord has no index, so each
file is one split: shard large data sets into several files. A file is held in memory while it is read.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np
import pyarrow as pa

from sanitizer.errors import InputError
from sanitizer.io.input_rules import open_input
from sanitizer.io.readers.base import READ_ERRORS, Reader, rebatch
from sanitizer.io.readers.crc32c import crc32c_many, masked

HEADER = 12  # uint64 length + uint32 masked CRC of it
FOOTER = 4   # uint32 masked CRC of the data
KINDS = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


class TFRecordReader(Reader):
    name = "tfrecord"
    title = "TFRecord"
    extensions = (".tfrecord", ".tfrecords")
    compressed = True
    declares_types = True  # every record names each feature's kind (bytes, float or int64)
    decodes_text = True    # bytes that are not all UTF-8 make a binary column, never a string one

    def read(self, fh, f, batch_rows, split, columns):
        records = Records(fh.read(), f.path)
        features = scan(records)
        wanted = list(features)
        if columns is not None and all(c in features for c in columns):
            wanted = [c for c in wanted if c in columns]
        types = {key: seen.arrow_type() for key, seen in features.items() if key in wanted}
        for lo in range(0, len(records), batch_rows):
            yield from rebatch([_batch(records, lo, min(lo + batch_rows, len(records)), types)],
                               batch_rows, columns)

    def schema(self, f, scan_bytes):
        """The types of the whole file (TFRecord holds no schema: every record is read once)."""
        try:
            with open_input(f.path) as fh:
                records = Records(fh.read(), f.path)
        except READ_ERRORS as exc:
            raise InputError(f"input file {f.path!r} could not be read as {f.format} ({exc}); "
                             "fix or remove the file and run again") from None
        if not len(records):
            raise InputError(f"input file {f.path!r} has no records; remove it or add data")
        return pa.schema([pa.field(key, seen.arrow_type()) for key, seen in scan(records).items()])


class Records:
    """The frames of one TFRecord file, both checksums of each verified."""

    def __init__(self, data: bytes, path: str):
        self.data, self.path = data, path
        starts, lengths, problem = [], [], None
        pos, size = 0, len(data)
        while pos < size:
            if size - pos < HEADER:
                problem = (pos, f"ends inside the header of the record at byte offset {pos}")
                break
            (length,) = struct.unpack_from("<Q", data, pos)
            if size - pos - HEADER - FOOTER < length:
                problem = (pos, f"ends inside the record at byte offset {pos} (its header says {length} bytes)")
                break
            starts.append(pos + HEADER)
            lengths.append(length)
            pos += HEADER + length + FOOTER
        self.starts = np.asarray(starts, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self._verify(problem)

    def _verify(self, problem) -> None:
        buf = np.frombuffer(self.data, dtype=np.uint8)
        headers = self.starts - HEADER
        first = []
        if len(headers):
            stored = _uint32_at(buf, headers + 8)
            bad = np.flatnonzero(masked(crc32c_many(buf, headers, np.full(len(headers), 8))) != stored)
            if len(bad):
                at = int(headers[bad[0]])
                first.append((at, f"the length of the record at byte offset {at} fails its checksum"))
            stored = _uint32_at(buf, self.starts + self.lengths)
            bad = np.flatnonzero(masked(crc32c_many(buf, self.starts, self.lengths)) != stored)
            if len(bad):
                at = int(headers[bad[0]])
                first.append((at, f"the record at byte offset {at} fails its checksum"))
        if problem is not None:
            first.append(problem)
        if first:
            raise InputError(f"input file {self.path!r} is not a valid TFRecord file: {min(first)[1]}; "
                             "it is corrupt or truncated: rewrite or remove it and run again")

    def __len__(self) -> int:
        return len(self.starts)

    def offset(self, i: int) -> int:
        """The byte offset of record ``i``'s frame."""
        return int(self.starts[i]) - HEADER

    def example(self, i: int):
        """Record ``i`` decoded as a ``tf.train.Example``."""
        from google.protobuf.message import DecodeError

        start = int(self.starts[i])
        message = _example_class()()
        try:
            message.ParseFromString(self.data[start:start + int(self.lengths[i])])
        except DecodeError as exc:
            raise InputError(
                f"input file {self.path!r}: the record at byte offset {self.offset(i)} is not a tf.train.Example "
                f"({exc}); rewrite or remove the file and run again") from None
        return message


def _uint32_at(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    b = buf[offsets[:, None] + np.arange(4)].astype(np.uint32)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)


class Seen:
    """What one feature holds across a file: its kind, the counts of values, whether bytes are all UTF-8."""

    __slots__ = ("kind", "min_count", "max_count", "utf8", "present", "records")

    def __init__(self):
        self.kind: str | None = None
        self.min_count = None
        self.max_count = 0
        self.utf8 = True
        self.present = 0  # records holding the feature with a kind
        self.records = 0  # records in the file

    def arrow_type(self) -> pa.DataType:
        if self.kind is None:
            return pa.null()  # present in records, but never with a kind: no values at all
        value = {"bytes": pa.string() if self.utf8 else pa.binary(), "float": pa.float32(),
                 "int64": pa.int64()}[self.kind]
        if self.max_count <= 1:
            return value
        if self.kind != "bytes" and self.min_count == self.max_count and self.present == self.records:
            return pa.list_(value, self.max_count)
        return pa.list_(value)


def scan(records: Records) -> dict[str, Seen]:
    """Feature key -> what it holds, keys sorted (a record's features are a map: their order means nothing);
    a feature that changes kind is refused."""
    features: dict[str, Seen] = {}
    for i in range(len(records)):
        for key, feature in records.example(i).features.feature.items():
            seen = features.get(key)
            if seen is None:
                seen = features[key] = Seen()
            which = feature.WhichOneof("kind")
            if which is None:
                continue
            kind = KINDS[which]
            if seen.kind is None:
                seen.kind = kind
            elif seen.kind != kind:
                raise InputError(
                    f"input file {records.path!r}: feature {key!r} holds {kind} values in the record at byte offset "
                    f"{records.offset(i)} but {seen.kind} values in earlier records; a feature must keep one kind")
            values = getattr(feature, which).value
            count = len(values)
            seen.present += 1
            seen.min_count = count if seen.min_count is None else min(seen.min_count, count)
            seen.max_count = max(seen.max_count, count)
            if kind == "bytes" and seen.utf8:
                seen.utf8 = all(_is_utf8(v) for v in values)
    for seen in features.values():
        seen.records = len(records)
    return dict(sorted(features.items()))


def _is_utf8(value: bytes) -> bool:
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _batch(records: Records, lo: int, hi: int, types: dict[str, pa.DataType]) -> pa.RecordBatch:
    """Records ``lo`` to ``hi`` as one batch with the file's column ``types``."""
    n = hi - lo
    values: dict[str, list] = {key: [None] * n for key in types}
    scalar = {key for key, t in types.items() if not pa.types.is_list(t) and not pa.types.is_fixed_size_list(t)}
    for row in range(n):
        for key, feature in records.example(lo + row).features.feature.items():
            column = values.get(key)
            which = feature.WhichOneof("kind")
            if column is None or which is None:
                continue
            held = getattr(feature, which).value
            if key in scalar:
                column[row] = held[0] if len(held) else None
            else:
                column[row] = list(held)
    return pa.RecordBatch.from_arrays([pa.array(values[key], type=t) for key, t in types.items()],
                                      names=list(types))


@lru_cache(maxsize=1)
def _example_class():
    """The ``tf.train.Example`` message class, from a descriptor of its wire format (field numbers and
    types as in TensorFlow's example.proto and feature.proto)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="sanitizer_tf_example.proto", package="sanitizer.tf",
                                              syntax="proto3")

    def message(name, *fields, parent=None):
        msg = (parent.nested_type if parent is not None else file.message_type).add(name=name)
        for number, field_name, type_, label, type_name, oneof in fields:
            field = msg.field.add(name=field_name, number=number, type=type_, label=label)
            if type_name:
                field.type_name = type_name
            if oneof is not None:
                field.oneof_index = oneof
        return msg

    repeated, optional = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BytesList", (1, "value", F.TYPE_BYTES, repeated, "", None))
    message("FloatList", (1, "value", F.TYPE_FLOAT, repeated, "", None))
    message("Int64List", (1, "value", F.TYPE_INT64, repeated, "", None))
    feature = message("Feature",
                      (1, "bytes_list", F.TYPE_MESSAGE, optional, ".sanitizer.tf.BytesList", 0),
                      (2, "float_list", F.TYPE_MESSAGE, optional, ".sanitizer.tf.FloatList", 0),
                      (3, "int64_list", F.TYPE_MESSAGE, optional, ".sanitizer.tf.Int64List", 0))
    feature.oneof_decl.add(name="kind")
    features = message("Features",
                       (1, "feature", F.TYPE_MESSAGE, repeated, ".sanitizer.tf.Features.FeatureEntry", None))
    entry = message("FeatureEntry", (1, "key", F.TYPE_STRING, optional, "", None),
                    (2, "value", F.TYPE_MESSAGE, optional, ".sanitizer.tf.Feature", None), parent=features)
    entry.options.map_entry = True
    message("Example", (1, "features", F.TYPE_MESSAGE, optional, ".sanitizer.tf.Features", None))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("sanitizer.tf.Example"))
