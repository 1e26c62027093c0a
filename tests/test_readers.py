"""The reader registry: one module per input format, and everything that names formats reads it.

A test-only format (``.rows``: a header of names, then one row per line, fields split by ``|``)
is registered here and then found by discovery, offered by ``--format``, accepted by the
config and read end to end by ``sanitize run``; the registry is restored afterwards.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import load_json, read_dir, run_cli, synthetic_rows

from sanitizer.errors import ConfigError, InputError
from sanitizer.io import readers
from sanitizer.io.discover import survey
from sanitizer.io.input_rules import COMPRESSIONS
from sanitizer.io.readers import FORMAT_CHOICES, format_of, reader_for, register_reader, unregister_reader
from sanitizer.io.readers.base import Reader, rebatch
from sanitizer.settings.config import build_config

REPO = Path(__file__).resolve().parents[1]
BUILT_IN = ("parquet", "csv", "jsonl", "tfrecord")


class RowsReader(Reader):
    """``.rows``: the first line names the columns, each further line is one row; fields split by ``|``,
    numbers read as numbers (int64 where every value is an integer), anything else as text."""

    name = "rows"
    title = "Rows"
    extensions = (".rows",)

    def read(self, fh, f, batch_rows, split, columns):
        lines = [line for line in fh.read().decode("utf-8").splitlines() if line.strip()]
        names = [n.strip() for n in lines[0].split("|")]
        cells = [[v.strip() for v in line.split("|")] for line in lines[1:]]
        table = pa.table({name: _typed([row[i] for row in cells]) for i, name in enumerate(names)})
        return rebatch(table.to_batches(), batch_rows, columns)


def _typed(values: list[str]) -> pa.Array:
    try:
        return pa.array([int(v) for v in values], type=pa.int64())
    except ValueError:
        pass
    try:
        return pa.array([float(v) for v in values], type=pa.float64())
    except ValueError:
        return pa.array(values, type=pa.string())


@pytest.fixture
def rows_format():
    reader = register_reader(RowsReader())
    try:
        yield reader
    finally:
        unregister_reader("rows")


def write_rows_file(path: Path, first: int, n: int, outliers: int) -> None:
    rid, X, label = synthetic_rows(n, seed=first)
    X = X.copy()
    X[:outliers] += 60.0
    lines = ["rid | a | b | c | label"]
    lines += [f"{first + int(r)} | {x[0]!r} | {x[1]!r} | {x[2]!r} | {int(y)}" for r, x, y in zip(rid, X.tolist(), label)]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- the registry


def test_the_built_in_formats_are_registered_in_order():
    assert readers.format_names() == BUILT_IN
    assert list(FORMAT_CHOICES) == ["auto", *BUILT_IN]
    assert readers.extensions_named() == ".parquet, .csv, .jsonl or .tfrecord"
    assert readers.format_titles() == "Parquet, CSV, JSON Lines or TFRecord"
    for reader in readers.readers():
        assert reader is reader_for(reader.name)
        assert reader.extensions and all(e.startswith(".") and e == e.lower() for e in reader.extensions)


@pytest.mark.parametrize("reader", readers.BUILT_IN, ids=lambda r: r.name)
def test_each_extension_of_a_reader_is_read_as_its_format(reader):
    for ext in reader.extensions:
        assert format_of(f"data/part-0{ext}", "auto") == (reader.name, None)
        assert format_of(f"data/PART-0{ext.upper()}", "auto") == (reader.name, None)
        for suffix in COMPRESSIONS:
            fmt, why = format_of(f"data/part-0{ext}{suffix}", "auto")
            if reader.compressed:
                assert (fmt, why) == (reader.name, None)
            else:
                assert fmt is None and why.startswith(f"compressed {reader.title} (")
        other = next(r.name for r in readers.readers() if r.name != reader.name)
        assert format_of(f"part-0{ext}", other) == (None, f"its extension says {reader.name}, but --format {other} "
                                                          "was given")
    assert format_of("notes.txt", reader.name) == (reader.name, None)  # named by --format


def test_a_name_or_extension_already_taken_is_refused():
    class Again(RowsReader):
        name = "csv"

    class Steals(RowsReader):
        extensions = (".rows", ".pq")

    class Compressed(RowsReader):
        extensions = (".gz",)

    for reader in (Again(), Steals(), Compressed()):
        with pytest.raises(ValueError, match="already"):
            register_reader(reader)
    assert readers.format_names() == BUILT_IN and format_of("x.rows", "auto") == (None, "no known format")


def test_run_and_profile_offer_the_registered_formats():
    from sanitizer.cli.main import _run_parser

    parser = argparse.ArgumentParser(prog="sanitize")
    run = _run_parser(parser.add_subparsers(dest="command"))
    choices = next(a.choices for a in run._actions if "--format" in a.option_strings)
    assert list(choices) == ["auto", *BUILT_IN]
    for fmt in choices:
        assert build_config({"format": fmt}).format == fmt
    with pytest.raises(ConfigError, match=r"format must be one of auto, parquet, csv, jsonl, tfrecord, got 'xlsx'"):
        build_config({"format": "xlsx"})


def test_the_dataflow_template_admits_exactly_the_registered_formats():
    """docker/metadata.json is a static file: this keeps its format parameter in step with the registry."""
    metadata = json.loads((REPO / "docker" / "metadata.json").read_text())
    param = next(p for p in metadata["parameters"] if p["name"] == "format")
    regex = re.compile(param["regexes"][0])
    assert all(regex.search(value) for value in FORMAT_CHOICES)
    assert not regex.search("rows") and not regex.search("xlsx")
    assert all(name in param["helpText"] for name in BUILT_IN)


def test_no_module_outside_the_readers_branches_on_a_format_name():
    """What a format means is said by its reader's attributes, not by ``format == "parquet"`` elsewhere."""
    branch = re.compile(r"""(format|fmt)\s*(==|!=|in)\s*\(?["'](parquet|csv|jsonl|tfrecord)["']""")
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "sanitizer").rglob("*.py")
                 if "readers" not in p.parts and branch.search(p.read_text())]
    assert offenders == []


# --------------------------------------------------------------------------- a new format is one module


def test_a_registered_format_is_discovered_offered_and_read_end_to_end(rows_format, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    write_rows_file(inp / "part-0.rows", first=0, n=240, outliers=4)
    write_rows_file(inp / "part-1.rows", first=1000, n=240, outliers=0)
    (inp / "_SUCCESS").write_text("")

    found = survey(str(inp))
    assert [(f.relpath, f.format) for f in found.files] == [("part-0.rows", "rows"), ("part-1.rows", "rows")]
    assert [s.relpath for s in found.skipped] == ["_SUCCESS"]
    assert "rows" in FORMAT_CHOICES and build_config({"format": "rows"}).format == "rows"
    (inp / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"--format parquet\|csv\|jsonl\|tfrecord\|rows "):
        survey(str(inp))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"matched no \.parquet, \.csv, \.jsonl, \.tfrecord or \.rows files"):
        survey(str(tmp_path / "other"))

    out = tmp_path / "out"
    rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "--id-column", "rid",
                 "--format", "rows", "--ignore", "notes.txt", "-q")
    assert rc == 0
    manifest = load_json(out / "manifest.json")
    provenance = load_json(out / "provenance.json")
    assert [(i["relpath"], i["format"], i["rows"]) for i in provenance["inputs"]] == [
        ("part-0.rows", "rows", 240), ("part-1.rows", "rows", 240)]
    assert [s["relpath"] for s in provenance["skipped_inputs"]] == ["_SUCCESS", "notes.txt"]
    clean = read_dir(out / "clean")
    quarantine = read_dir(out / "quarantine")
    assert manifest["clean"]["rows"] == clean.num_rows and clean.num_rows + quarantine.num_rows == 480
    assert {0, 1, 2, 3} <= set(quarantine.column("rid").to_pylist())
    assert clean.schema.field("rid").type == pa.int64() and clean.schema.field("a").type == pa.float64()
    assert np.isin(np.arange(1000, 1240), clean.column("rid").to_numpy()).mean() > 0.95


def test_the_registry_is_as_it_was_after_a_test_format(rows_format):
    assert readers.format_names() == (*BUILT_IN, "rows")
    unregister_reader("rows")
    assert readers.format_names() == BUILT_IN
    assert format_of("a.rows", "auto") == (None, "no known format")
    assert list(FORMAT_CHOICES) == ["auto", *BUILT_IN]
    register_reader(RowsReader())  # for the fixture to remove
