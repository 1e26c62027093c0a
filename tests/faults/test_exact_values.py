"""Fault injection on values as written: what reaches the shards is what the user wrote.

- CSV: a column whose text a type would rewrite (``02134``, ``+5``, `` 7``, ``-0``, ``NA``,
  ``None``, integers beyond float64's or int64's exact range) stays text in the shards (each type
  takes only text it writes back unchanged); only an empty field is null; ids and labels keep
  their text (``00350``, ``01``). A later value that its column's type cannot hold as written
  quarantines its row with the text in the evidence.
- Parquet shards that store a column with different types are unified without loss (float32 and
  float64 -> float64, no rounding) or refused before anything runs, naming the column, both types
  and both files (an int64 id in one shard, ``"00350"`` in another; a label ``"01"`` against 1).
- JSON Lines: nested objects stay structs; a field Arrow cannot hold with one type (an array mixing
  numbers and objects) keeps each value's compact JSON text, never a Python repr; integers beyond
  float64's exact range stay exact; ISO-looking strings stay strings; U+2028 / U+2029 inside a
  string are text, not line ends.
- A feature column holding integers beyond +-2^53 is never a float feature: ignored with reason
  ``inexact-integer`` (kept exact in the shards), refused when named in --feature-columns, and a
  row carrying such a value past planning is quarantined as ``invalid:inexact``; the torch loader
  gives a ManifestError for a column it cannot convert, and reads ``NA`` in a text feature as missing.
- A seeded generator of hostile values round-trips through real runs (CSV, JSON Lines, Parquet
  with drift): every clean and quarantine cell, by record id, is the value written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.settings.config import build_config
from sanitizer.errors import InputError
from sanitizer.beam.plan import make_plan
from sanitizer.data.batch import KEY_COLUMN, FeatureColumn
from sanitizer.data.batch import READ_ISSUE
from sanitizer.data.extract import extract
from sanitizer.io.sources import iter_file_batches
from conftest import load_json, read_dir, run_cli, synthetic_rows

ONLY_OUTLIER = ("detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
                "  backdoor: {enabled: false}\n")
BIG = 2**60 + 1


def _run_only_outlier(tmp_path, root):
    """``sanitize run`` on ``root`` with the outlier detector alone; it must publish with a report."""
    config = tmp_path / "c.yaml"
    config.write_text(ONLY_OUTLIER)
    out = tmp_path / "out"
    assert run_cli("run", "--input", root, "--output", out, "--label-column", "label", "--id-column", "rid",
                   "--config", config, "-q") == 0
    assert (out / "report.html").is_file()
    return out


def plan_for(path: Path, **extra):
    config = build_config({"input": str(path), "output": str(path.parent / "out"), "label_column": "label",
                           **extra})
    return make_plan(config)


def read_all(plan, schema=None) -> pa.Table:
    tables = [t for f in plan.files for t in iter_file_batches(f, 10_000, schema or plan.schema)]
    return pa.concat_tables(tables)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def hostile_csv(path: Path, n: int = 60) -> tuple[Path, list[list[str]]]:
    rid, X, y = synthetic_rows(n, 1)
    codes = ["02134", "+5", " 7", "-0", "NA", "None", "NULL", "N/A", "12345678901234567890", str(BIG),
             "99999999999999999999999", "1e400", "1.50"]
    rows = []
    for i in range(n):
        rows.append([f"{i:05d}", repr(float(X[i, 0])), repr(float(X[i, 1])), codes[i % len(codes)],
                     f"{(i * 7919) % 100000:05d}", str(BIG + (i * 37) % 61), str(10**19 + (i * 37) % 61),
                     ["01", "2", "3"][y[i]]])
    return write_csv(path, ["rid", "a", "b", "code", "zip", "big", "long", "label"], rows), rows


# --------------------------------------------------------------------------- CSV


def test_csv_text_that_a_type_would_rewrite_stays_text(tmp_path):
    path, rows = hostile_csv(tmp_path / "in.csv")
    plan = plan_for(path, id_column="rid")
    types = {f.name: f.type for f in plan.schema}
    assert types["a"] == pa.float64() and types["b"] == pa.float64()
    for name in ("rid", "code", "zip", "long", "label"):
        assert types[name] == pa.string(), name
    assert types["big"] == pa.int64()  # every value an exact integer within int64
    table = read_all(plan)
    assert READ_ISSUE not in table.column_names
    header = ["rid", "a", "b", "code", "zip", "big", "long", "label"]
    for j, name in enumerate(header):
        got = table.column(name).to_pylist()
        for row, value in zip(rows, got):
            if types[name] == pa.string():
                assert value == row[j], (name, row[j], value)
            elif types[name] == pa.int64():
                assert str(value) == row[j]
            else:
                assert value == float(row[j])


@pytest.mark.parametrize("type_,kept,refused", [
    (pa.int64(), ["0", "-7", "9223372036854775807", "-9223372036854775808"],
     ["02134", "+5", " 7", "-0", "1.0", "9223372036854775808", "-9223372036854775809", "NA"]),
    (pa.float64(), ["0", "-0", "1.50", "2.5e-3", "nan", "-Infinity", "9007199254740992", "0.30000000000000004"],
     ["00.5", ".5", "5.", "+1.5", " 1.5", "1e400", "1e-400", "9007199254740993", "None"]),
    (pa.bool_(), ["true", "False", "TRUE"], ["1", "yes", "tRUE"]),
    (pa.date32(), ["2024-02-29"], ["2023-02-29", "2024-1-5", "2024-01-05T00:00:00"]),
])
def test_a_csv_type_takes_only_text_it_writes_back(tmp_path, type_, kept, refused):
    """Column ``ok`` holds only ``kept`` values: it takes the type. Every other column holds the same
    values plus one ``refused`` value: it stays text, every value as written."""
    n = len(kept) + 1
    columns = {"ok": kept + [kept[0]], **{f"r{i}": kept + [r] for i, r in enumerate(refused)},
               "f": [f"{i}.5" for i in range(n)], "label": ["1"] * n}
    path = write_csv(tmp_path / "in.csv", list(columns), [[columns[c][i] for c in columns] for i in range(n)])
    plan = plan_for(path, feature_columns=["f"])
    table = read_all(plan)
    assert plan.schema.field("ok").type == type_
    for i, r in enumerate(refused):
        assert plan.schema.field(f"r{i}").type == pa.string(), r
        assert table.column(f"r{i}").to_pylist() == kept + [r]


def test_csv_big_integers_are_not_features(tmp_path):
    path, _ = hostile_csv(tmp_path / "in.csv")
    plan = plan_for(path, id_column="rid")
    ignored = {c.name: c.reason for c in plan.ignored}
    assert ignored["big"] == ignored["long"] == "inexact-integer"
    assert not {"big", "long"} & {fc.name for fc in plan.features}


def test_a_later_csv_value_its_type_cannot_hold_is_quarantined_as_written(tmp_path):
    path = write_csv(tmp_path / "in.csv", ["rid", "n", "label"],
                     [[str(i), str(i * 3), "1"] for i in range(30)] + [["30", "02134", "1"], ["31", "+5", "1"],
                                                                      ["32", "abc", "1"]])
    plan = plan_for(path, id_column="rid")
    # The plan settles n over the whole file; read it as if only the first rows had been seen.
    schema = pa.schema([pa.field("rid", pa.int64()), pa.field("n", pa.int64()), pa.field("label", pa.int64())])
    table = read_all(plan, schema)
    issues = table.column(READ_ISSUE).to_pylist()
    assert issues[:30] == [None] * 30
    got = [json.loads(issue) for issue in issues[30:]]
    assert [(e["code"], e["value"]) for e in got] == [
        ("invalid:inexact:n", "02134"), ("invalid:inexact:n", "+5"), ("invalid:non_numeric:n", "abc")]
    assert table.column("n").to_pylist()[:30] == [i * 3 for i in range(30)]


# --------------------------------------------------------------------------- Parquet shards that disagree


def test_float32_and_float64_shards_unify_without_rounding(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    rid, X, y = synthetic_rows(200, 2)
    x = X[:, 0] + 1e-9 * np.arange(200)  # not representable in float32
    v = np.stack([x, X[:, 2]], axis=1)

    def vectors(rows, t):
        return pa.FixedSizeListArray.from_arrays(pa.array(v[rows].ravel(), t), 2)

    pq.write_table(pa.table({"rid": rid[:100], "x": pa.array(x[:100], pa.float32()), "b": X[:100, 1],
                             "v": vectors(slice(0, 100), pa.float32()), "label": y[:100]}), root / "a.parquet")
    pq.write_table(pa.table({"rid": rid[100:], "x": x[100:], "b": X[100:, 1],
                             "v": vectors(slice(100, 200), pa.float64()), "label": y[100:]}), root / "b.parquet")
    plan = plan_for(root, id_column="rid")
    assert plan.schema.field("x").type == pa.float64()
    assert plan.schema.field("v").type == pa.list_(pa.float64(), 2)
    table = read_all(plan)
    expected = np.concatenate([x[:100].astype(np.float32).astype(np.float64), x[100:]])
    assert np.array_equal(table.column("x").to_numpy(), expected)
    expected_v = np.concatenate([v[:100].astype(np.float32).astype(np.float64), v[100:]])
    assert np.array_equal(np.array(table.column("v").to_pylist()), expected_v)


@pytest.mark.parametrize("column,first,second,types", [
    ("rid", pa.array(np.arange(100, dtype=np.int64)), pa.array([f"{i:05d}" for i in range(100, 200)]),
     ("int64", "string")),
    ("label", pa.array(np.arange(100) % 2 + 1), pa.array(["01", "02"] * 50), ("int64", "string")),
    ("a", pa.array(np.linspace(0, 1, 100)), pa.array(np.arange(100) + BIG), ("int64", "double")),
])
def test_shards_with_types_no_type_holds_are_refused(tmp_path, capsys, column, first, second, types):
    root = tmp_path / "in"
    root.mkdir()
    rid, X, y = synthetic_rows(200, 3)
    base = {"rid": pa.array(rid), "a": pa.array(X[:, 0]), "label": pa.array(y)}
    for name, part, rows in (("a.parquet", first, slice(0, 100)), ("b.parquet", second, slice(100, 200))):
        cols = {k: v[rows] for k, v in base.items()}
        cols[column] = part
        pq.write_table(pa.table(cols), root / name)
    out = tmp_path / "out"
    assert run_cli("run", "--input", root, "--output", out, "--label-column", "label", "--id-column", "rid",
                   "-q") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert repr(column) in err and all(t in err for t in types) and "b.parquet" in err
    assert not out.exists() or not (out / "manifest.json").exists()


# --------------------------------------------------------------------------- JSON Lines


def test_jsonl_values_stay_as_written(tmp_path):
    rows = []
    for i in range(40):
        rows.append({
            "rid": f"{i:05d}", "a": i * 0.5, "label": ["01", "2"][i % 2],
            "obj": {"x": [i, i + 1], "y": f"s{i}"},
            "mixed": [i, {"y": 2}] if i % 2 else [i],
            "huge": 123456789012345678901234567890 + i,
            "wide": BIG + i if i % 2 else i + 0.5,
            "when": "2024-01-05" if i % 2 else "2024-01-06 10:00:00",
            "text": "line\u2028sep\u2029para",
        })
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    plan = plan_for(path, id_column="rid")
    table = read_all(plan)
    assert pa.types.is_struct(plan.schema.field("obj").type)
    assert table.column("obj").to_pylist() == [r["obj"] for r in rows]
    for name in ("mixed", "huge", "wide"):
        assert plan.schema.field(name).type == pa.string(), name
        assert [json.loads(v) for v in table.column(name).to_pylist()] == [r[name] for r in rows], name
    assert table.column("mixed").to_pylist()[1] == '[1,{"y":2}]'
    for name in ("rid", "label", "when", "text"):
        assert table.column(name).to_pylist() == [r[name] for r in rows], name


def test_jsonl_with_line_separators_inside_strings_is_read(tmp_path):
    lines = [json.dumps({"rid": i, "a": float(i), "note": "x\u2028y" if i % 2 else i, "label": i % 2},
                        ensure_ascii=False) for i in range(30)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    plan = plan_for(path, id_column="rid")
    notes = read_all(plan).column("note").to_pylist()
    assert notes == ["x\u2028y" if i % 2 else str(i) for i in range(30)]


# --------------------------------------------------------------------------- integers beyond float64


def test_a_feature_value_beyond_float64_quarantines_its_row():
    n = 6
    table = pa.table({"big": pa.array([1, 2, BIG, 4, -BIG, 6], pa.int64()), "label": pa.array(["a"] * n),
                      "rid": pa.array(np.arange(n)), KEY_COLUMN: pa.array(np.arange(n, dtype=np.uint64))})
    ex = extract(table, [FeatureColumn("big", 1)], "label", "rid")
    assert ex.checks.valid.tolist() == [True, True, False, True, False, True]
    codes = {code: mask.tolist() for code, mask, _ in ex.checks.issues}
    assert codes["invalid:inexact:big"] == [False, False, True, False, True, False]


def test_a_long_integer_written_in_a_text_feature_quarantines_its_row():
    n = 5
    table = pa.table({"t": pa.array(["1.5", "12345678901234567890", "2", "1e30", "-9007199254740993"]),
                      "label": pa.array(["a"] * n), "rid": pa.array(np.arange(n)),
                      KEY_COLUMN: pa.array(np.arange(n, dtype=np.uint64))})
    ex = extract(table, [FeatureColumn("t", 1, coerce=True)], "label", "rid")
    assert ex.checks.valid.tolist() == [True, False, True, True, False]


def _big_parquet(root: Path, stats: bool = True) -> Path:
    root.mkdir()
    rid, X, y = synthetic_rows(240, 5)
    big = np.arange(240, dtype=np.int64) * 13 % 97
    big[234:] += BIG  # only in the second shard
    for name, rows in (("a.parquet", slice(0, 120)), ("b.parquet", slice(120, 240))):
        pq.write_table(pa.table({"rid": rid[rows], "a": X[rows, 0], "b": X[rows, 1], "c": X[rows, 2],
                                 "big": big[rows], "label": y[rows]}), root / name, write_statistics=stats)
    return root


@pytest.mark.parametrize("stats", [True, False])
def test_an_integer_column_beyond_float64_in_a_later_shard_is_never_a_float_feature(tmp_path, stats):
    """With Parquet statistics the plan sees the column's range: not a feature. Without them, the
    rows past planning that hold such a value are quarantined, the value unchanged."""
    root = _big_parquet(tmp_path / "in", stats)
    out = _run_only_outlier(tmp_path, root)
    config = tmp_path / "c.yaml"  # the outlier-only config that run used
    ignored = {c["name"]: c for c in load_json(out / "provenance.json")["columns"]["ignored"]}
    if stats:
        assert ignored["big"]["reason"] == "inexact-integer" and "2^53" in ignored["big"]["detail"]
    else:
        assert "big" not in ignored
        q = read_dir(out / "quarantine")
        held = {r for r, codes in zip(q.column("rid").to_pylist(), q.column("sanitizer_reason_codes").to_pylist())
                if "invalid:inexact:big" in codes}
        assert held == set(range(234, 240))
        assert not set(read_dir(out / "clean").column("rid").to_pylist()) & held
    tables = [read_dir(out / "clean")] + ([read_dir(out / "quarantine")] if any((out / "quarantine").glob("*.parquet"))
                                          else [])
    got = {}
    for t in tables:
        got.update(zip(t.column("rid").to_pylist(), t.column("big").to_pylist()))
    expected = pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("*.parquet"))])
    assert got == dict(zip(expected.column("rid").to_pylist(), expected.column("big").to_pylist()))

    if stats:
        refused = tmp_path / "refused"
        assert run_cli("run", "--input", root, "--output", refused, "--label-column", "label", "--id-column",
                       "rid", "--feature-columns", "a,big", "--config", config, "-q") == 2


def test_the_torch_loader_refuses_an_integer_feature_it_cannot_convert():
    from sanitizer.training.shards import ManifestError
    from sanitizer.training.values import to_float_matrix

    with pytest.raises(ManifestError, match="'big'"):
        to_float_matrix(pa.chunked_array([pa.array([1, BIG], pa.int64())]), "big", 1)
    with pytest.raises(ManifestError, match="'v'"):
        to_float_matrix(pa.chunked_array([pa.array([["1", "abc"]], pa.list_(pa.string()))]), "v", 2)
    # A text feature keeps NA as written in the shards; the loader reads it as a missing value.
    text = pa.chunked_array([pa.array(["1.5", "NA", " 2"])])
    with pytest.raises(ManifestError, match="missing"):
        to_float_matrix(text, "t", 1)
    assert to_float_matrix(text, "t", 1, fill=0.0).ravel().tolist() == [1.5, 0.0, 2.0]


# --------------------------------------------------------------------------- hostile values through real runs

HOSTILE_TEXT = ["plain", "02134", "00350", "+5", " 7 ", "-0", "NA", "None", "NULL", "null", "nan", "N/A",
                "#N/A", "1e400", "12345678901234567890", "a,b", 'say "hi"', "tab\there", "\u00e9\u00e8",
                "\u2028", "x\u2029y", "\U0001f600", "<script>", "'quoted'", "TRUE", "2024-01-05"]


def _hostile_rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    rid, X, y = synthetic_rows(n, seed)
    rows = []
    for i in range(n):
        rows.append({
            "rid": f"{i:05d}", "a": float(X[i, 0]), "b": float(X[i, 1]), "c": float(X[i, 2]),
            "label": ["01", "2", "3"][y[i]],
            "text": HOSTILE_TEXT[int(rng.integers(len(HOSTILE_TEXT)))],
            "code": HOSTILE_TEXT[int(rng.integers(14))],
            "big": int(rng.choice([BIG + i, 10**19 + i, i])),
        })
    return rows


def _published(out: Path) -> dict:
    tables = [read_dir(out / "clean")]
    if any((out / "quarantine").glob("*.parquet")):
        tables.append(read_dir(out / "quarantine"))
    cells = {}
    for t in tables:
        for row in t.to_pylist():
            cells[row["rid"]] = row
    return cells


def _write_hostile(fmt: str, root: Path, rows: list[dict]) -> None:
    root.mkdir()
    if fmt == "csv":
        names = list(rows[0])
        write_csv(root / "in.csv", names, [[repr(r[k]) if isinstance(r[k], float) else str(r[k]) for k in names]
                                           for r in rows])
    elif fmt == "jsonl":
        (root / "in.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                                       encoding="utf-8")
    else:  # Parquet, two shards whose types differ: a is float32 in the first, float64 in the second
        half = len(rows) // 2
        for name, part, a_type in (("a.parquet", rows[:half], pa.float32()), ("b.parquet", rows[half:], pa.float64())):
            cols = {k: [r[k] for r in part] for k in rows[0]}
            table = pa.table({**{k: v for k, v in cols.items() if k not in ("a", "big")},
                              "a": pa.array(cols["a"], a_type), "big": pa.array(cols["big"], pa.uint64())})
            pq.write_table(table, root / name)


@pytest.mark.parametrize("fmt,seed", [("csv", 11), ("jsonl", 12), ("parquet", 13)])
def test_hostile_values_round_trip_through_a_run(tmp_path, fmt, seed):
    rows = _hostile_rows(150, seed)
    if fmt == "parquet":
        for r in rows[:75]:
            r["a"] = float(np.float32(r["a"]))  # what the float32 shard holds
    root = tmp_path / "in"
    _write_hostile(fmt, root, rows)
    out = _run_only_outlier(tmp_path, root)
    cells = _published(out)
    assert sorted(cells) == sorted(r["rid"] for r in rows)
    for r in rows:
        got = cells[r["rid"]]
        for name, value in r.items():
            cell = got[name]
            if fmt == "csv" and isinstance(value, str) and value == "":
                assert cell is None
            elif isinstance(value, str) or not isinstance(cell, str):
                assert cell == value and type(cell) is type(value), (name, value, cell)
            else:  # a JSON number kept as its text
                assert json.loads(cell) == value, (name, value, cell)
