"""Fault injection on the values themselves: what a row check catches, what a detector must cope with.

- Finite values the training job's float32 cannot hold (1e308, -3.5e38) are a row problem
  (``invalid:out_of_range:COL``), never a reason for a detector to stop working: label_flip still
  fits and still catches planted flips, and no such row is published clean, whichever detectors run.
- Values float32 can hold but that dwarf the rest (1e30, 3e38) must not break any detector's
  standardisation (no inf/NaN scores, no mass quarantine of ordinary rows).
- A detector whose fit raises on ordinary data fails the run with a message naming it; it is
  never silently skipped.
- A CSV with text in a numeric feature column keeps that column as text in the shards (each value
  as written), quarantines only the bad row (its text in the cell and in the evidence); a suite
  ``sanitize profile`` made from numeric clean data refuses it with one line naming the expectations.
- A feature column with no values at all is refused at planning, naming the column (Parquet and
  CSV); an empty CSV column that is not a feature is kept and does not stop the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.detectors import REGISTRY
from sanitizer.data.batch import FeatureColumn
from sanitizer.data.extract import extract
from conftest import detector_batch, load_json, read_dir, reasons_of, run_cli, synthetic_rows

RID = "rid"
FLOAT32_MAX = float(np.finfo(np.float32).max)
NO_COLLISION = "detectors:\n  feature_collision: {enabled: false}\n"
ONLY_OUTLIER = ("detectors:\n  label_flip: {enabled: false}\n  feature_collision: {enabled: false}\n"
                "  backdoor: {enabled: false}\n")


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def accounted(out: Path, all_ids: list) -> tuple[pa.Table, pa.Table]:
    """Clean and quarantine tables; every input id is in exactly one of them and a manifest exists."""
    assert (out / "manifest.json").exists()
    clean = read_dir(out / "clean")
    q_files = sorted((out / "quarantine").glob("*.parquet"))
    q = pa.concat_tables([pq.read_table(f) for f in q_files]) if q_files else None
    ids = clean.column(RID).to_pylist() + ([] if q is None else q.column(RID).to_pylist())
    assert sorted(ids) == sorted(all_ids)
    return clean, q


def flipped_rows(n: int = 600, seed: int = 0):
    """synthetic_rows with every 20th label moved to the next class: (rid, X, labels, flipped ids)."""
    rid, X, y = synthetic_rows(n, seed)
    y = y.copy()
    flips = np.arange(10, n, 20)
    y[flips] = (y[flips] + 1) % 3
    return rid, X, y, set(flips.tolist())


def write_parquet(path: Path, rid, X, y) -> Path:
    pq.write_table(pa.table({RID: rid, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y}), path)
    return path


# --------------------------------------------------------------------------- out of range


def test_extract_marks_values_float32_cannot_hold_as_out_of_range():
    values = [1.0, 3.5e38, -1e39, FLOAT32_MAX, 1e-320, -0.0, 1e308, float("nan")]
    n = len(values)
    table = pa.table({
        "a": pa.array(values, pa.float64()),
        "label": pa.array(["x"] * n),
        RID: pa.array([str(i) for i in range(n)]),
        "__sanitizer_key": pa.array(np.arange(n, dtype=np.uint64)),
    })
    ex = extract(table, [FeatureColumn("a", 1)], "label", RID)
    issues = {code: np.flatnonzero(mask).tolist() for code, mask, _ in ex.checks.issues}
    assert issues["invalid:out_of_range:a"] == [1, 2, 6]
    assert issues["missing:a"] == [7]  # missing, not out of range: reported, the row stays valid
    assert ex.checks.valid.tolist() == [True, False, False, True, True, True, False, True]
    strict = extract(table, [FeatureColumn("a", 1)], "label", RID, missing="quarantine")
    assert {code: np.flatnonzero(mask).tolist() for code, mask, _ in strict.checks.issues}["invalid:nan:a"] == [7]
    assert not strict.checks.valid[7]
    evidence = next(e for code, _, e in ex.checks.issues if code == "invalid:out_of_range:a")
    assert evidence["column"] == "a" and evidence["limit"] == FLOAT32_MAX


@pytest.fixture(scope="module")
def huge_run(tmp_path_factory):
    """600 rows, 30 planted flips, four rows float32 cannot hold; feature_collision off."""
    d = tmp_path_factory.mktemp("huge")
    rid, X, y, flips = flipped_rows()
    huge = {3: 1e308, 4: 1e308, 5: 1e308, 6: -3.5e38}
    for row, value in huge.items():
        X[row, 0] = value
    path = write_parquet(d / "data.parquet", rid, X, y)
    out = d / "out"
    rc = run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", RID,
                 "--config", write_config(d / "c.yaml", NO_COLLISION), "-q")
    return rc, out, rid.tolist(), flips, huge


def test_values_beyond_float32_are_quarantined_as_out_of_range(huge_run):
    rc, out, all_ids, _, huge = huge_run
    assert rc == 0
    clean, q = accounted(out, all_ids)
    reasons = reasons_of(q, RID)
    for row in huge:
        assert reasons[row] == ["invalid:out_of_range:a"]
    values = np.asarray(clean.column("a").to_numpy(), dtype=np.float64)
    assert np.all(np.abs(values) <= FLOAT32_MAX)


def test_label_flip_still_fits_and_catches_flips_next_to_huge_values(huge_run):
    rc, out, _, flips, _ = huge_run
    assert rc == 0
    prov = load_json(out / "provenance.json")
    assert prov["detectors"]["label_flip"]["status"] == "fitted"
    reasons = reasons_of(read_dir(out / "quarantine"), RID)
    caught = sum("label_flip" in reasons.get(r, []) for r in flips)
    assert caught >= 0.8 * len(flips), f"label_flip caught {caught}/{len(flips)} planted flips"


def test_no_out_of_range_row_is_published_clean_by_the_outlier_detector_alone(tmp_path):
    rid, X, y = synthetic_rows(120, 1)
    X[7, 1] = 1e300
    X[8, 2] = -1e100
    path = write_parquet(tmp_path / "data.parquet", rid, X, y)
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", ONLY_OUTLIER + "policy:\n  outlier: report\n")
    assert run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", RID,
                   "--config", config, "-q") == 0
    clean, q = accounted(out, rid.tolist())
    assert 7 not in clean.column(RID).to_pylist() and 8 not in clean.column(RID).to_pylist()
    reasons = reasons_of(q, RID)
    assert reasons[7] == ["invalid:out_of_range:b"] and reasons[8] == ["invalid:out_of_range:c"]


# --------------------------------------------------------------------------- huge but representable


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("big", [1e30, 3e38])
def test_detectors_cope_with_huge_float32_values(name, big):
    """A few values near float32's limit: every detector fits, every score is finite or NaN (never inf),
    the huge rows stand out to the outlier detector and ordinary rows are not swept up with them."""
    rid, X, y, _ = flipped_rows(400, 2)
    for row, sign in ((11, 1.0), (12, 1.0), (13, -1.0)):
        X[row, row % 3] = sign * big
    batch = detector_batch(X, y, ids=[str(i) for i in rid], feature_names=("a", "b", "c"))
    detector = REGISTRY[name]()
    state = detector.fit(batch, detector.Params(), 0)
    assert not hasattr(state, "reason"), f"{name} skipped: {getattr(state, 'reason', '')}"
    scores = detector.score(batch, state)
    assert not np.isinf(scores.score).any()
    assert np.isfinite(scores.score).sum() >= 0.9 * len(rid)
    ordinary = np.ones(len(rid), dtype=bool)
    ordinary[[11, 12, 13]] = False
    assert scores.flagged[ordinary].mean() < 0.2, f"{name} flagged {scores.flagged[ordinary].mean():.0%} of ordinary rows"
    if name == "outlier":
        assert scores.flagged[[11, 12, 13]].all()


def test_label_flip_catches_flips_next_to_huge_float32_values(tmp_path):
    rid, X, y, flips = flipped_rows()
    X[3, 0], X[4, 0], X[5, 1] = 1e30, 3e38, -3e38
    path = write_parquet(tmp_path / "data.parquet", rid, X, y)
    out = tmp_path / "out"
    assert run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", RID,
                   "--config", write_config(tmp_path / "c.yaml", NO_COLLISION), "-q") == 0
    clean, q = accounted(out, rid.tolist())
    reasons = reasons_of(q, RID)
    caught = sum("label_flip" in reasons.get(r, []) for r in flips)
    assert caught >= 0.8 * len(flips), f"label_flip caught {caught}/{len(flips)} planted flips"
    assert q.num_rows < 0.2 * len(rid)


# --------------------------------------------------------------------------- a detector that cannot fit


def test_a_detector_whose_fit_raises_fails_the_run_naming_it(tmp_path, capsys):
    rid, X, y = synthetic_rows(150, 3)
    path = write_parquet(tmp_path / "data.parquet", rid, X, y)
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", (
        "detectors:\n  feature_collision: {enabled: false}\n"
        "  label_flip:\n    classifier: sklearn.neighbors.KNeighborsClassifier\n"
        "    classifier_params: {n_neighbors: 5000}\n"
    ))
    rc = run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--config", config, "-q")
    err = capsys.readouterr().err
    assert rc == 2
    line = next(l for l in err.splitlines() if l.startswith("sanitize: error:"))
    assert "label_flip" in line and "n_neighbors" in line and "enabled: false" in line
    assert not (out / "manifest.json").exists()


# --------------------------------------------------------------------------- text in a numeric column


def _csv(path: Path, rid, X, y, bad: dict[int, str] | None = None) -> Path:
    bad = bad or {}
    lines = [f"{RID},a,b,c,label"]
    for i in range(len(rid)):
        a = bad.get(i, repr(float(X[i, 0])))
        lines.append(f"{rid[i]},{a},{float(X[i, 1])!r},{float(X[i, 2])!r},{y[i]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_in_a_numeric_csv_column_keeps_its_text_and_publishes(tmp_path, capsys):
    rid, X, y = synthetic_rows(300, 4)
    suite = tmp_path / "suite.json"
    assert run_cli("profile", "--input", _csv(tmp_path / "clean.csv", rid, X, y), "--label-column", "label",
                   "--id-column", RID, "--output", suite) == 0
    assert any(e["kwargs"].get("column") == "a" for e in json.loads(suite.read_text())["expectations"])
    bad = _csv(tmp_path / "bad.csv", rid, X, y, {2: "oops"})
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", ONLY_OUTLIER)
    refused = tmp_path / "refused"
    assert run_cli("run", "--input", bad, "--output", refused, "--label-column", "label", "--id-column", RID,
                   "--expectations", suite, "--config", config, "-q") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expect_column_values_to_be_between on column 'a' cannot be checked" in err[0]
    assert not (refused / "manifest.json").exists()
    assert run_cli("run", "--input", bad, "--output", out, "--label-column", "label", "--id-column", RID,
                   "--config", config, "-q") == 0
    clean, q = accounted(out, rid.tolist())
    assert clean.schema.field("a").type == pa.string()
    assert q.schema.field("a").type == pa.string()
    reasons = reasons_of(q, RID)
    assert [r for r, codes in reasons.items() if "invalid:non_numeric:a" in codes] == [2]
    row = q.column(RID).to_pylist().index(2)
    assert q.column("a")[row].as_py() == "oops"
    entries = q.column("sanitizer_reasons")[row].as_py()
    entry = next(e for e in entries if e["code"] == "invalid:non_numeric:a")
    assert json.loads(entry["evidence_json"])["value"] == "oops" and entry["detector"] == "validation"
    got = dict(zip(clean.column(RID).to_pylist(), clean.column("a").to_pylist()))
    for i in (0, 1, 3, 299):
        if i in got:
            assert got[i] == repr(float(X[i, 0]))


# --------------------------------------------------------------------------- an empty feature column


def _with_empty_column(tmp_path: Path, fmt: str) -> Path:
    rid, X, y = synthetic_rows(200, 5)
    if fmt == "parquet":
        path = tmp_path / "data.parquet"
        pq.write_table(pa.table({RID: rid, "a": X[:, 0], "b": X[:, 1], "z": pa.nulls(200, pa.float64()), "label": y}),
                       path)
        return path
    path = tmp_path / "data.csv"
    lines = [f"{RID},a,b,z,label"] + [f"{rid[i]},{float(X[i, 0])!r},{float(X[i, 1])!r},,{y[i]}" for i in range(200)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt,features", [("parquet", None), ("parquet", "a,z"), ("csv", "a,b,z")])
def test_a_feature_column_without_values_is_refused_naming_it(tmp_path, capsys, fmt, features):
    path = _with_empty_column(tmp_path, fmt)
    args = ["run", "--input", path, "--output", tmp_path / "out", "--label-column", "label", "--id-column", RID]
    if features:
        args += ["--feature-columns", features]
    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    line = next(l for l in err.splitlines() if l.startswith("sanitize: error:"))
    assert "'z'" in line and "no values" in line and "--feature-columns" in line
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_an_empty_csv_column_that_is_not_a_feature_is_kept(tmp_path):
    path = _with_empty_column(tmp_path, "csv")
    out = tmp_path / "out"
    assert run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", RID,
                   "--config", write_config(tmp_path / "c.yaml", ONLY_OUTLIER), "-q") == 0
    clean, q = accounted(out, list(range(200)))
    assert "z" in clean.column_names and clean.column("z").null_count == clean.num_rows
    prov = load_json(out / "provenance.json")
    assert prov["config"]["feature_columns"] in (None, []) or "z" not in prov["config"]["feature_columns"]
    assert any("'z'" in w for w in prov["warnings"])
    assert q is None or q.num_rows < 20


# --------------------------------------------------------------------------- labels


def test_huge_whole_number_labels_keep_their_own_names():
    """Whole-number float labels read as integers ("3", not "3.0"), but only within int64's range:
    beyond it, casting wrapped around and gave 1e308 and 1e19 one shared class name."""
    from sanitizer.data.batch import label_strings

    names = label_strings(pa.array([3.0, 1e308, 1e19, -1e300, None, float("nan")]))
    assert names.tolist() == ["3", "1e+308", "1e+19", "-1e+300", None, None]
    # Each value is named on its own: a fraction elsewhere in the column does not turn "3" into "3.0".
    assert label_strings(pa.array([2.5, -0.0, 3.0])).tolist() == ["2.5", "0", "3"]


def test_columns_sharing_a_name_are_refused_naming_it(tmp_path, capsys):
    rid, X, y = synthetic_rows(60, 6)
    path = tmp_path / "data.csv"
    path.write_text("a,a,label\n" + "".join(f"{float(X[i, 0])!r},{float(X[i, 1])!r},{y[i]}\n" for i in range(60)))
    assert run_cli("run", "--input", path, "--output", tmp_path / "out", "--label-column", "label", "-q") == 2
    line = next(l for l in capsys.readouterr().err.splitlines() if l.startswith("sanitize: error:"))
    assert "more than one column named 'a'" in line
