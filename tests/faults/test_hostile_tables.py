"""Property: whatever table a user hands in, nothing is lost and nothing escapes.

A seeded loop draws hostile tables - columns mixing numbers and text, values at and beyond float
limits (1e308, 3.5e38, 1e-320, -0.0), NaN and inf, empty strings, ids and labels with terminal
escapes, NUL, right-to-left marks and emoji, duplicate ids, empty files - and writes them as
Parquet, CSV and JSON Lines. Every run, in one process through ``sanitizer.cli.main.main``, must end in
one of two ways:

* exit 0: a manifest, and input rows = clean rows + quarantined rows, counted by reading the
  shards back (and provenance agrees); or
* exit 2 with a ``sanitize: error:`` message,

never an exception escaping ``main`` (exit 1, a traceback), never a lost or invented row.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.cli import main as cli

CASES = 12
SEED = 20_240_610
FORMATS = ("parquet", "csv", "jsonl")
HOSTILE_TEXT = ["\x1b[2J", "a\x00b", "\u202eevil\u202c", "\U0001f600", "", " ", "NaN", "null", "1,5", "é\u0301",
                "<script>", "\t", "0x10", "1e309", "--", "' OR 1=1", "line\nbreak", "cr\r", "TRUE", "-0"]
HOSTILE_NUMBERS = [1e308, -1e308, 3.5e38, -3.5e38, 1e30, 1e-320, -0.0, float("nan"), float("inf"), float("-inf")]
# Fast detectors keep ten runs within seconds each; label_flip still fits on every table it can.
# Hostile tables are mostly broken rows on purpose: the guard is lifted so every run publishes and is counted.
CONFIG = ("detectors:\n  feature_collision: {enabled: false}\n"
          "guard: {max_quarantine_share: 1.0, max_class_quarantine_share: 1.0}\n")


def _labels(rng, n: int) -> list:
    if rng.random() < 0.3:  # numeric labels, some of them NaN
        out = [float(i % 3) if rng.random() > 0.03 else float("nan") for i in range(n)]
    else:
        classes = list(rng.choice(["cat", "\x1b[31mdog", "\u202ebird", "\U0001f41f", "x\x00y", "7", "", "a\nb"],
                                  size=3, replace=False))
        out = [classes[i % 3] for i in range(n)]
    for i in rng.choice(n, size=min(n, rng.integers(0, 4)), replace=False) if n else []:
        out[i] = None
    return out


def _ids(rng, n: int) -> list:
    ids = [f"{rng.choice(HOSTILE_TEXT)}{i}" for i in range(n)]
    duplicates = min(n, int(rng.integers(1, 4))) if rng.random() < 0.3 else 0
    for i in rng.choice(n, size=duplicates, replace=False) if n else []:
        ids[i] = ids[int(rng.integers(0, n))]  # duplicates
    return ids


def _numbers(rng, n: int, hostile_share: float) -> list:
    values = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4)
    out = [float(v) for v in values]
    for i in range(n):
        if rng.random() < hostile_share:
            out[i] = None if rng.random() < 0.2 else float(rng.choice(HOSTILE_NUMBERS))
    return out


def _mixed(rng, n: int) -> list:
    """Mostly numbers, some text: a column a spreadsheet export made."""
    out = []
    for v in _numbers(rng, n, 0.05):
        r = rng.random()
        out.append(str(rng.choice(HOSTILE_TEXT)) if r < 0.1 else str(v) if r < 0.2 else True if r < 0.22 else v)
    return out


def hostile_table(rng, case: int) -> tuple[dict[str, list], bool, list[str]]:
    """Column key -> values, whether the table has an id column, and the column names to write
    (feature columns sometimes get hostile names, or two of them one name)."""
    n = int(rng.choice([0, 1, 3, 40, 90, 150])) if case % 5 else int(rng.integers(60, 150))
    cols: dict[str, list] = {}
    with_id = bool(rng.random() < 0.6)
    if with_id:
        cols["id"] = _ids(rng, n)
    for j in range(int(rng.integers(1, 4))):
        cols[f"f{j}"] = _numbers(rng, n, float(rng.choice([0.0, 0.02, 0.2])))
    if rng.random() < 0.5:
        cols["mixed"] = _mixed(rng, n)
    if rng.random() < 0.3:
        cols["note"] = [str(rng.choice(HOSTILE_TEXT)) for _ in range(n)]
    cols["label"] = _labels(rng, n)
    if case % 4 == 3 and "f1" not in cols:
        cols = {**{k: v for k, v in cols.items() if k != "label"}, "f1": _numbers(rng, n, 0.0), "label": cols["label"]}
    header = list(cols)
    features = [i for i, name in enumerate(header) if name.startswith("f")]
    if case % 4 == 3:
        header[features[1]] = header[features[0]]  # two columns, one name
    elif rng.random() < 0.4:
        header[features[0]] = str(rng.choice(["\x1b[2Jx", "\u202ef", "\U0001f600", " ", "a.b", "sanitizer"]))
    return cols, with_id, header


def _cell(v) -> str:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def write_table(cols: dict[str, list], header: list[str], fmt: str, path: Path, empty_file: bool) -> Path:
    path = path.with_suffix("." + fmt)
    if empty_file:
        path.write_bytes(b"")
        return path
    n = len(cols["label"])
    if fmt == "parquet":
        arrays = []
        for name, values in cols.items():
            if name.startswith("f"):
                arrays.append(pa.array(values, pa.float64()))
            else:
                arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
        pq.write_table(pa.Table.from_arrays(arrays, names=header), path)
    elif fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for i in range(n):
                writer.writerow([_cell(cols[c][i]) for c in cols])
    else:
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({h: cols[c][i] for h, c in zip(header, cols)}) + "\n")
    return path


def count_rows(directory: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(directory.glob("*.parquet")))


@pytest.mark.parametrize("case", range(CASES))
def test_a_hostile_table_is_fully_accounted_for_or_refused(tmp_path, capsys, case):
    rng = np.random.default_rng([SEED, case])
    cols, with_id, header = hostile_table(rng, case)
    fmt = FORMATS[case % len(FORMATS)]
    empty_file = case == CASES - 1
    path = write_table(cols, header, fmt, tmp_path / "data", empty_file)
    n = 0 if empty_file else len(cols["label"])
    out = tmp_path / "out"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    args = ["run", "--input", str(path), "--output", str(out), "--label-column", "label", "--config", str(config), "-q"]
    if with_id:
        args += ["--id-column", "id"]

    rc = cli.main(args)  # an exception escaping main fails the test with its traceback
    err = capsys.readouterr().err

    described = f"case {case}: {fmt}, {n} rows, columns {header!r}"
    assert rc in (0, 2), f"{described}: exit {rc}\n{err[-3000:]}"
    if rc == 2:
        assert "sanitize: error: " in err, f"{described}: exit 2 without a message\n{err[-3000:]}"
        assert not (out / "manifest.json").exists()
        return
    assert (out / "manifest.json").exists(), described
    clean, quarantined = count_rows(out / "clean"), count_rows(out / "quarantine")
    assert clean + quarantined == n, f"{described}: {clean} clean + {quarantined} quarantined != {n} rows in"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["counts"]["rows_in"] == n
    assert provenance["counts"]["clean"] == clean and provenance["counts"]["quarantined"] == quarantined
