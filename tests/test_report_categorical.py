"""The report shows categorical, boolean and date columns as written: a flagged row's values beside its
neighbours' (the tabular view), and a hostile or very long categorical value as cut-short text, never markup.

One ``sanitize run`` on palmerpenguins' raw table (as shipped: Island, Sex and the rest as text, Date Egg
as ISO text) with three planted rows: a body mass of 40 kg whose Sex is markup and long, an egg laid in
1907, and Island 'Mars'.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, read_dir, run_cli
from test_report import open_page

from sanitizer.report import MAX_ROWS, write_report
from sanitizer.report.data import load_quarantine
from sanitizer.report.evidence import MAX_VALUE, summarise_reasons
from sanitizer.report.neighbours import SHOWN_FEATURES
from sanitizer.report.page import script_json
from sanitizer.report.written import MAX_VALUE_CHARS

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">" + "x" * 300
HEAVY, OLD, MARS = 30, 20, 10  # planted rows (0-based positions in the shipped table)


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory):
    from palmerpenguins import load_penguins_raw

    df = load_penguins_raw()
    df.loc[HEAVY, "Body Mass (g)"] = 40000.0
    df.loc[HEAVY, "Sex"] = HOSTILE
    df.loc[OLD, "Date Egg"] = "1907-11-09"
    df.loc[MARS, "Island"] = "Mars"
    df["row"] = [f"p{i:03d}" for i in range(len(df))]
    root = tmp_path_factory.mktemp("penguins-report")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), root / "penguins.parquet")
    out = root / "out"
    rc = run_cli("run", "--input", root / "penguins.parquet", "--output", out, "--label-column", "Species",
                 "--id-column", "row", "--seed", "3", "-q")
    assert rc == 0
    provenance = load_json(out / "provenance.json")
    every = pa.concat_tables([read_dir(out / "clean"), read_dir(out / "quarantine").select(
        read_dir(out / "clean").schema.names)])
    rows = {r["row"]: r for r in every.to_pylist()}
    return {"out": out, "provenance": provenance, "rows": rows, "report": Path(write_report(str(out), provenance)),
            "data": load_quarantine(str(out), provenance, MAX_ROWS)}


def _shown(row: dict, features: dict) -> dict:
    """column -> value of one shown row or reference (its main and further columns), texts looked up."""
    cols, values = row["feat"] + row.get("more", []), row["v"] + row.get("mv", [])
    return {features["names"][j]: features["words"][v] if j >= features["written"] and v is not None else v
            for j, v in zip(cols, values)}


def test_a_flagged_row_and_its_neighbours_show_their_categorical_values_as_written(penguins_run):
    q, rows = penguins_run["data"], penguins_run["rows"]
    names, kinds = q.features["names"], q.features["kinds"]
    kind = dict(zip(names, kinds))
    assert kind["Island"] == kind["Sex"] == kind["studyName"] == "categorical"
    assert kind["Clutch Completion"] == "boolean" and kind["Date Egg"] == "date"
    assert kind["Body Mass (g)"] == "numeric" and "Comments" not in kind  # text: not judged, not shown
    typical = dict(zip(names, q.features["typical"]))
    assert {v for v, _ in typical["Island"]["levels"]} >= {"Biscoe", "Dream", "Torgersen"}

    heavy = next(r for r in q.rows if r["id"] == f"p{HEAVY:03d}")
    shown = _shown(heavy, q.features)
    assert set(shown) == set(names)  # a small table: every judged column
    assert shown["Island"] == rows[heavy["id"]]["Island"] and shown["Date Egg"] == rows[heavy["id"]]["Date Egg"]
    assert shown["Sex"] == HOSTILE[: MAX_VALUE_CHARS - 1] + "…"
    assert names.index("Sex") in heavy["odd"]  # seen once: marked
    assert "Body Mass (g)" in {names[j] for j in heavy["first"]}  # what the evidence names: shown first
    refs = [ref["id"] for ref in heavy["refs"]]
    assert refs, "the outlier's evidence names its nearest rows"
    for ident in refs:
        ref = q.references[ident]
        values = _shown(ref, q.features)
        for column in ("Island", "Sex", "Clutch Completion", "Date Egg", "studyName"):
            assert values[column] == rows[ident][column], (ident, column)

    old = next((r for r in q.rows if r["id"] == f"p{OLD:03d}"), None)
    if old is not None:  # flagged for its date: shown as written, marked outside the typical range
        assert _shown(old, q.features)["Date Egg"] == "1907-11-09" and names.index("Date Egg") in old["odd"]


def test_the_page_shows_the_values_as_text_and_runs_none_of_them(penguins_run, tmp_path):
    html = penguins_run["report"].read_text(encoding="utf-8")
    assert HOSTILE[:40] not in html and "<img" not in html
    page = open_page(penguins_run["report"], tmp_path, window="1600,1200")
    page.assert_healthy()
    assert page.elements("img") == [] and "pwned" not in page.elements("title")[0].text()
    assert [(n.tag, k) for n in page.root.walk() for k in n.attrs if k.lower().startswith("on")] == []
    tables = [t for t in page.elements("table") if "nb-table" in t.attrs.get("class", "")]
    assert tables, "no suspect is shown beside its neighbours"
    cells = [td for t in tables for td in t.walk() if td.tag == "td"]
    clipped = HOSTILE[: MAX_VALUE_CHARS - 1] + "…"
    hostile = [td for td in cells if td.text() == clipped]
    assert hostile and all(td.attrs.get("title") == clipped for td in hostile)  # the whole (stored) text on hover
    assert "txt" in hostile[0].attrs.get("class", "")  # cut short on screen by the stylesheet
    names = [td.text() for td in cells if "mono" in td.attrs.get("class", "")]
    assert {"Island", "Sex", "Date Egg", "Clutch Completion", "Body Mass (g)"} <= set(names)
    assert {"Biscoe", "Dream", "Torgersen"} & {td.text() for td in cells}


def test_a_long_categorical_value_in_the_evidence_is_cut_short():
    reason = {"detector": "outlier", "code": "outlier", "score": 3.0, "threshold": 1.0, "evidence": {
        "extreme_features": [{"feature": "Sex", "value": HOSTILE, "test": "unseen", "reference_rows": 340}]}}
    (shown,) = summarise_reasons([reason])
    text = " ".join(shown["lines"])
    assert HOSTILE[: MAX_VALUE - 1] + "…" in text and HOSTILE[:MAX_VALUE] not in text
    assert reason["evidence"]["extreme_features"][0]["value"] == HOSTILE  # the stored evidence is untouched


def test_five_thousand_suspects_with_categorical_neighbours_stay_light(tmp_path):
    """At the 5,000-row cap, each suspect naming five clean rows: 4 numeric, 6 categorical (a third of the
    levels 200 characters long) and a date column; each text is stored once in the page."""
    rng = np.random.default_rng(0)
    n, n_clean = 5000, 26000
    levels = [f"level-{i}" for i in range(30)] + ["x" * 200 + str(i) for i in range(20)]

    def columns(m: int, ids: np.ndarray) -> dict:
        cols = {"rid": pa.array(ids), **{f"f{j}": pa.array(rng.normal(size=m)) for j in range(4)}}
        cols.update({f"c{j}": pa.array(rng.choice(levels, m)) for j in range(6)})
        return {**cols, "day": pa.array(rng.integers(13000, 14000, m).astype("int32"), pa.date32()),
                "label": pa.array(rng.integers(0, 5, m))}

    out = tmp_path / "out"
    (out / "clean").mkdir(parents=True)
    (out / "quarantine").mkdir()
    pq.write_table(pa.table(columns(n_clean, np.arange(n_clean))), out / "clean" / "part-0.parquet")
    reasons = [json.dumps([{"detector": "label_flip", "code": "label_flip", "score": 2.0, "threshold": 1.0,
                            "evidence": {"given_label": "1", "suggested_label": "2", "neighbours": [
                                {"id": str(k), "label": "2"} for k in range(5 * i, 5 * i + 5)]}}]) for i in range(n)]
    pq.write_table(pa.table({**columns(n, np.arange(n) + 10**6), "sanitizer_reasons": pa.array(reasons),
                             "sanitizer_reason_codes": pa.array([["label_flip"]] * n, pa.list_(pa.string())),
                             "sanitizer_score_label_flip": pa.array(rng.uniform(1, 3, n))}),
                   out / "quarantine" / "part-0.parquet")
    kinds = [{"name": f"c{j}", "kind": "categorical", "judged": True} for j in range(6)]
    provenance = {"columns": {"label": "label", "id": "rid", "features": [f"f{j}" for j in range(4)],
                              "kinds": [*kinds, {"name": "day", "kind": "date", "judged": True}]},
                  "counts": {"rows_in": n + n_clean, "clean": n_clean, "quarantined": n}}
    q = load_quarantine(str(out), provenance, MAX_ROWS)
    assert len(q.rows) == n and len(q.references) == 5 * n
    assert all(len(r["feat"]) == SHOWN_FEATURES and "more" not in r for r in q.rows)  # no room for more
    assert len(q.features["words"]) == len(set(q.features["words"])) <= 6 * len(levels) + 1000
    size = len(script_json({"rows": q.rows, "references": q.references, "features": q.features}))
    print(f"rows + references JSON {size:,} bytes")
    assert size < 8_000_000, f"{size:,} bytes"
