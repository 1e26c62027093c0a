"""The HTML quarantine report (sanitizer.report), checked in a real browser.

Every page is opened from disk by Debian's headless Chromium (``make browser``
installs it; these tests fail, not skip, without it). A test reads the DOM
after the page's scripts ran (``--dump-dom``) and Chromium's console log, so
it sees what a reviewer would: the numbers, the suspects table, script errors,
and whether anything injected through the data ran.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import POISONED_ON_PURPOSE, load_json, pixels_array, read_dir, run_cli

from sanitizer.report import MAX_ROWS, REPORT, write_report
from sanitizer.simulate import flip_labels, inject_outliers

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SCRIPT_PAYLOAD = "</script><script>document.title='pwned'</script>"
IMG_PAYLOAD = "<img src=x onerror=alert(1)>"
IMG_TITLE_PAYLOAD = "<img src=x onerror=\"document.title='pwned-img'\">"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--enable-logging=stderr", "--v=0",
]


# --------------------------------------------------------------------------- browser


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if path is None:
        pytest.fail("Chromium is not installed: run `make browser` (installs Debian's chromium and chromium-driver)",
                    pytrace=False)
    return path


class Page:
    """What Chromium made of a page: the DOM after scripts ran, and the console messages it logged."""

    def __init__(self, dom: str, log: str):
        self.dom = dom
        self.log = log
        self.root = parse_dom(dom)

    @property
    def console(self) -> list[str]:
        # Chromium logs every console message and uncaught error as "...:CONSOLE:<line>] "<message>", source: ...".
        # The report never logs anything, so any such line is a problem.
        return [line for line in self.log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]

    def by_id(self, ident: str) -> Node | None:
        return next((n for n in self.root.walk() if n.attrs.get("id") == ident), None)

    def text_of(self, ident: str) -> str:
        node = self.by_id(ident)
        assert node is not None, f"no element #{ident} in the rendered page"
        return node.text()

    def elements(self, tag: str) -> list[Node]:
        return [n for n in self.root.walk() if n.tag == tag]

    def suspect_rows(self) -> list[list[str]]:
        body = self.by_id("suspects-body")
        assert body is not None, "the suspects table is missing"
        return [[td.text() for td in tr.children if td.tag == "td"] for tr in body.children if tr.tag == "tr"]

    def assert_healthy(self) -> None:
        """The page's scripts ran to the end, reported no error, and the console stayed quiet."""
        body = self.elements("body")[0]
        errors = self.by_id("js-errors")
        assert errors is not None, "the page has no #js-errors box"
        reported = [n.text() for n in errors.children if isinstance(n, Node)]
        assert reported == [], f"the page reported {len(reported)} error(s), first ones: {reported[:5]}"
        assert body.attrs.get("data-report-ready") == "1", "the report's script did not finish"
        assert "data-js-errors" not in body.attrs
        assert self.console == [], "console messages / uncaught errors:\n" + "\n".join(self.console)


def open_page(html_path: Path, tmp_path: Path, fragment: str = "", screenshot: Path | None = None,
              window: str = "1400,1000") -> Page:
    browser = chromium_path()
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    url = html_path.resolve().as_uri() + fragment
    args = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window}"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        if screenshot.exists():
            screenshot.unlink()
        args.append(f"--screenshot={screenshot}")
    else:
        args.append("--dump-dom")
    proc = subprocess.run(args + [url], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    if screenshot is None:
        assert "<body" in proc.stdout, f"chromium dumped no DOM:\n{proc.stderr[-3000:]}"
    return Page(proc.stdout, proc.stderr)


def fragment(**params: str) -> str:
    """The report keeps its table view in the address: #q=...&reason=...&sort=...&dir=..."""
    return "#" + urlencode(params, quote_via=quote)


# --------------------------------------------------------------------------- a tiny DOM

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v or "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(html: str) -> Node:
    b = _Builder()
    b.feed(html)
    b.close()
    return b.root


# --------------------------------------------------------------------------- PNG check


def png_info(path: Path) -> dict:
    """Parse a PNG without any imaging library: size, and how varied its pixels are."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None and idat, "PNG without IHDR or IDAT"
    width, height, depth, colour = header[:4]
    raw = zlib.decompress(b"".join(idat))
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    assert len(raw) == height * (1 + width * channels * depth // 8), "truncated image data"
    sample = np.frombuffer(raw, dtype=np.uint8)
    return {"width": width, "height": height, "bytes": len(data), "distinct": len(np.unique(sample))}


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, digits):
    """``sanitize run`` on 720 digits with planted outliers and label flips; some ids and labels are HTML/JS."""
    X, y = digits
    n = 720
    X, y = X[:n], y[:n]
    Xp, outliers = inject_outliers(X, 0.03, seed=0, kind="shift")
    yp, _ = flip_labels(y, 0.05, seed=1)
    ids = np.array([f"digit-{i:05d}" for i in range(n)], dtype=object)
    labels = np.array([str(v) for v in yp], dtype=object)
    ids[outliers[0]] = "id-" + SCRIPT_PAYLOAD
    ids[outliers[1]] = "id-" + IMG_PAYLOAD
    ids[outliers[2]] = "id-" + IMG_TITLE_PAYLOAD
    for i in outliers[3:6]:
        labels[i] = IMG_PAYLOAD  # a (tiny) class whose name is markup
    root = tmp_path_factory.mktemp("report-run")
    path = root / "in.parquet"
    pq.write_table(pa.table({
        "image_id": pa.array(list(ids), pa.string()),
        "pixels": pixels_array(Xp),
        "label": pa.array(list(labels), pa.string()),
    }), path)
    out = root / "out"
    rc = run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", "image_id",
                 "--seed", "3", *POISONED_ON_PURPOSE)
    assert rc == 0
    provenance = load_json(out / "provenance.json")
    report = Path(write_report(str(out), provenance))
    return {"out": out, "provenance": provenance, "report": report,
            "quarantine": read_dir(out / "quarantine")}


def test_report_of_a_real_run(real_run, tmp_path):
    report, prov = real_run["report"], real_run["provenance"]
    assert report == real_run["out"] / REPORT and report.is_file()
    page = open_page(report, tmp_path)
    page.assert_healthy()

    counts = prov["counts"]
    assert counts["quarantined"] > 0
    for ident, key in (("rows-in", "rows_in"), ("rows-clean", "clean"), ("rows-quarantined", "quarantined")):
        node = page.by_id(ident)
        assert node is not None, f"#{ident} missing"
        assert node.attrs["data-value"] == str(counts[key])
        assert node.text() == f"{counts[key]:,}"

    rows = page.suspect_rows()
    assert len(rows) == min(counts["quarantined"], 100)  # first page
    shown_ids = {r[1] for r in rows}
    assert shown_ids <= set(real_run["quarantine"].column("image_id").to_pylist())
    assert "Nothing quarantined" not in page.dom
    # every detector with scores got a histogram; label flips got their matrix; classes their bars
    charts = {n.attrs.get("aria-label", "") for n in page.elements("svg")}
    for detector, counted in prov["counts"]["by_detector"].items():
        assert f"Histogram of {detector} scores of quarantined rows" in charts
        # the whole distribution too, merged in the pipeline: every scored row, clean ones included
        assert f"Histogram of {detector} scores of every scored row" in charts
        assert sum(counted["histogram"]["counts"]) == counted["scored"] > counts["quarantined"]
        assert f"All {counted['scored']:,} scored rows in 40 fixed bins" in page.dom
    assert "Label flips: given label by suggested label" in charts
    assert "Quarantined share per class" in charts
    assert page.elements("canvas"), "no thumbnails drawn for the 8x8 pixel column"
    assert "counts every scored row" in page.dom

    shot = ARTIFACTS / "report.png"
    open_page(report, tmp_path, screenshot=shot, window="1400,3400")
    info = png_info(shot)
    assert (info["width"], info["height"]) == (1400, 3400)
    assert info["bytes"] > 20_000 and info["distinct"] > 50, f"screenshot looks blank: {info}"


def test_markup_in_the_data_is_shown_as_text_and_never_runs(real_run, tmp_path):
    q = real_run["quarantine"]
    quarantined_ids = q.column("image_id").to_pylist()
    payload_ids = ["id-" + SCRIPT_PAYLOAD, "id-" + IMG_PAYLOAD, "id-" + IMG_TITLE_PAYLOAD]
    assert set(payload_ids) <= set(quarantined_ids), "precondition: the rows carrying markup were quarantined"
    assert IMG_PAYLOAD in q.column("label").to_pylist(), "precondition: a row labelled with markup was quarantined"

    html = real_run["report"].read_text(encoding="utf-8")
    for payload in (SCRIPT_PAYLOAD, IMG_PAYLOAD, IMG_TITLE_PAYLOAD, "</script><script>"):
        assert payload not in html, f"{payload!r} is in report.html unescaped"

    page = open_page(real_run["report"], tmp_path, fragment=fragment(q="id-", sort="id", dir="asc"))
    page.assert_healthy()
    title = page.elements("title")[0].text()
    assert title.startswith("Quarantine report") and "pwned" not in title
    # nothing injected: no <img> at all, no inline event handler anywhere, only the page's own four scripts
    assert page.elements("img") == []
    handlers = [(n.tag, k) for n in page.root.walk() for k in n.attrs if k.lower().startswith("on")]
    assert handlers == []
    scripts = page.elements("script")
    assert len(scripts) == 4 and all("pwned" not in s.text() or s.attrs.get("type") == "application/json"
                                     for s in scripts)
    # ... and the markup is there, literally, as text
    rows = page.suspect_rows()
    assert sorted(r[1] for r in rows) == sorted(payload_ids)  # the filter from the address matched them
    classes = page.by_id("classes")
    assert classes is not None and IMG_PAYLOAD in classes.text()
    assert IMG_PAYLOAD in " ".join(n.text() for n in page.elements("svg"))

    labelled = open_page(real_run["report"], tmp_path, fragment=fragment(q=IMG_PAYLOAD))
    labelled.assert_healthy()
    rows = labelled.suspect_rows()
    assert all(IMG_PAYLOAD in r[1] + r[2] for r in rows)
    assert sum(r[2] == IMG_PAYLOAD for r in rows) >= 1, "the markup label is not shown as text"


def test_sorting_and_filtering_from_the_address(real_run, tmp_path):
    page = open_page(real_run["report"], tmp_path, fragment=fragment(reason="outlier", sort="score:outlier", dir="desc"))
    page.assert_healthy()
    rows = page.suspect_rows()
    codes = real_run["quarantine"].column("sanitizer_reason_codes").to_pylist()
    assert len(rows) == min(sum("outlier" in c for c in codes), 100)
    header = [th.text().strip().rstrip("▲▼") for th in page.by_id("suspects").walk() if th.tag == "th"]
    scores = [float(r[header.index("outlier")]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all("outlier" in r[header.index("reasons")] for r in rows)


# --------------------------------------------------------------------------- synthetic quarantines


def quarantine_table(n: int, side: int | None = 8, seed: int = 0, payload_every: int = 0) -> pa.Table:
    """``n`` quarantine rows with the pipeline's columns, reasons and evidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    reasons, codes = [], []
    outlier = rng.gamma(2.0, 3.0, n) + 5
    flip = rng.uniform(-0.5, 1.0, n)
    for i in range(n):
        entry = []
        if i % 2 == 0:
            entry.append({"detector": "outlier", "code": "outlier", "action": "quarantine",
                          "score": round(float(outlier[i]), 6), "threshold": 5.0,
                          "evidence": {"extreme_features": [{"feature": "pixels[3]", "value": 9.5,
                                                             "typical_range": [0.0, 2.0], "neg_log_tail_p": 6.1}],
                                       "reference": f"class {labels[i]}"}})
        if i % 2 == 1 or i % 3 == 0:
            suggested = str((labels[i] + 1) % 10)
            entry.append({"detector": "label_flip", "code": "label_flip", "action": "quarantine",
                          "score": round(float(flip[i]), 6), "threshold": 0.3 + 0.05 * (labels[i] % 4),
                          "evidence": {"given_label": str(labels[i]), "suggested_label": suggested,
                                       "p_given": 0.01, "p_suggested": 0.9,
                                       "neighbours": [{"id": f"row-{j}", "label": suggested} for j in range(5)]}})
        if payload_every and i % payload_every == 0:
            entry.append({"detector": "validation", "code": f"validation:{IMG_PAYLOAD}", "score": None,
                          "threshold": None, "evidence": {"note": SCRIPT_PAYLOAD}})
        reasons.append(json.dumps(entry))
        codes.append([e["code"] for e in entry])
    cols = {"sanitizer_id": pa.array([f"shard.parquet:{i}" for i in range(n)], pa.string())}
    if side:
        cols["pixels"] = pixels_array(rng.uniform(0, 16, (n, side * side)))
    cols["label"] = pa.array(labels.astype(np.int64))
    cols["sanitizer_reasons"] = pa.array(reasons, pa.string())
    cols["sanitizer_reason_codes"] = pa.array(codes, pa.list_(pa.string()))
    cols["sanitizer_score_outlier"] = pa.array(outlier)
    cols["sanitizer_score_label_flip"] = pa.array(flip)
    return pa.table(cols)


def synthetic_provenance(rows_in: int, table: pa.Table | None) -> dict:
    n = 0 if table is None else table.num_rows
    labels = [] if table is None else table.column("label").to_pylist()
    codes = [] if table is None else table.column("sanitizer_reason_codes").to_pylist()
    by_reason: dict[str, int] = {}
    for c in codes:
        for code in set(c):
            by_reason[code] = by_reason.get(code, 0) + 1
    held = {str(k): labels.count(k) for k in sorted(set(labels))}
    return {
        "run_id": "20260101T000000Z-synthetic",
        "status": "succeeded",
        "runner": "DirectRunner",
        "started_at": "2026-01-01T00:00:00+00:00",
        "columns": {"label": "label", "id": "sanitizer_id", "id_generated": True, "features": ["pixels"]},
        "counts": {
            "rows_in": rows_in, "clean": rows_in - n, "quarantined": n, "invalid": 0, "reported_kept_clean": 0,
            "by_reason": by_reason,
            "by_detector": {"outlier": {"action": "quarantine", "flagged": by_reason.get("outlier", 0),
                                        "scored": rows_in},
                            "label_flip": {"action": "quarantine", "flagged": by_reason.get("label_flip", 0),
                                           "scored": rows_in}},
            "by_class": {"rows": {str(k): rows_in // 10 for k in range(10)}, "quarantined": held},
        },
        "detectors": {"outlier": {"status": "fitted", "threshold": 5.0},
                      "label_flip": {"status": "fitted"},
                      "feature_collision": {"status": "skipped", "reason": "no embedding: <b>none</b>"}},
        "accounting": {"input_rows": rows_in, "clean_rows": rows_in - n, "quarantined_rows": n, "holds": True,
                       "problems": []},
        "outputs": {"quarantine": [{"path": "quarantine/part-00000-of-00001.parquet", "rows": n}] if table else []},
        "warnings": [],
    }


@pytest.mark.parametrize("shard", ["empty shard", "no shard"])
def test_nothing_quarantined(tmp_path, shard):
    out = tmp_path / "out"
    (out / "quarantine").mkdir(parents=True)
    table = None
    if shard == "empty shard":
        table = quarantine_table(1).slice(0, 0)
        pq.write_table(table, out / "quarantine" / "part-00000-of-00001.parquet")
    provenance = synthetic_provenance(500, table)
    report = Path(write_report(str(out), provenance))
    page = open_page(report, tmp_path)
    page.assert_healthy()
    assert "Nothing quarantined" in page.text_of("nothing-quarantined")
    assert page.by_id("rows-quarantined").attrs["data-value"] == "0"
    assert page.by_id("rows-in").text() == "500"
    assert page.by_id("suspects") is None
    assert "no embedding: <b>none</b>" in page.text_of("detectors")  # the skipped reason, as text


def test_thousands_of_rows_stay_light(tmp_path):
    n = MAX_ROWS + 1000
    out = tmp_path / "out"
    (out / "quarantine").mkdir(parents=True)
    table = quarantine_table(n, side=28, payload_every=97)  # 28x28 images, like MNIST
    pq.write_table(table, out / "quarantine" / "part-00000-of-00001.parquet")
    provenance = synthetic_provenance(60_000, table)
    report = Path(write_report(str(out), provenance))
    size = report.stat().st_size
    assert size < 15_000_000, f"report.html is {size:,} bytes"

    page = open_page(report, tmp_path)
    page.assert_healthy()
    note = page.text_of("cap-note")
    assert f"Showing {MAX_ROWS:,} of {n:,} quarantined rows" in note and "1,000 more" in note
    assert "quarantine/*.parquet" in note
    rows = page.suspect_rows()
    assert len(rows) == 100
    assert f"of {MAX_ROWS:,}" in page.text_of("table-status")
    own = [c for c in page.elements("canvas") if (c.parent.attrs.get("class") or "") == "thumbcell"]
    assert len(own) == 100  # thumbnails drawn for the visible page only (neighbours' ones sit in the evidence)
    # markup in reason codes and evidence is text too
    assert page.elements("img") == []
    assert not [k for node in page.root.walk() for k in node.attrs if k.lower().startswith("on")]
    data = json.loads(page.by_id("report-data").text())
    assert len(data["rows"]) == MAX_ROWS
    assert data["thumb"]["side"] <= 28
    assert len(base64.b64decode(data["rows"][0]["px"])) == data["thumb"]["side"] ** 2
    filtered = open_page(report, tmp_path, fragment=fragment(reason=f"validation:{IMG_PAYLOAD}"))
    filtered.assert_healthy()
    hits = filtered.suspect_rows()
    assert hits and all(f"validation:{IMG_PAYLOAD}" in r[5] for r in hits)  # after the thumbnail and decision cells
    assert any(SCRIPT_PAYLOAD in r[-1] for r in hits)


def test_tabular_data_failed_row_checks_and_many_classes(tmp_path):
    """No image column, rows without scores (failed row checks), null labels, 300 classes, a bare provenance."""
    n = 900
    rng = np.random.default_rng(1)
    labels = [None if i % 50 == 0 else f"class-{i % 300}" for i in range(n)]
    reasons, codes, scores = [], [], []
    for i in range(n):
        if i % 3 == 0:
            entry = [{"detector": "validation", "code": "invalid:nan:a", "score": None, "threshold": None,
                      "evidence": {"column": "a"}}]
            scores.append(float("nan"))
        else:
            s = float(rng.uniform(5, 9))
            entry = [{"detector": "outlier", "code": "outlier", "action": "quarantine", "score": s,
                      "threshold": 5.0, "evidence": {"extreme_features": [{"feature": "b", "value": 1e9}]}}]
            scores.append(s)
        reasons.append(json.dumps(entry))
        codes.append([e["code"] for e in entry])
    table = pa.table({
        "rid": pa.array(np.arange(n, dtype=np.int64)),
        "a": pa.array(rng.normal(size=n)),
        "b": pa.array(rng.normal(size=n)),
        "label": pa.array(labels, pa.string()),
        "sanitizer_reasons": pa.array(reasons, pa.string()),
        "sanitizer_reason_codes": pa.array(codes, pa.list_(pa.string())),
        "sanitizer_score_outlier": pa.array(scores),
    })
    out = tmp_path / "out"
    (out / "quarantine").mkdir(parents=True)
    pq.write_table(table, out / "quarantine" / "part-00000-of-00001.parquet")
    held: dict[str, int] = {}
    for lab in labels:
        held["<null>" if lab is None else lab] = held.get("<null>" if lab is None else lab, 0) + 1
    provenance = {
        "columns": {"label": "label", "id": "rid", "features": ["a", "b"]},
        "counts": {"rows_in": 30_000, "clean": 30_000 - n, "quarantined": n, "invalid": n // 3,
                   "by_class": {"rows": {k: 100 for k in held}, "quarantined": held}},
    }
    report = Path(write_report(str(out), provenance))
    page = open_page(report, tmp_path)
    page.assert_healthy()
    assert page.by_id("rows-quarantined").attrs["data-value"] == str(n)
    assert page.elements("canvas") == []  # no square list column: no thumbnails
    rows = page.suspect_rows()
    assert len(rows) == 100
    assert rows[0][3] == "ReleaseConfirm"  # the decision buttons (Release disabled here: tests/test_review_page.py)
    assert rows[0][4] == "invalid:nan:a" and rows[0][5] == "–"  # hard failures first; no score shown as a dash
    null_rows = open_page(report, tmp_path, fragment=fragment(sort="label", dir="desc")).suspect_rows()
    assert "(null)" not in {r[2] for r in null_rows}  # missing labels sort last, whichever the direction
    assert "<null>" in page.text_of("classes")
    assert "Quarantined share per class" in {svg.attrs.get("aria-label") for svg in page.elements("svg")}


def test_outlier_evidence_reads_as_signals_and_named_neighbours():
    """The reviewer sees which signal fired, against what threshold, and which reference rows were nearest."""
    from sanitizer.report.evidence import summarise_reasons

    reason = {"detector": "outlier", "code": "outlier", "score": 2.1, "threshold": 1.0,
              "evidence": {"reference": "class 5", "fired": ["knn"],
                           "signals": {"tail": 4.2, "tail_threshold": 10.0, "knn": 12.6, "knn_threshold": 6.0},
                           "extreme_features": [{"feature": "pixels[15]", "value": 11.6, "typical_range": [0.0, 2.6]}],
                           "nearest": [{"id": "digit-01078", "distance": 8.95}, {"id": "digit-00415", "distance": 9.12}]}}
    lines = summarise_reasons([reason])[0]["lines"]
    text = "\n".join(lines)
    assert "extreme features: pixels[15] = 11.6 (typical 0–2.6)" in text
    assert "signals: most extreme feature 4.2 nats vs 10; k-NN distance 12.6 nats vs 6 (fired)" in text
    assert "nearest reference rows: digit-01078 (distance 8.95), digit-00415 (distance 9.12)" in text


def test_feature_collision_evidence_reads_as_direction_distances_and_votes():
    """The reviewer sees where the embedding is drawn, how far its own class is against what is typical,
    which signals fired at how many nats, the vote and the nearest rows with their labels."""
    from sanitizer.report.evidence import summarise_reasons

    reason = {"detector": "feature_collision", "code": "feature_collision", "score": 1.4, "threshold": 1.0,
              "evidence": {"signals": ["group", "deep_knn"], "given_label": "3", "toward_label": "6",
                           "own_distance": 10.7, "other_distance": 2.23, "other_label": "5",
                           "typical_own_distance": 4.12, "margin": 1.6, "group_margin": 0.86,
                           "nats": {"margin": 5.2, "group": 8.4, "cluster": 4.0}, "threshold_nats": 6.0,
                           "k": 51, "votes": {"3": 3, "6": 48}, "vote_ratio": 10.0,
                           "nearest": [{"id": "digit-00223", "label": "6", "distance": 1.2}]}}
    text = "\n".join(summarise_reasons([reason])[0]["lines"])
    assert "embedding drawn from 3 toward 6: its own-class neighbours are drawn the same way; another class " \
           "outvotes its own" in text
    assert "own class at 10.7 (typical 4.12), class 5 at 2.23; margin 1.6, group margin 0.86" in text
    assert "nats: margin 5.2, group 8.4, cluster 4 (threshold 6)" in text
    assert "votes among 51 nearest: 6 48, 3 3 (ratio 10)" in text
    assert "nearest: digit-00223 (6)" in text
