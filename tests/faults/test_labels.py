"""Fault injection: labels and ids that cannot name a class or a record, and ``sanitize profile`` on them.

Issue 30, case 8 (label half): a label or id column of lists, structs or maps, of raw bytes, or of
Parquet text that is not UTF-8 gave a traceback in the middle of the pipeline (``dictionary_encode``
has no kernel for a list; "Invalid UTF8 payload"); ``sanitize profile`` exited 1 with a traceback on
list labels and on integers beyond float precision, and wrote ``-Infinity``/``NaN`` (not JSON) for
values near float64's limit. Now planning refuses such a label or id column naming the column and its
type (the whole column of every Parquet file is checked for UTF-8), and ``profile`` either refuses
the same way or writes a suite of finite numbers its own data passes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from sanitizer.settings.config import build_config
from sanitizer.errors import InputError

N = 90


def _not_utf8(values: list[bytes]) -> pa.Array:
    """A string array holding the given bytes as they are (Parquet stores them without checking)."""
    raw = pa.array(values, type=pa.binary())
    return pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())


HOSTILE = {
    "list": lambda: pa.array([[i % 3] for i in range(N)]),
    "struct": lambda: pa.array([{"k": i % 3} for i in range(N)]),
    "map": lambda: pa.array([[("k", i % 3)] for i in range(N)], type=pa.map_(pa.string(), pa.int64())),
    "binary": lambda: pa.array([b"\xff" + bytes([48 + i % 3]) for i in range(N)], type=pa.binary()),
    "not-utf8": lambda: _not_utf8([b"\xff\xfe" + bytes([48 + i % 3]) for i in range(N)]),
}


def _table(**columns) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({"a": rng.normal(size=N), "b": rng.normal(size=N), **columns})


def _plan(path, tmp_path, **extra):
    from sanitizer.beam.plan import make_plan

    return make_plan(build_config({"input": str(path), "output": str(tmp_path / "out"), "label_column": "label",
                                   **extra}))


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_label_that_cannot_name_a_class_is_refused_at_planning(kind, tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(_table(label=HOSTILE[kind]()), path)
    with pytest.raises(InputError, match=r"^label column 'label' ") as refused:
        _plan(path, tmp_path)
    message = str(refused.value)
    assert ("not valid UTF-8" in message) if kind == "not-utf8" else ("has type" in message), message
    assert "--label-column" in message, message


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_an_id_that_cannot_name_a_record_is_refused_at_planning(kind, tmp_path):
    ids = {"list": lambda: pa.array([[i] for i in range(N)]), "struct": lambda: pa.array([{"k": i} for i in range(N)]),
           "map": lambda: pa.array([[("k", i)] for i in range(N)], type=pa.map_(pa.string(), pa.int64())),
           "binary": lambda: pa.array([b"\xff%d" % i for i in range(N)], type=pa.binary()),
           "not-utf8": lambda: _not_utf8([b"\xff%d" % i for i in range(N)])}[kind]
    path = tmp_path / "in.parquet"
    pq.write_table(_table(rid=ids(), label=pa.array(np.arange(N) % 3)), path)
    with pytest.raises(InputError, match=r"^id column 'rid' ") as refused:
        _plan(path, tmp_path, id_column="rid")
    assert "--id-column" in str(refused.value)


def test_bytes_that_are_not_utf8_deep_in_a_later_file_are_refused_before_the_run(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = pa.array([str(i % 3) for i in range(N)])
    pq.write_table(_table(label=good), folder / "part-0.parquet")
    late = _not_utf8([str(i % 3).encode() for i in range(N - 1)] + [b"\xc3\x28"])
    pq.write_table(_table(label=late), folder / "part-1.parquet", row_group_size=30)
    out = tmp_path / "out"
    rc = run_cli("run", "--input", folder, "--output", out, "--label-column", "label", "-q")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error: label column 'label' in ") and "part-1.parquet" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_profile_refuses_a_list_label_in_one_line(tmp_path, capsys):
    path = tmp_path / "in.parquet"
    pq.write_table(_table(label=HOSTILE["list"]()), path)
    suite = tmp_path / "suite.json"
    rc = run_cli("profile", "--input", path, "--label-column", "label", "--output", suite)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error: label column 'label' has type list") and "Traceback" not in err, err
    assert not suite.exists()


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("column", [
    pa.array([2**62 if i % 2 else -(2**62) for i in range(N)], type=pa.int64()),  # beyond float precision
    pa.array([2**63 + 5 if i % 2 else 0 for i in range(N)], type=pa.uint64()),  # beyond int64
    pa.array([1e308 if i % 2 else -1e308 for i in range(N)]),  # sums and squares overflow float64
], ids=["int64-2^62", "uint64-2^63", "float-1e308"])
def test_profile_writes_a_suite_of_finite_numbers_on_huge_values(column, tmp_path, capsys):
    path = tmp_path / "in.parquet"
    pq.write_table(_table(big=column, label=pa.array(np.arange(N) % 3)), path)
    suite_path = tmp_path / "suite.json"
    rc = run_cli("profile", "--input", path, "--label-column", "label", "--output", suite_path)
    err = capsys.readouterr().err
    assert rc == 0, err
    suite = _strict(suite_path.read_text())
    values = column.to_pylist()
    for e in suite["expectations"]:
        for key in ("min_value", "max_value"):
            bound = e["kwargs"].get(key)
            assert bound is None or math.isfinite(bound), e
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "big":
            assert e["kwargs"]["min_value"] <= min(values) and max(values) <= e["kwargs"]["max_value"], e


def test_any_text_column_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    """Not only the label: planning reads every text column of the first rows (numbers in text, ids)."""
    path = tmp_path / "in.parquet"
    pq.write_table(_table(note=_not_utf8([b"\xffnote"] * N), label=pa.array(np.arange(N) % 3)), path)
    rc = run_cli("run", "--input", path, "--output", tmp_path / "out", "--label-column", "label", "-q")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error: text column 'note' in ") and "not valid UTF-8" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
