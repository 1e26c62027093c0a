"""Reviewing in report.html, driven as a reviewer drives it: Debian's headless Chromium through
chromedriver (Selenium), keyboard and mouse, a real download, then ``sanitize review OUT import``
and ``sanitize publish``.

- the demo's report: release two suspects and confirm one with the keyboard, reload (the decisions
  survive), download the decisions file, import it, publish, and the released rows are in the
  verified clean set (the confirmed one is not); a screenshot for the README;
- a run with a row that failed a row check and ids, labels and a reason that are markup: the row's
  Release button is disabled, the markup stays text in the controls and in the export, and a
  decisions file edited to name an unknown id, a changed record or that row's release is refused
  by import, line by line.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import POISONED_ON_PURPOSE, load_json, pixels_array, read_dir, run_cli

from sanitizer.simulate import flip_labels, inject_outliers

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SCRIPT_PAYLOAD = "</script><script>document.title='pwned'</script>"
IMG_PAYLOAD = "<img src=x onerror=\"document.title='pwned-img'\">"
REASON_PAYLOAD = "<b onmouseover=alert(1)>looks fine</b>"


# --------------------------------------------------------------------------- the browser


@pytest.fixture()
def browser(tmp_path):
    """Headless Chromium under chromedriver, downloads going to ``tmp_path/downloads``."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.access(chromium, os.X_OK) and os.access(driver_path, os.X_OK)):
        pytest.fail("Chromium and chromedriver are not installed: run `make browser`", pytrace=False)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1500,1100",
                f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def open_report(driver, report: Path):
    from selenium.webdriver.common.by import By

    driver.get(report.resolve().as_uri())
    wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-report-ready") == "1",
             "the report's scripts did not finish")
    assert_quiet(driver)


def assert_quiet(driver):
    from selenium.webdriver.common.by import By

    errors = driver.find_element(By.ID, "js-errors").text
    assert errors == "", f"the page reported errors: {errors}"
    logged = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "WARNING")]
    assert logged == [], f"console: {logged}"
    assert "pwned" not in driver.title


def wait_for(check, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(what)


def press(driver, *keys: str):
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for k in keys:
        chain.send_keys(k)
    chain.perform()


def click(driver, element):
    """Click as a reviewer would: scrolled to the middle of the window first (the navigation bar is sticky)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def table_ids(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#suspects-body tr')).map(tr => tr.cells[1].textContent)")


def tally(driver) -> tuple[int, int]:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "review-tally")
    return int(box.get_attribute("data-released")), int(box.get_attribute("data-confirmed"))


def downloaded(driver) -> Path:
    found: list[Path] = []

    def done():
        found[:] = [p for p in driver.downloads.iterdir() if p.suffix == ".jsonl"]
        return bool(found)

    wait_for(done, "no decisions file was downloaded")
    return found[0]


def quarantine_hashes(out: Path, id_column: str) -> dict[str, str]:
    q = read_dir(out / "quarantine")
    return dict(zip(q.column(id_column).to_pylist(), q.column("sanitizer_content_sha256").to_pylist()))


def published_clean_ids(out: Path, id_column: str) -> set[str]:
    """The ids of the clean set the current manifest publishes, each shard checked against its sha256."""
    from sanitizer.training import load_manifest

    return set(load_manifest(str(out)).to_table([id_column]).column(id_column).to_pylist())


# --------------------------------------------------------------------------- the demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    assert run_cli("demo", "--workdir", work) == 0
    out = work / "out"
    q = read_dir(out / "quarantine")
    suspects = []
    for rid, label, codes, reasons in zip(q.column("image_id").to_pylist(), q.column("label").to_pylist(),
                                          q.column("sanitizer_reason_codes").to_pylist(),
                                          q.column("sanitizer_reasons").to_pylist()):
        flip = next((json.loads(r["evidence_json"]) for r in reasons if r["detector"] == "label_flip"), {})
        suspects.append({"id": rid, "label": str(label), "codes": codes, "suggested": flip.get("suggested_label")})
    return {"out": out, "report": out / "report.html", "provenance": load_json(out / "provenance.json"),
            "suspects": suspects, "planted": load_json(work / "input" / "planted.json")}


def test_the_demo_catches_its_planted_poison_and_spares_clean_rows(demo):
    """The first command a user runs: what it prints must stay true (README: 54 of 54, 81 of 89, 2 clean)."""
    held = {s["id"] for s in demo["suspects"]}
    outliers, flips = set(demo["planted"]["outlier"]), set(demo["planted"]["label_flip"])
    assert len(held & outliers) >= 0.95 * len(outliers)
    assert len(held & flips) >= 0.85 * len(flips)
    assert len(held - outliers - flips) <= 0.01 * (demo["provenance"]["counts"]["rows_in"] - len(outliers | flips))


def test_review_the_demo_in_the_page_then_import_and_publish(demo, browser, tmp_path, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out, report = demo["out"], demo["report"]
    open_report(browser, report)
    ids = table_ids(browser)
    assert len(ids) >= 3 and tally(browser) == (0, 0)

    browser.find_element(By.ID, "reviewer").send_keys("ana")
    browser.find_element(By.ID, "decision-reason").send_keys("a clean digit, thick stroke")
    press(browser, Keys.ESCAPE, "j", "r", "r")  # Esc leaves the text box; then the keys drive the table  # first row, release (the cursor moves on), release the second
    browser.find_element(By.ID, "decision-reason").clear()
    press(browser, Keys.ESCAPE, "c")  # confirm the third
    assert tally(browser) == (2, 1)
    rows = browser.find_elements(By.CSS_SELECTOR, "#suspects-body tr")
    assert [r.get_attribute("class").split()[0] for r in rows[:3]] == ["decided-release", "decided-release",
                                                                        "decided-confirm"]
    assert "a clean digit, thick stroke" in rows[0].text
    assert "current" in rows[3].get_attribute("class")  # the cursor moved past the confirmed row
    press(browser, *"j" * 12)  # far down the table: the review bar stays in view, the current row below it
    row_top, bar_top, bar_bottom, height = browser.execute_script("""
        const r = document.querySelector('#suspects-body tr.current').getBoundingClientRect();
        const b = document.getElementById('review-bar').getBoundingClientRect();
        return [r.top, b.top, b.bottom, innerHeight];""")
    assert 0 <= bar_top < bar_bottom <= row_top < height

    # each suspect beside the neighbours its evidence names: label_flip's carry the suggested label
    flip = next(r for r in demo["suspects"] if "label_flip" in r["codes"])
    strip = browser.execute_script("""
        const tr = Array.from(document.querySelectorAll('#suspects-body tr')).find(t => t.cells[1].textContent === arguments[0]);
        return Array.from(tr.querySelectorAll('figure.nb')).map(f => [f.className, f.querySelector('.nb-label').textContent,
                                                                       !!f.querySelector('canvas')]);""", flip["id"])
    assert strip[0] == ["nb self", flip["label"], True]
    suggested = [label for cls, label, drawn in strip if "suggested" in cls and drawn]
    assert suggested and set(suggested) == {flip["suggested"]}

    browser.refresh()  # decisions survive a reload (localStorage, keyed by the run id)
    open_report(browser, report)
    assert tally(browser) == (2, 1)
    assert "restored 3 decision(s)" in browser.find_element(By.ID, "review-status").text
    browser.set_window_size(1500, 1500)
    browser.execute_script("document.getElementById('review-bar').scrollIntoView()")
    shot = ARTIFACTS / "review.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000

    click(browser, browser.find_element(By.ID, "download-decisions"))
    path = downloaded(browser)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    hashes = quarantine_hashes(out, "image_id")
    assert [(d["id"], d["decision"]) for d in lines] == [(ids[0], "release"), (ids[1], "release"),
                                                          (ids[2], "confirm")]
    for d in lines:
        assert d["content_sha256"] == hashes[d["id"]] and d["run_id"] == demo["provenance"]["run_id"]
        assert d["reviewer"] == "ana" and d["time"].endswith("Z")
    assert lines[0]["reason"] == "a clean digit, thick stroke" and lines[2]["reason"] == "confirmed in report.html"

    capsys.readouterr()
    assert run_cli("review", out, "import", path) == 0
    said = capsys.readouterr().out
    assert "took 3" in said and "refused" not in said
    assert run_cli("publish", out) == 0
    clean = published_clean_ids(out, "image_id")
    assert {ids[0], ids[1]} <= clean and ids[2] not in clean

    click(browser, browser.find_element(By.ID, "clear-decisions"))
    click(browser, browser.find_element(By.ID, "clear-decisions"))  # a second click confirms
    assert tally(browser) == (0, 0)
    browser.refresh()
    open_report(browser, report)
    assert tally(browser) == (0, 0)


# --------------------------------------------------------------------------- markup and a failed row check


@pytest.fixture(scope="module")
def marked(tmp_path_factory, digits):
    """600 digits, outliers and flips planted; three outliers carry markup ids, one a markup label, one a NaN."""
    X, y = digits
    n = 600
    Xp, outliers = inject_outliers(X[:n], 0.04, seed=2, kind="shift")
    yp, _ = flip_labels(y[:n], 0.04, seed=3)
    ids = np.array([f"digit-{i:05d}" for i in range(n)], dtype=object)
    labels = np.array([str(v) for v in yp], dtype=object)
    ids[outliers[0]] = "id-" + SCRIPT_PAYLOAD
    ids[outliers[1]] = "id-" + IMG_PAYLOAD
    labels[outliers[2]] = IMG_PAYLOAD
    broken = int(outliers[3])
    Xp[broken, 5] = np.inf  # a failed row check (a missing value would only be reported)
    root = tmp_path_factory.mktemp("marked")
    path = root / "in.parquet"
    pq.write_table(pa.table({"image_id": pa.array(list(ids), pa.string()), "pixels": pixels_array(Xp),
                             "label": pa.array(list(labels), pa.string())}), path)
    out = root / "out"
    assert run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", "image_id",
                   "--seed", "4", "-q", *POISONED_ON_PURPOSE) == 0
    return {"out": out, "report": out / "report.html", "broken": str(ids[broken]),
            "payload_ids": ["id-" + SCRIPT_PAYLOAD, "id-" + IMG_PAYLOAD]}


def test_markup_stays_text_in_the_controls_and_the_export(marked, browser):
    from selenium.webdriver.common.by import By

    open_report(browser, marked["report"])
    box = browser.find_element(By.ID, "filter-text")
    box.send_keys("id-")
    wait_for(lambda: sorted(table_ids(browser)) == sorted(marked["payload_ids"]), "the filter did not match")
    browser.find_element(By.ID, "reviewer").send_keys(IMG_PAYLOAD)
    browser.find_element(By.ID, "decision-reason").send_keys(REASON_PAYLOAD)
    click(browser, browser.find_element(By.ID, "bulk-release"))
    assert tally(browser) == (2, 0)
    notes = [n.text for n in browser.find_elements(By.CSS_SELECTOR, "#suspects-body .dec-note")]
    assert notes == [REASON_PAYLOAD, REASON_PAYLOAD]  # the markup, as text
    counts = browser.execute_script(
        "return [document.querySelectorAll('img').length, document.querySelectorAll('b[onmouseover]').length,"
        " document.scripts.length]")
    assert counts == [0, 0, 4]  # nothing injected: no image, no handler, only the page's own scripts
    click(browser, browser.find_element(By.ID, "download-decisions"))
    lines = [json.loads(line) for line in downloaded(browser).read_text().splitlines()]
    assert sorted(d["id"] for d in lines) == sorted(marked["payload_ids"])
    assert {d["reason"] for d in lines} == {REASON_PAYLOAD} and {d["reviewer"] for d in lines} == {IMG_PAYLOAD}
    assert_quiet(browser)


def test_a_row_check_failure_cannot_be_released_and_edited_files_are_refused(marked, browser, tmp_path, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out, broken = marked["out"], marked["broken"]
    open_report(browser, marked["report"])
    box = browser.find_element(By.ID, "filter-text")
    box.send_keys(broken)
    wait_for(lambda: table_ids(browser) == [broken], "the broken row is not in the table")
    release = browser.find_element(By.CSS_SELECTOR, "#suspects-body td.dec button.rel")
    assert release.get_attribute("disabled") is not None and "row check" in release.get_attribute("title")
    browser.find_element(By.ID, "reviewer").send_keys("ana")
    click(browser, browser.find_element(By.CSS_SELECTOR, "#suspects-body td.dec button.con"))  # confirming is allowed
    box.clear()
    box.send_keys("digit-")
    wait_for(lambda: len(table_ids(browser)) >= 2, "no other suspects")
    others = [i for i in table_ids(browser) if i != broken][:2]
    press(browser, Keys.ESCAPE, "j", "r", "r")
    click(browser, browser.find_element(By.ID, "download-decisions"))
    lines = [json.loads(line) for line in downloaded(browser).read_text().splitlines()]
    assert [(d["id"], d["decision"]) for d in lines] == [(broken, "confirm"), (others[0], "release"),
                                                          (others[1], "release")]

    edited = [dict(lines[0], decision="release"),                        # line 1: a row-check failure released
              dict(lines[1], id="digit-99999"),                           # line 2: an id the run never had
              dict(lines[2], content_sha256="0" * 64),                    # line 3: the record "changed"
              lines[1]]                                                   # line 4: fine
    path = tmp_path / "edited.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in edited))
    capsys.readouterr()
    assert run_cli("review", out, "import", path) == 2
    said = capsys.readouterr().out
    assert f"line 1: cannot release '{broken}'" in said
    assert "line 2: unknown id 'digit-99999'" in said
    assert f"line 3: record '{others[1]}' changed since the decision" in said
    assert "line 4" not in said and "took 1 of 4" in said


# --------------------------------------------------------------------------- tabular data


def test_tabular_suspects_show_a_feature_table_beside_their_neighbours(tmp_path, browser):
    """Wine (13 scalar features): no thumbnails, so each suspect shows its most unusual features, the
    typical range of clean rows and each named neighbour's values."""
    from selenium.webdriver.common.by import By
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    X = X.copy()
    X[:4] *= 3.0  # four obvious outliers
    path = tmp_path / "wine.parquet"
    pq.write_table(pa.table({"rid": np.arange(len(y)), **{f"f{j}": X[:, j] for j in range(X.shape[1])},
                             "label": y}), path)
    out = tmp_path / "out"
    assert run_cli("run", "--input", path, "--output", out, "--label-column", "label", "--id-column", "rid",
                   "-q") == 0
    open_report(browser, out / "report.html")
    box = browser.find_element(By.ID, "filter-text")
    box.send_keys("outlier")
    wait_for(lambda: "0" in table_ids(browser), "outlier row 0 not listed")
    cells = browser.execute_script("""
        const tr = Array.from(document.querySelectorAll('#suspects-body tr')).find(t => t.cells[1].textContent === '0');
        const t = tr.querySelector('table.nb-table');
        return t ? Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.textContent)) : null;""")
    assert cells is not None, "no feature table for a tabular suspect"
    head, body = cells[0], cells[1:]
    assert head[:3] == ["feature", "this row", "typical"] and len(head) > 3  # at least one neighbour column
    assert 1 <= len(body) <= 8 and all(row[0].startswith("f") and len(row) == len(head) for row in body)
    shown = {row[0]: float(row[1]) for row in body}
    for name, value in shown.items():  # the row's own values, as stored
        assert abs(value - X[0, int(name[1:])]) <= 1e-3 * max(1.0, abs(X[0, int(name[1:])]))
    assert_quiet(browser)
