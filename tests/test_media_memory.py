"""What keeps a run's memory flat as the data grows: batches weighed by their decoded pixels too, the
sample handed to the fit once and described by a few numbers afterwards, images embedded a few thousand
at a time, and one copy of the rows a sample keeps."""

from __future__ import annotations

import io

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that
from conftest import load_json, write_rows
from PIL import Image

from sanitizer.beam import Sanitize
from sanitizer.beam.allocator import release_freed_memory
from sanitizer.beam.fit import SampleFn
from sanitizer.beam.media import IMAGE_ROWS, with_media
from sanitizer.beam.plan import BATCH_BYTES, batch_rows_for, decoded_row_bytes, make_plan
from sanitizer.beam.sample import ClassAwareSampler
from sanitizer.data.batch import IMAGE, NUMERIC, Batch, mix64
from sanitizer.settings.config import build_config


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def _image_file(path, rows: int = 120, side: int = 24):
    """Hugging Face image layout (struct<bytes, path>), two classes, noise images."""
    rng = np.random.default_rng(0)
    data = [_png(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(rows)]
    image = pa.StructArray.from_arrays([pa.array(data, pa.binary()), pa.array([None] * rows, pa.string())],
                                       names=["bytes", "path"])
    pq.write_table(pa.table({"image": image, "label": [str(i % 2) for i in range(rows)]}), path)
    return path


def test_a_batch_of_images_is_weighed_with_its_decoded_pixels(tmp_path):
    assert decoded_row_bytes(0, 32) == 0
    assert decoded_row_bytes(2, 32) == 2 * 32 * 32 * 3 * 5  # a byte per channel decoded, four as float32
    table = pa.table({"image": [bytes(2_400)] * 50, "label": ["a"] * 50})
    read_only = batch_rows_for(65_536, table)
    weighed = batch_rows_for(65_536, table, decoded_row_bytes(1, 32))
    assert weighed < read_only / 4
    assert weighed * (table.nbytes / 50 + decoded_row_bytes(1, 32)) <= BATCH_BYTES
    assert batch_rows_for(65_536, pa.table({"x": [1.0] * 50}), 0) == 65_536

    path = _image_file(tmp_path / "images.parquet")
    for size in (16, 64):
        plan = make_plan(build_config({"input": str(path), "output": str(tmp_path / "out"), "label_column": "label",
                                       "media": {"image_size": size}}))
        first = pq.read_table(path).slice(0, 2048)
        assert plan.batch_rows == batch_rows_for(65_536, first, decoded_row_bytes(1, size))
    assert plan.batch_rows < batch_rows_for(65_536, first)


def _batch(start: int, n: int, rng) -> Batch:
    keys = mix64(np.arange(start, start + n, dtype=np.uint64))
    labels = np.array([None if i % 41 == 0 else str(int(rng.integers(0, 4))) for i in range(n)], dtype=object)
    return Batch(features={NUMERIC: rng.normal(size=(n, 2)),
                           IMAGE: rng.integers(0, 256, (n, 1, 4, 4, 3), dtype=np.uint8)},
                 labels=labels, keys=keys, ids=np.array([f"r{i}" for i in range(start, start + n)], dtype=object),
                 feature_names=("a", "b"), columns={IMAGE: ("image",)})


def test_taking_rows_from_parts_equals_concatenating_them_then_taking():
    rng = np.random.default_rng(1)
    parts = [_batch(0, 30, rng), _batch(30, 0, rng), _batch(30, 17, rng), _batch(47, 5, rng)]
    rows = rng.permutation(52)[:40]
    got, want = Batch.take_from(parts, rows), Batch.concat(parts).take(rows)
    assert list(got.ids) == list(want.ids) and list(got.labels) == list(want.labels)
    assert np.array_equal(got.keys, want.keys)
    for kind in (NUMERIC, IMAGE):
        assert np.array_equal(got.features[kind], want.features[kind]) and got.features[kind].dtype == want.features[kind].dtype
    assert got.columns == want.columns and got.feature_names == want.feature_names


def test_the_sample_keeps_the_rows_and_order_it_defines_from_many_parts():
    """Bottom-``size`` by priority plus each class's ``min_per_class``, ordered by (priority, key), whether
    the rows arrive in one part or many, merged in any grouping."""
    from sanitizer.data.batch import uniform01

    rng = np.random.default_rng(2)
    batches = [_batch(a, n, rng) for a, n in ((0, 120), (120, 400), (520, 33), (553, 900), (1453, 260))]
    whole = Batch.concat(batches)
    for size, per_class in ((50, 5), (137, 3), (5_000, 50)):
        sampler = ClassAwareSampler(size=size, min_per_class=per_class, seed=3, widths={NUMERIC: 2, IMAGE: (1, 4, 4, 3)},
                                    columns={IMAGE: ("image",)})
        accs = []
        for group in ((0, 1), (2, 3), (4,)):
            acc = sampler.create()
            for g in group:
                acc = sampler.add(acc, batches[g])
            accs.append(acc)
        got = sampler.extract(sampler.merge([sampler.merge(accs[:2]), accs[2]]))
        one = sampler.extract(sampler.add(sampler.create(), whole))
        priority = uniform01(whole.keys, 3)
        keep = np.zeros(whole.n, dtype=bool)
        keep[np.argsort(priority)[:size]] = True
        for label in set(whole.labels):
            rows = np.flatnonzero(whole.labels == label)
            keep[rows[np.argsort(priority[rows])[:per_class]]] = True
        rows = np.flatnonzero(keep)
        want = whole.take(rows[np.lexsort((whole.keys[rows], priority[rows]))])
        assert list(got.ids) == list(one.ids) == list(want.ids), size
        assert np.array_equal(got.features[IMAGE], want.features[IMAGE])


def test_a_settled_accumulator_hands_its_rows_to_the_fit_without_a_copy():
    """What a worker sends (``compact``: one part in the sample's order) is what the last merge extracts, the
    same arrays; the rows and order are those of the unsettled accumulator."""
    rng = np.random.default_rng(4)
    fn_sampler = ClassAwareSampler(size=10_000, min_per_class=5, seed=1, widths={NUMERIC: 2, IMAGE: (1, 4, 4, 3)},
                                   columns={IMAGE: ("image",)})
    acc = fn_sampler.create()
    for a, n in ((0, 300), (300, 250)):
        acc = fn_sampler.add(acc, _batch(a, n, rng))
    want = fn_sampler.extract(acc)
    assert len(acc.parts) == 2
    settled = fn_sampler.settle(acc)
    assert len(settled.parts) == 1
    got = fn_sampler.extract(fn_sampler.merge([fn_sampler.create(), settled]))
    assert list(got.ids) == list(want.ids) and np.array_equal(got.features[IMAGE], want.features[IMAGE])
    assert got.features[IMAGE] is settled.parts[0].batch.features[IMAGE]
    assert not np.shares_memory(want.features[IMAGE], got.features[IMAGE])  # an unsettled one is gathered


class MeanColour:
    """A representation: each image's mean colour (0-1), recording how many images each call embedded."""

    dim = 3

    def __init__(self):
        self.calls: list[int] = []

    def embed(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        self.calls.append(len(values))
        return values.reshape(len(values), -1, 3).mean(axis=1) / 255.0


def test_images_are_embedded_a_few_thousand_at_a_time_with_the_same_vectors():
    rng = np.random.default_rng(3)
    n = 2 * IMAGE_ROWS + 100
    batch = _batch(0, n, rng)
    rep = MeanColour()
    out = with_media(batch, {"image": rep})
    assert rep.calls == [IMAGE_ROWS, IMAGE_ROWS, 100]
    assert out.feature_names[:2] == ("a", "b") and out.feature_names[2:5] == ("image:0", "image:1", "image:2")
    assert np.array_equal(out.X[:, 2:5], MeanColour().embed(batch.features[IMAGE][:, 0], batch.keys))


def _leaf_producers(proto) -> dict[str, str]:
    """PCollection id -> the unique name of the leaf transform that outputs it."""
    return {pc: t.unique_name for t in proto.components.transforms.values() if not t.subtransforms
            for pc in t.outputs.values()}


def _side_inputs(proto) -> list[tuple[str, str]]:
    """(consuming transform, producing transform) of every side input in the graph."""
    producers, out = _leaf_producers(proto), []
    for t in proto.components.transforms.values():
        if t.spec.urn != common_urns.primitives.PAR_DO.urn:
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
        out.extend((t.unique_name, producers[t.inputs[tag]]) for tag in payload.side_inputs)
    return out


def test_the_sample_is_a_main_input_once_and_only_its_description_reaches_the_summary(tmp_path):
    data = write_rows(tmp_path / "data.parquet")
    out = tmp_path / "out"
    with BeamTestPipeline() as p:
        _ = p | Sanitize(input=str(data), output=str(out), label_column="label", id_column="rid", seed=3)
        proto = p.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert not any("Sanitize/Sample/" in n and "InjectDefault" in n for n in names)  # no default: no side input
    sides = _side_inputs(proto)
    assert sides, "the graph has side inputs (the states reach the scoring stage as one)"
    assert not [s for s in sides if "/Sample/" in s[1] or "FitDetectors" in s[1]]
    summarise = next(t for t in proto.components.transforms.values() if t.unique_name == "Sanitize/SummariseFit")
    payload = beam_runner_api_pb2.ParDoPayload.FromString(summarise.spec.payload)
    main = [pc for tag, pc in summarise.inputs.items() if tag not in payload.side_inputs]
    assert [_leaf_producers(proto)[pc] for pc in main] == ["Sanitize/DescribeSample"]
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "succeeded"
    assert provenance["sample"]["rows"] == sum(provenance["sample"]["per_class"].values()) > 200


def test_a_run_that_reads_no_row_still_draws_an_empty_sample(tmp_path):
    plan = make_plan(build_config({"input": str(write_rows(tmp_path / "data.parquet")), "output": str(tmp_path / "o"),
                                   "label_column": "label"}))
    config = build_config({"input": str(tmp_path), "output": str(tmp_path / "o"), "label_column": "label"})

    def check(samples):
        assert len(samples) == 1 and samples[0].n == 0 and samples[0].X.shape == (0, len(plan.feature_names))

    with BeamTestPipeline() as p:
        sample = ((p | "NoTables" >> beam.Create([]), p | "NoRows" >> beam.Create([None])) | beam.Flatten()
                  | beam.CombineGlobally(SampleFn(plan, config)).without_defaults())
        assert_that(sample, check)


def test_freed_memory_is_handed_back_on_glibc():
    assert release_freed_memory() is True  # this machine's Python runs on glibc
