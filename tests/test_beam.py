"""The Beam stages of sanitizer/beam/ (read, fit, score), each in a real TestPipeline."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to
from conftest import write_digits_parquet

from sanitizer.beam.fit import SampleFn, fit_detectors, missing_fill, to_detector_batch
from sanitizer.beam.read import ReadBatches, add_ids
from sanitizer.beam.score import ScoreFn
from sanitizer.runs.record import Counts, DetectorCounts, ReviewCounts
from sanitizer.data.layout import CODES_COLUMN, REASONS_COLUMN, quarantine_schema, score_column
from sanitizer.settings.config import build_config
from sanitizer.detectors import REGISTRY, Skipped
from sanitizer.beam.plan import make_plan
from sanitizer.data.batch import ID_COLUMN, KEY_COLUMN, NUMERIC
from sanitizer.beam.sample import ClassAwareSampler
from sanitizer.simulate import inject_outliers

ROWS_PER_FILE = 300
BATCH_ROWS = 64
NAN_ROW = 10  # in file a
NULL_LABEL_ROW = 20  # in file b


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits):
    """Two Parquet shards of poisoned digits (no id column: ids are generated), a plan and a config."""
    X, y = digits
    X, planted = inject_outliers(X[: 2 * ROWS_PER_FILE], 0.05, seed=3, kind="shift")
    y = y[: 2 * ROWS_PER_FILE].astype(object)
    X[NAN_ROW, 5] = np.nan
    y[ROWS_PER_FILE + NULL_LABEL_ROW] = None
    root = tmp_path_factory.mktemp("beam") / "input"
    for name, lo in (("a.parquet", 0), ("b.parquet", ROWS_PER_FILE)):
        rows = slice(lo, lo + ROWS_PER_FILE)
        write_digits_parquet(root / name, X[rows], y[rows])
    config = build_config(
        {
            "input": str(root),
            "output": str(root.parent / "out"),
            "label_column": "label",
            "seed": 5,
            "sample": {"size": 250, "min_per_class": 12},
            "scoring": {"batch_rows": BATCH_ROWS, "threads": 2},
            # These tests pin the Beam plumbing against direct calls of one detector.
            "detectors": {"label_flip": {"enabled": False}, "feature_collision": {"enabled": False},
                          "backdoor": {"enabled": False}, "duplicates": {"enabled": False}},
        }
    )
    plan = make_plan(config)
    return {"root": root, "config": config, "plan": plan, "planted": planted}


def whole_files(plan):
    """Each input file read in one piece with ids and keys, the way the pipeline assigns them."""
    return [add_ids(pq.read_table(f.path), plan, i, 0) for i, f in enumerate(plan.files)]


def pure_sample(plan, config):
    sampler = ClassAwareSampler(
        size=config.sample.size, min_per_class=config.sample.min_per_class, seed=config.seed,
        widths={NUMERIC: len(plan.feature_names)},
    )
    acc = sampler.create()
    for table in whole_files(plan):
        acc = sampler.add(acc, to_detector_batch(table, plan))
    return sampler.extract(acc)


def matcher(check):
    """Wrap a plain check function so a failed assert surfaces as a Beam assertion."""

    def _match(actual):
        try:
            check(list(actual))
        except AssertionError as exc:
            raise BeamAssertException(str(exc)) from exc

    return _match


def test_plan_sees_two_shards_and_the_pixel_feature(setup):
    plan = setup["plan"]
    assert [f.relpath for f in plan.files] == ["a.parquet", "b.parquet"]
    assert plan.file_rows == {0: ROWS_PER_FILE, 1: ROWS_PER_FILE}
    assert [fc.name for fc in plan.features] == ["pixels"]
    assert plan.features[0].width == 64 and plan.features[0].is_list
    assert plan.id_column is None and plan.id_output == ID_COLUMN


def test_read_batches_yields_arrow_tables_with_ids(setup):
    plan = setup["plan"]
    expected_ids = [f"{name}:{i}" for name in ("a.parquet", "b.parquet") for i in range(ROWS_PER_FILE)]
    expected_keys = [k for t in whole_files(plan) for k in t.column(KEY_COLUMN).to_pylist()]

    def check_tables(tables):
        assert tables, "no batches"
        for t in tables:
            assert isinstance(t, pa.Table), f"element is {type(t).__name__}, not a pyarrow Table"
            assert 0 < t.num_rows <= BATCH_ROWS
            assert t.column_names[: len(plan.schema.names)] == plan.schema.names
            assert ID_COLUMN in t.column_names and KEY_COLUMN in t.column_names
            assert t.schema.field(KEY_COLUMN).type == pa.uint64()
        assert sum(t.num_rows for t in tables) == 2 * ROWS_PER_FILE
        # Ceil(300 / 64) = 5 batches per file.
        assert len(tables) == 2 * -(-ROWS_PER_FILE // BATCH_ROWS)

    with BeamTestPipeline() as p:
        read = p | "Read" >> ReadBatches(plan, count_rows=True)
        batches = read.batches
        assert_that(batches, matcher(check_tables), label="CheckTables")
        ids = batches | "Ids" >> beam.FlatMap(lambda t: t.column(ID_COLUMN).to_pylist())
        assert_that(ids, equal_to(expected_ids), label="CheckIds")
        keys = batches | "Keys" >> beam.FlatMap(lambda t: t.column(KEY_COLUMN).to_pylist())
        assert_that(keys, equal_to(expected_keys), label="CheckKeys")
        assert_that(read.file_rows, equal_to([(0, ROWS_PER_FILE), (1, ROWS_PER_FILE)]), label="CheckFileRows")


def test_read_batches_with_columns_reads_only_those(setup):
    plan = setup["plan"]
    columns = plan.read_columns()
    assert columns == ["pixels", "label"]

    def check(tables):
        assert sum(t.num_rows for t in tables) == 2 * ROWS_PER_FILE
        for t in tables:
            assert isinstance(t, pa.Table)
            assert t.column_names == columns + [ID_COLUMN, KEY_COLUMN]

    with BeamTestPipeline() as p:
        tables = p | "Read" >> ReadBatches(plan, columns=columns)
        assert_that(tables, matcher(check))


def test_sample_combine_equals_pure_sampler(setup):
    plan, config = setup["plan"], setup["config"]
    expected = pure_sample(plan, config)
    # Non-trivial: a real subset of the 598 valid rows, every class at its quota.
    assert config.sample.size <= expected.n < 2 * ROWS_PER_FILE - 2
    for c in set(expected.labels):
        assert (expected.labels == c).sum() >= config.sample.min_per_class
    want = (list(expected.ids), list(expected.keys.tolist()), list(expected.labels), expected.X.tolist())

    def check(samples):
        assert len(samples) == 1
        s = samples[0]
        got = (list(s.ids), list(s.keys.tolist()), list(s.labels), s.X.tolist())
        assert got[0] == want[0], "sampled ids differ from the pure sampler"
        assert got == want

    with BeamTestPipeline() as p:
        sample = (
            p
            | "Read" >> ReadBatches(plan, columns=plan.read_columns())
            | "Sample" >> beam.CombineGlobally(SampleFn(plan, config))
        )
        assert_that(sample, matcher(check))


def test_sample_excludes_invalid_rows(setup):
    plan, config = setup["plan"], setup["config"]
    big = build_config(dict(config.to_dict(), sample={"size": 10_000, "min_per_class": 0}))
    s = pure_sample(plan, big)
    assert s.n == 2 * ROWS_PER_FILE - 2
    assert f"a.parquet:{NAN_ROW}" not in set(s.ids)
    assert f"b.parquet:{NULL_LABEL_ROW}" not in set(s.ids)


@pytest.fixture(scope="module")
def scored(setup):
    """States fitted outside Beam, and the verdicts a direct call of the detector gives."""
    plan, config = setup["plan"], setup["config"]
    sample = pure_sample(plan, config)
    states = fit_detectors(sample, plan, config)
    assert set(states) == {"outlier"} and not isinstance(states["outlier"], Skipped)
    detector = REGISTRY["outlier"]()
    all_ids, quarantined, flagged_ids, invalid_ids = [], set(), set(), set()
    for table in whole_files(plan):
        batch = to_detector_batch(table, plan)
        result = detector.score(batch, states["outlier"])
        ids = table.column(ID_COLUMN).to_pylist()
        all_ids += ids
        invalid_ids |= {ids[i] for i in np.flatnonzero(~batch.checks.valid)}
        flagged_ids |= set(batch.ids[result.flagged].tolist())
    quarantined = invalid_ids | flagged_ids
    return {
        "states": states,
        "fill": missing_fill(sample, plan),
        "all": all_ids,
        "quarantined": quarantined,
        "flagged": flagged_ids,
        "invalid": invalid_ids,
        "clean": [i for i in all_ids if i not in quarantined],
    }


def test_score_fn_splits_clean_quarantine_and_stats(setup, scored):
    plan, config = setup["plan"], setup["config"]
    planted_ids = {f"{'a' if i < ROWS_PER_FILE else 'b'}.parquet:{i % ROWS_PER_FILE}" for i in setup["planted"]}
    assert scored["invalid"] == {f"a.parquet:{NAN_ROW}", f"b.parquet:{NULL_LABEL_ROW}"}
    assert len(scored["flagged"] & planted_ids) >= 0.8 * len(planted_ids)
    n = 2 * ROWS_PER_FILE
    q_schema = quarantine_schema(plan.output_schema, list(REGISTRY))  # every built-in detector has a score column

    def check_clean_tables(tables):
        for t in tables:
            assert isinstance(t, pa.Table)
            assert t.schema.equals(plan.output_schema)

    def check_quarantine_tables(tables):
        assert tables
        for t in tables:
            assert isinstance(t, pa.Table)
            assert t.schema.equals(q_schema)
            for rid, codes, score in zip(
                t.column(ID_COLUMN).to_pylist(), t.column(CODES_COLUMN).to_pylist(),
                t.column(score_column("outlier")).to_pylist(),
            ):
                if rid == f"a.parquet:{NAN_ROW}":
                    assert codes == ["invalid:nan:pixels"] and (score is None or np.isnan(score))
                elif rid == f"b.parquet:{NULL_LABEL_ROW}":
                    assert codes == ["invalid:null:label"]
                else:
                    assert codes == ["outlier"] and score > 1.0  # the outlier score is past its threshold above 1
            assert all(r for r in t.column(REASONS_COLUMN).to_pylist())
            for name in ("label_flip", "feature_collision", "backdoor"):  # off in this config: null, not absent
                if name not in config.enabled_detectors():
                    assert t.column(score_column(name)).null_count == t.num_rows

    def check_stats(totals):
        assert len(totals) == 1
        s = totals[0].to_dict()  # the JSON form provenance.json records
        assert s["rows_in"] == n
        assert s["clean"] + s["quarantined"] == n
        assert s["clean"] == len(scored["clean"])
        assert s["quarantined"] == len(scored["quarantined"])
        assert s["invalid"] == 2
        assert s["reported_kept_clean"] == 0
        assert s["by_reason"]["outlier"] == len(scored["flagged"])
        assert s["by_reason"]["invalid:nan:pixels"] == 1 and s["by_reason"]["invalid:null:label"] == 1
        assert s["by_detector"]["outlier"]["scored"] == n - 2
        assert s["by_detector"]["outlier"]["flagged"] == len(scored["flagged"])
        assert sum(s["by_class"]["rows"].values()) == n
        assert sum(s["by_class"]["quarantined"].values()) == s["quarantined"]

    with BeamTestPipeline() as p:
        states = p | "States" >> beam.Create([scored["states"]])
        batches = p | "Read" >> ReadBatches(plan)
        fill = p | "Fill" >> beam.Create([scored["fill"]])
        media = p | "Media" >> beam.Create([{}])  # no image or text column
        out = batches | "Score" >> beam.ParDo(
            ScoreFn(plan, config), beam.pvalue.AsSingleton(states), beam.pvalue.AsSingleton(fill),
            beam.pvalue.AsSingleton(media),
        ).with_outputs("quarantine", "stats", main="clean")
        clean_ids = out.clean | "CleanIds" >> beam.FlatMap(lambda t: t.column(ID_COLUMN).to_pylist())
        q_ids = out.quarantine | "QuarantineIds" >> beam.FlatMap(lambda t: t.column(ID_COLUMN).to_pylist())
        assert_that(clean_ids, equal_to(scored["clean"]), label="CheckCleanIds")
        assert_that(q_ids, equal_to(sorted(scored["quarantined"])), label="CheckQuarantineIds")
        assert_that(out.clean, matcher(check_clean_tables), label="CheckCleanTables")
        assert_that(out.quarantine, matcher(check_quarantine_tables), label="CheckQuarantineTables")
        stats = out.stats | "CombineStats" >> beam.CombineGlobally(Counts.total)
        assert_that(stats, matcher(check_stats), label="CheckStats")
        n_stats = out.stats | "CountStats" >> beam.combiners.Count.Globally()
        # One stats dict per batch.
        assert_that(n_stats, equal_to([2 * -(-ROWS_PER_FILE // BATCH_ROWS)]), label="CheckStatsPerBatch")


def test_score_fn_with_skipped_detector_keeps_valid_rows_clean(setup, scored):
    plan, config = setup["plan"], setup["config"]
    states = {"outlier": Skipped("test: not enough rows")}
    expected_clean = [i for i in scored["all"] if i not in scored["invalid"]]

    with BeamTestPipeline() as p:
        st = p | "States" >> beam.Create([states])
        fill = p | "Fill" >> beam.Create([scored["fill"]])
        media = p | "Media" >> beam.Create([{}])
        out = (p | "Read" >> ReadBatches(plan)) | "Score" >> beam.ParDo(
            ScoreFn(plan, config), beam.pvalue.AsSingleton(st), beam.pvalue.AsSingleton(fill),
            beam.pvalue.AsSingleton(media),
        ).with_outputs("quarantine", "stats", main="clean")
        clean_ids = out.clean | "CleanIds" >> beam.FlatMap(lambda t: t.column(ID_COLUMN).to_pylist())
        q_ids = out.quarantine | "QuarantineIds" >> beam.FlatMap(lambda t: t.column(ID_COLUMN).to_pylist())
        assert_that(clean_ids, equal_to(expected_clean), label="CheckClean")
        assert_that(q_ids, equal_to(sorted(scored["invalid"])), label="CheckQuarantine")


def test_counts_total_sums_every_field_and_is_associative():
    a = Counts(rows_in=3, clean=2, quarantined=1, by_reason={"x": 1}, class_rows={"0": 3}, class_quarantined={"0": 1},
               by_detector={"outlier": DetectorCounts(scored=3, flagged=1)})
    b = Counts(rows_in=4, clean=3, quarantined=1, invalid=1, by_reason={"x": 2, "y": 1}, class_rows={"0": 1, "1": 3},
               by_detector={"outlier": DetectorCounts(scored=4, flagged=0), "label_flip": DetectorCounts(4, 1, "report")},
               review=ReviewCounts(released_seen=2, overridden_flags={"outlier": 1}))
    total = Counts.total([a, b])
    assert total.rows_in == 7 and total.clean == 5 and total.quarantined == 2 and total.invalid == 1
    assert total.by_reason == {"x": 3, "y": 1}
    assert total.class_rows == {"0": 4, "1": 3} and total.class_quarantined == {"0": 1}
    assert total.by_detector == {"outlier": DetectorCounts(7, 1, "quarantine"), "label_flip": DetectorCounts(4, 1, "report")}
    assert total.review == ReviewCounts(released_seen=2, overridden_flags={"outlier": 1})
    # A combiner may merge partial sums in any grouping; no parts is an all-zero count.
    assert Counts.total([Counts.total([a]), Counts.total([b])]) == total == Counts.total([b, a])
    assert Counts.total([]) == Counts()
    # The inputs are not changed by summing.
    assert a.by_reason == {"x": 1} and a.by_detector["outlier"].scored == 3


def test_threaded_scoring_matches_single_threaded():
    """ScoreFn splits big batches over threads; scores, flags and evidence row numbers must not move."""
    from concurrent.futures import ThreadPoolExecutor

    from sanitizer.beam.score import _score_threaded
    from sanitizer.detectors import Batch
    from sanitizer.data.batch import mix64

    rng = np.random.default_rng(1)
    n = 9000
    labels = np.array([str(i % 3) for i in range(n)], dtype=object)
    X = rng.normal(size=(n, 6)) + np.array([int(c) for c in labels])[:, None] * 3.0
    X, planted = inject_outliers(X, 0.01, seed=1, kind="shift")
    batch = Batch(X, labels, mix64(np.arange(n, dtype=np.uint64)), np.array([f"r{i}" for i in range(n)], dtype=object),
                  tuple(f"f{j}" for j in range(6)))
    detector = REGISTRY["outlier"]()
    state = detector.fit(batch, build_config({}).detectors["outlier"], 0)
    single = detector.score(batch, state)
    assert single.flagged[planted].mean() >= 0.9
    with ThreadPoolExecutor(3) as pool:
        threaded = _score_threaded(detector, batch, state, pool, 3)
    np.testing.assert_array_equal(threaded.score, single.score)
    np.testing.assert_array_equal(threaded.flagged, single.flagged)
    assert threaded.evidence == single.evidence
