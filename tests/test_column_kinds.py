"""Column kinds on a real mixed table (palmerpenguins, raw): inferred from the type and the first rows,
declared in the config and on the command line, bounded vocabularies, and where the kinds are shown
(provenance, the printed summary, the report's Columns section). The detectors judge numeric columns
only, as before: the rest are listed with their kind."""

from __future__ import annotations

import argparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, run_cli

from sanitizer import schemas
from sanitizer.beam.plan import make_plan
from sanitizer.errors import ConfigError
from sanitizer.settings.config import build_config
from sanitizer.settings.options import add_run_arguments, config_from_args

NUMERIC = ["Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)", "Body Mass (g)",
           "Delta 15 N (o/oo)", "Delta 13 C (o/oo)"]


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    from palmerpenguins import load_penguins_raw

    d = tmp_path_factory.mktemp("kinds")
    frame = load_penguins_raw()
    path = d / "penguins_raw.parquet"
    frame.to_parquet(path, index=False)
    return {"dir": d, "path": path, "frame": frame}


def kinds_of(penguins, tmp_path, **raw) -> dict[str, dict]:
    config = build_config({"input": str(penguins["path"]), "output": str(tmp_path / "out"),
                           "label_column": "Species", **raw})
    plan = make_plan(config)
    return {k.name: k.to_dict() for k in plan.kinds}, plan


# --------------------------------------------------------------------------- inference


def test_kinds_are_inferred_on_penguins_raw(penguins, tmp_path):
    kinds, plan = kinds_of(penguins, tmp_path)
    assert list(kinds) == list(penguins["frame"].columns)  # every input column, in input order
    kind = {name: k["kind"] for name, k in kinds.items()}
    assert kind["Island"] == kind["Sex"] == kind["studyName"] == "categorical"
    assert kind["Clutch Completion"] == "boolean"  # Yes / No
    assert kind["Date Egg"] == "date" and kinds["Date Egg"]["range"]["min"].startswith("2007-11-09")
    assert kind["Comments"] == "text" and "words" in kinds["Comments"]["detail"]
    assert kind["Individual ID"] == kind["Sample Number"] == "id-like"
    assert kind["Species"] == "label"
    assert plan.feature_names == NUMERIC  # the numeric features as before kinds existed
    judged = {n for n, k in kinds.items() if k["judged"]}
    assert judged == set(NUMERIC) | {"studyName", "Region", "Island", "Stage", "Sex", "Clutch Completion", "Date Egg"}
    assert "in 16% of the first rows" in kinds["Comments"]["detail"]  # a note few rows have: not judged
    island = kinds["Island"]["vocabulary"]
    assert island["size"] == 3 and island["unseen_code"] == 3 and "other" not in island
    assert {level["value"] for level in island["levels"]} == {"Biscoe", "Dream", "Torgersen"}
    carried = {c.name: c.reason for c in plan.carried}  # judged from their codes and days
    assert carried["Island"] == "categorical" and "judged as categories" in kinds["Island"]["detail"]
    assert carried["Date Egg"] == "date" and "Island" not in {c.name for c in plan.ignored}


def test_a_string_whose_values_grow_with_the_rows_is_text(penguins, tmp_path):
    """Individual ID without its key-like name: 190 distinct values in 344 rows is names, not categories."""
    path = tmp_path / "birds.parquet"
    penguins["frame"].rename(columns={"Individual ID": "Bird"}).to_parquet(path, index=False)
    plan = make_plan(build_config({"input": str(path), "output": str(tmp_path / "o"), "label_column": "Species"}))
    bird = next(k for k in plan.kinds if k.name == "Bird")
    assert bird.kind == "text" and not bird.judged and "grow with the row count" in bird.detail
    assert bird.vocabulary is None


def test_a_vocabulary_larger_than_the_bound(penguins, tmp_path):
    # Inferred: more values than the bound makes a text column, never thousands of codes.
    kinds, _ = kinds_of(penguins, tmp_path, categorical_max_levels=2)
    assert kinds["Island"]["kind"] == "text" and "vocabulary bound of 2" in kinds["Island"]["detail"]
    # Declared categorical: the most frequent level keeps its code, the rarer ones share "other".
    kinds, _ = kinds_of(penguins, tmp_path, categorical_max_levels=2, columns={"Island": "categorical"})
    vocab = kinds["Island"]["vocabulary"]
    assert kinds["Island"]["kind"] == "categorical" and kinds["Island"]["declared"]
    assert vocab["size"] == 1 and vocab["levels"][0]["value"] == "Biscoe"
    assert vocab["other"] == {"code": 1, "levels": 2, "rows": 344 - 168}
    assert vocab["unseen_code"] == 2


def test_booleans_and_integers_keep_their_numeric_judging_unless_declared(tmp_path):
    n = 60
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [float(i % 7) for i in range(n)], "flag": [i % 3 == 0 for i in range(n)],
                             "grade": [i % 4 for i in range(n)], "label": ["a", "b"] * (n // 2)}), path)
    base = {"input": str(path), "output": str(tmp_path / "o"), "label_column": "label"}
    plan = make_plan(build_config(base))
    kinds = {k.name: k for k in plan.kinds}
    assert plan.feature_names == ["x", "flag", "grade"]
    assert kinds["flag"].kind == "boolean" and kinds["flag"].judged  # judged as 0/1, as before
    assert kinds["grade"].kind == "numeric"
    # An integer column declared categorical leaves the numeric detectors and gets a vocabulary.
    plan = make_plan(build_config({**base, "columns": {"grade": "categorical"}}))
    grade = next(k for k in plan.kinds if k.name == "grade")
    assert plan.feature_names == ["x", "flag"] and grade.kind == "categorical" and grade.judged  # by its codes
    assert grade.vocabulary["size"] == 4
    with pytest.raises(ConfigError, match="declared boolean but holds"):
        make_plan(build_config({**base, "columns": {"grade": "boolean"}}))
    with pytest.raises(ConfigError, match="'x' is declared categorical, but its type is double"):
        make_plan(build_config({**base, "columns": {"x": "categorical"}}))
    # Named in --feature-columns, a declared categorical column is judged by its codes.
    plan = make_plan(build_config({**base, "feature_columns": ["x", "grade"], "columns": {"grade": "categorical"}}))
    assert plan.feature_names == ["x"] and [c.name for c in plan.carried] == ["grade"]
    with pytest.raises(ConfigError, match="declared id-like; the detectors do not judge id-like"):
        make_plan(build_config({**base, "feature_columns": ["x", "grade"], "columns": {"grade": "id-like"}}))
    plan = make_plan(build_config({**base, "feature_columns": ["x", "grade"], "columns": {"grade": "text"}}))
    assert [(c.name, c.reason) for c in plan.carried] == [("grade", "prose")]  # declared text is judged as text
    with pytest.raises(ConfigError, match="'nope'.*not in the input"):
        make_plan(build_config({**base, "columns": {"nope": "text"}}))


# --------------------------------------------------------------------------- declaring kinds


def test_kinds_are_checked_in_the_config():
    with pytest.raises(ConfigError, match="kind must be one of numeric, boolean, categorical"):
        build_config({"columns": {"a": "colour"}})
    with pytest.raises(ConfigError, match="is the label column"):
        build_config({"label_column": "y", "columns": {"y": "categorical"}})
    with pytest.raises(ConfigError, match="categorical_max_levels must be >= 2"):
        build_config({"categorical_max_levels": 1})


def test_the_command_line_overrides_the_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("columns:\n  Island: text\n  Sex: text\n")
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--config", str(cfg), "--column-kind", "Island=categorical,Sample Number=categorical",
                              "--column_kind", "Date Egg=text"])
    config = config_from_args(args)
    assert config.columns == {"Island": "categorical", "Sex": "text", "Sample Number": "categorical",
                              "Date Egg": "text"}
    with pytest.raises(ConfigError, match="is not NAME=KIND"):
        config_from_args(parser.parse_args(["--column-kind", "Island"]))


# --------------------------------------------------------------------------- a run shows them


@pytest.fixture(scope="module")
def run(penguins):
    d = penguins["dir"]
    cfg = d / "kinds.yaml"
    cfg.write_text("columns:\n  studyName: text\n")
    out = d / "out"
    rc = run_cli("run", "--input", penguins["path"], "--output", out, "--label-column", "Species", "--seed", 0,
                 "--config", cfg, "--column-kind", "Sample Number=categorical")
    return {"rc": rc, "out": out}


def test_provenance_summary_and_report_list_the_kinds(run, capsys):
    out = run["out"]
    assert run["rc"] == 0
    provenance = load_json(out / "provenance.json")
    schemas.validate("provenance", provenance)
    kinds = {k["name"]: k for k in provenance["columns"]["kinds"]}
    assert kinds["studyName"]["kind"] == "text" and kinds["studyName"]["declared"]
    assert kinds["Sample Number"]["kind"] == "categorical" and kinds["Sample Number"]["declared"]
    assert kinds["Sample Number"]["vocabulary"]["size"] > 1
    assert provenance["columns"]["features"] == NUMERIC

    from sanitizer.cli.summary import summary_lines

    lines = summary_lines(provenance, str(out))
    judged = next(line for line in lines if line.strip().startswith("judged:"))
    assert judged.split("judged:")[1].strip().startswith("numeric 6: Culmen Length (mm)")
    assert "categorical 5: Sample Number, Region, Island, Stage, Sex" in judged and "date 1: Date Egg" in judged
    not_judged = next(line for line in lines if line.strip().startswith("not judged:"))
    assert "text 1: studyName" in judged and "text 1: Comments" in not_judged and "categorical" not in not_judged
    assert "id-like 1: Individual ID" in not_judged

    html = (out / "report.html").read_text()
    assert 'id="columns-kinds"' in html
    assert '<tr data-kind="categorical"><td><code>Island</code></td><td>categorical</td><td>judged</td>' in html
    assert "<td>categorical (declared)</td>" in html
    # Vocabularies count the clean rows (168 Biscoe rows in the input, fewer where some were held).
    biscoe = next(lv["rows"] for lv in kinds["Island"]["vocabulary"]["levels"] if lv["value"] == "Biscoe")
    assert 150 <= biscoe <= 168 and kinds["Island"]["vocabulary"]["counted_rows"] >= 300
    assert f"&#x27;Biscoe&#x27; ({biscoe})" in html and "unseen values get code 3" in html
    assert '<tr data-kind="date"><td><code>Date Egg</code></td>' in html
    assert "2007-11-09T00:00:00 to 2009-12-01T00:00:00" in html
