"""The report's data for showing each suspect beside the neighbours that accused it (issue 17, point 3).

Python-level (no browser): what :func:`sanitizer.report.data.load_quarantine`
gives the page - each shown row's content hash, row-check flag and the
reference rows its evidence names, those rows' labels and thumbnails (image
data) or feature values beside typical ranges (tabular data) - on a real
``sanitize run`` and on synthetic outputs, and how big it gets at the 5,000-row cap.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_json, pixels_array, read_dir, run_cli

from sanitizer.data.layout import CONTENT_COLUMN
from sanitizer.data.reasons import parse as parse_reasons
from sanitizer.report import MAX_ROWS, render_report
from sanitizer.report.data import load_quarantine
from sanitizer.report.neighbours import SAMPLE_ROWS, SHOWN_FEATURES, sig
from sanitizer.report.page import script_json
from sanitizer.data.batch import id_strings
from sanitizer.review.output import open_output, quarantined_records
from sanitizer.simulate import flip_labels

SIZE_LIMIT = 10_000_000  # bytes of the page's JSON for rows + references at the cap


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    """``sanitize run`` on 400 digits with integer ids, 6% flipped labels and one row with a NaN pixel."""
    X, y = digits
    n = 400
    X, y = X[:n].copy(), y[:n]
    yp, _ = flip_labels(y, 0.06, seed=1)
    X[5, 3] = np.nan  # fails the row checks
    ids = np.arange(n, dtype=np.int64) * 7 + 1000
    root = tmp_path_factory.mktemp("neighbours-run")
    pq.write_table(pa.table({"image_id": pa.array(ids), "pixels": pixels_array(X),
                             "label": pa.array([str(v) for v in yp])}), root / "in.parquet")
    out = root / "out"
    rc = run_cli("run", "--input", root / "in.parquet", "--output", out, "--label-column", "label",
                 "--id-column", "image_id", "--seed", "3", "-q")
    assert rc == 0
    provenance = load_json(out / "provenance.json")
    clean, held = read_dir(out / "clean"), read_dir(out / "quarantine")
    every = pa.concat_tables([clean.select(["image_id", "pixels", "label"]),
                              held.select(["image_id", "pixels", "label"])])
    rows = {i: (lab, px) for i, lab, px in zip(id_strings(every["image_id"]), every["label"].to_pylist(),
                                               every["pixels"].to_pylist())}
    return {"out": out, "provenance": provenance, "data": load_quarantine(str(out), provenance, MAX_ROWS),
            "quarantine": held, "bad_id": str(int(ids[5])), "rows": rows}


def _reasons_by_id(table: pa.Table) -> dict[str, list[dict]]:
    return {i: parse_reasons(r) for i, r in zip(id_strings(table["image_id"]), table["sanitizer_reasons"].to_pylist())}


def test_label_flip_suspects_carry_the_neighbours_their_evidence_names(run):
    q, reasons = run["data"], _reasons_by_id(run["quarantine"])
    flips = [r for r in q.rows if "label_flip" in r["codes"]]
    assert len(flips) >= 5, "precondition: label flips were quarantined"
    side = q.thumbs.shown_side
    for row in flips:
        named = next(e["evidence"]["neighbours"] for e in reasons[row["id"]] if e["detector"] == "label_flip")
        refs = [f for f in row["refs"] if f["detector"] == "label_flip"]
        assert [(f["id"], f["label"]) for f in refs] == [(str(n["id"]), str(n["label"])) for n in named[:5]]
        for f in refs:
            ref = q.references[f["id"]]  # every neighbour is a row of the output: found
            assert ref["label"] == f["label"] == run["rows"][f["id"]][0]
            assert len(base64.b64decode(ref["px"])) == side * side
    # the rows the suspects are compared with are drawn with the suspects' brightness scale
    t = q.thumbs
    for ident, ref in list(q.references.items())[:20]:
        px = np.asarray(run["rows"][ident][1], dtype=np.float64)
        expected = (np.clip((px - t.lo) / (t.hi - t.lo), 0, 1) * 255 + 0.5).astype(np.uint8)
        assert base64.b64decode(ref["px"]) == expected.tobytes()
    assert q.features is None  # thumbnails, not the tabular view
    assert q.references_skipped == 0


def test_suggested_neighbours_carry_the_suggested_label(run):
    q, reasons = run["data"], _reasons_by_id(run["quarantine"])
    suggested_seen = 0
    for row in q.rows:
        for e in reasons[row["id"]]:
            if e["detector"] != "label_flip":
                continue
            want = str(e["evidence"]["suggested_label"])
            for f in row["refs"]:
                if f["detector"] == "label_flip":
                    assert (f["role"] == "suggested") == (f["label"] == want)
                    if f["role"] == "suggested":
                        assert q.references[f["id"]]["label"] == want
                        suggested_seen += 1
    assert suggested_seen > 0
    outlier_refs = [f for r in q.rows for f in r["refs"] if f["detector"] == "outlier"]
    assert all(f["role"] == "neighbour" and f["label"] is None for f in outlier_refs)  # outlier names no labels
    assert all(f["id"] in q.references for f in outlier_refs)


def test_ids_and_content_hashes_are_reviews(run):
    q = run["data"]
    records = {r.id: r.content_sha256 for r in quarantined_records(open_output(str(run["out"])), None)}
    assert len(q.rows) == len(records) > 0
    assert {r["id"]: r["sha"] for r in q.rows} == records
    held = run["quarantine"]
    assert {r["sha"] for r in q.rows} == set(held[CONTENT_COLUMN].to_pylist())


def test_a_row_failing_a_row_check_cannot_be_released(run):
    q = run["data"]
    by_id = {r["id"]: r for r in q.rows}
    bad = by_id[run["bad_id"]]
    assert bad["row_check"] is True and any(c.startswith("invalid:") for c in bad["codes"])
    assert not any(r["row_check"] for r in q.rows if "validation" not in r["flagged_by"])


def test_the_page_still_builds(run):
    html = render_report(str(run["out"]), run["provenance"])
    start = html.index('id="report-data">') + len('id="report-data">')
    data = json.loads(html[start:html.index("</script>", start)])
    assert len(data["rows"]) == len(run["data"].rows)


# --------------------------------------------------------------------------- synthetic outputs

FEATURES = [f"f{j}" for j in range(32)]


def _reason(detector: str, evidence: dict, score: float = 2.0) -> dict:
    return {"detector": detector, "code": detector, "action": "quarantine", "score": score, "threshold": 1.0,
            "evidence": evidence}


def write_output(out: Path, n_held: int, n_clean: int, neighbours: int = 5, image_side: int | None = None,
                 seed: int = 0, extra: bool = False) -> dict:
    """An output folder: ``n_clean`` clean rows (ids 0..), ``n_held`` quarantined ones (ids 10**6..), each
    flagged by label_flip naming ``neighbours`` distinct clean rows; returns the provenance and the data."""
    rng = np.random.default_rng(seed)
    k = 1 if image_side else len(FEATURES)
    d = image_side * image_side if image_side else k
    Xc = rng.normal(size=(n_clean, d)) * np.linspace(1, 5, d) + np.arange(d)
    Xq = rng.normal(size=(n_held, d)) * np.linspace(1, 5, d) + np.arange(d)
    yc, yq = rng.integers(0, 10, n_clean), rng.integers(0, 10, n_held)
    order = rng.permutation(n_clean)
    reasons = []
    for i in range(n_held):
        picked = order[(i * neighbours) % n_clean:][:neighbours]
        suggested = str((yq[i] + 1) % 10)
        entry = [_reason("label_flip", {
            "given_label": str(yq[i]), "suggested_label": suggested, "p_given": 0.01, "p_suggested": 0.9,
            "neighbours": [{"id": str(int(j)), "label": str(yc[j])} for j in picked]})]
        if extra and i % 4 == 0:
            Xq[i, (7 * i) % d] = 1e3  # far outside the typical range, and named by the outlier evidence
            entry.append(_reason("outlier", {
                "extreme_features": [{"feature": FEATURES[(7 * i) % d], "value": 1e3}],
                "nearest": [{"id": str(10**6 + (i + 1) % n_held), "distance": 1.0},  # itself held
                            {"id": "no-such-row", "distance": 2.0}]}))
        if extra and i == 3:
            Xq[i, 5] = np.nan
        reasons.append(json.dumps(entry))
    ids_held = np.arange(n_held, dtype=np.int64) + 10**6

    def columns(X):
        if image_side:
            return {"pixels": pixels_array(X)}
        return {name: pa.array(X[:, j]) for j, name in enumerate(FEATURES)}

    (out / "clean").mkdir(parents=True)
    (out / "quarantine").mkdir(parents=True)
    pq.write_table(pa.table({"rid": pa.array(np.arange(n_clean, dtype=np.int64)), **columns(Xc),
                             "label": pa.array(yc)}), out / "clean" / "part-00000-of-00001.parquet",
                   row_group_size=4096)
    pq.write_table(pa.table({
        "rid": pa.array(ids_held), **columns(Xq), "label": pa.array(yq),
        "sanitizer_reasons": pa.array(reasons, pa.string()),
        "sanitizer_reason_codes": pa.array([[e["code"] for e in json.loads(r)] for r in reasons],
                                           pa.list_(pa.string())),
        CONTENT_COLUMN: pa.array([f"{i:064x}" for i in range(n_held)]),
        "sanitizer_score_label_flip": pa.array(rng.uniform(1, 3, n_held)),
    }), out / "quarantine" / "part-00000-of-00001.parquet")
    provenance = {
        "columns": {"label": "label", "id": "rid", "features": ["pixels"] if image_side else FEATURES},
        "counts": {"rows_in": n_clean + n_held, "clean": n_clean, "quarantined": n_held},
        "outputs": {"clean": [{"path": "clean/part-00000-of-00001.parquet", "rows": n_clean}],
                    "quarantine": [{"path": "quarantine/part-00000-of-00001.parquet", "rows": n_held}]},
    }
    return {"provenance": provenance, "Xc": Xc, "Xq": Xq, "yc": yc}


def test_tabular_rows_show_their_furthest_features_beside_the_neighbours(tmp_path):
    out = tmp_path / "out"
    made = write_output(out, n_held=60, n_clean=3000, extra=True)
    q = load_quarantine(str(out), made["provenance"], MAX_ROWS)
    Xc, Xq, yc = made["Xc"], made["Xq"], made["yc"]
    assert q.thumbs is None and q.features is not None
    assert q.features["names"] == FEATURES
    # typical ranges: 5th-95th percentile of every 2nd clean row (3,000 rows, at most SAMPLE_ROWS kept)
    assert SAMPLE_ROWS < 3000 <= 2 * SAMPLE_ROWS
    sample = Xc[::2]
    assert q.features["sample_rows"] == len(sample) and q.features["sample_from"] == "clean"
    for j, (lo, hi) in enumerate(q.features["typical"]):
        assert (lo, hi) == (sig(np.percentile(sample[:, j], 5)), sig(np.percentile(sample[:, j], 95)))

    by_id = {r["id"]: r for r in q.rows}
    for i in range(60):
        row = by_id[str(10**6 + i)]
        feat = row["feat"]
        assert 0 < len(feat) <= SHOWN_FEATURES and feat == sorted(set(feat))
        assert row["v"] == [sig(Xq[i, j]) for j in feat]
        if i % 4 == 0:
            assert (7 * i) % 32 in feat  # the feature the evidence names, far outside its range
        for f in row["refs"]:
            if f["detector"] != "label_flip":
                continue
            ref = q.references[f["id"]]
            j = int(f["id"])
            assert ref["label"] == f["label"] == str(yc[j]) and "quarantined" not in ref
            assert set(feat) <= set(ref["feat"]) and len(ref["v"]) == len(ref["feat"])
            assert ref["v"] == [sig(Xc[j, k]) for k in ref["feat"]]
    assert None in by_id[str(10**6 + 3)]["v"] and 5 in by_id[str(10**6 + 3)]["feat"]  # NaN: shown, as null
    assert "no-such-row" not in q.references  # not in the output: absent
    assert q.references[str(10**6 + 1)]["quarantined"] is True  # a neighbour that is itself held
    assert all(r.get("px") is None for r in q.references.values())
    script_json({"rows": q.rows, "references": q.references, "features": q.features})  # finite JSON only


@pytest.mark.parametrize("kind", ["8x8 images", "32 scalar features"])
def test_five_thousand_rows_with_five_neighbours_each_stay_light(tmp_path, kind):
    out = tmp_path / "out"
    n = MAX_ROWS
    provenance = write_output(out, n_held=n, n_clean=5 * n + 1000, neighbours=5,
                              image_side=8 if kind == "8x8 images" else None)["provenance"]
    q = load_quarantine(str(out), provenance, MAX_ROWS)
    assert len(q.rows) == n and len(q.references) == 5 * n and q.references_skipped == 0
    assert all(len(r["refs"]) == 5 for r in q.rows)
    if kind == "8x8 images":
        assert all("px" in ref for ref in q.references.values())
    else:
        assert all(len(r["feat"]) == SHOWN_FEATURES for r in q.rows)
    size = len(script_json({"rows": q.rows, "references": q.references, "features": q.features}))
    print(f"{kind}: rows + references JSON {size:,} bytes")
    assert size < SIZE_LIMIT, f"{kind}: {size:,} bytes"


def test_the_lookup_reads_beam_filesystems_and_survives_a_missing_shard(tmp_path):
    """A Beam FileSystem registered for a made-up scheme stands in for gs:// or s3://; a listed clean shard
    that is gone leaves its rows not found (counted), and the report is still built."""
    from apache_beam.io.localfilesystem import LocalFileSystem

    root = tmp_path / "bucket"

    class NeighbourTestFileSystem(LocalFileSystem):  # found by FileSystems through FileSystem's subclasses
        @classmethod
        def scheme(cls):
            return "sanitizerneighbours"

        def open(self, path, *args, **kwargs):
            return super().open(str(root / path.split("://", 1)[1]), *args, **kwargs)

    made = write_output(root / "out", n_held=40, n_clean=500, extra=True)
    local = load_quarantine(str(root / "out"), made["provenance"], MAX_ROWS)
    remote = load_quarantine("sanitizerneighbours://out", made["provenance"], MAX_ROWS)
    assert remote.references == local.references and len(local.references) > 40
    assert remote.rows == local.rows and remote.features == local.features

    gone = dict(made["provenance"], outputs=dict(made["provenance"]["outputs"]))
    gone["outputs"]["clean"] = [*gone["outputs"]["clean"], {"path": "clean/part-gone.parquet", "rows": 1}]
    q = load_quarantine(str(root / "out"), gone, MAX_ROWS)
    assert q.reference_shards_unreadable == 1 and q.references == local.references
    (root / "out" / "clean" / "part-00000-of-00001.parquet").unlink()
    q = load_quarantine(str(root / "out"), made["provenance"], MAX_ROWS)
    assert q.reference_shards_unreadable == 1
    assert {i for i, ref in q.references.items() if not ref.get("quarantined")} == set()  # only held ones found
    assert q.features["sample_from"] == "quarantine"
