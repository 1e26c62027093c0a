"""The documentation: README.md is the front page, docs/ an MkDocs site that builds without a warning.

`mkdocs build --strict` with mkdocs.yml's validation fails on a broken link or anchor, a page missing
from the navigation, or a nav entry without a page. The README stays short and leads into the site.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"


def nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def relative_links(text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:|#", t)]


def test_the_site_builds_strictly(tmp_path):
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=REPO, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    assert (tmp_path / "site" / "detectors" / "index.html").is_file()


def test_every_page_is_in_the_navigation_and_every_entry_has_a_page():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    in_nav = nav_pages(config["nav"])
    on_disk = sorted(p.name for p in DOCS.glob("*.md"))
    assert sorted(in_nav) == on_disk


def test_the_readme_is_a_front_page_that_leads_into_the_docs():
    text = README.read_text()
    assert len(text.splitlines()) < 300, "README.md is the front page: move detail into docs/"
    for command in ("make demo", "make test"):
        assert re.search(rf"^{command}\b", text, re.M), f"README.md must give the set-up command `{command}`"
    links = relative_links(text)
    missing = [t for t in links if not (REPO / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    pages = nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
    linked = {t.split("#")[0] for t in links}
    unlinked = [p for p in pages if p != "index.md" and f"docs/{p}" not in linked]
    assert not unlinked, f"README.md does not link to these docs pages: {unlinked}"


def test_the_site_home_is_the_readme(tmp_path):
    """The site's home page is built from README.md (docs/hooks/readme_home.py), its links between pages."""
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=REPO, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    home = (tmp_path / "site" / "index.html").read_text()
    first = next(line for line in README.read_text().splitlines() if line and not line.startswith(("#", "<", "[")))
    assert re.sub(r"[`*_]", "", first)[:40] in re.sub(r"<[^>]+>", "", home)
    assert 'href="detectors/"' in home and "docs/detectors" not in home


def test_the_docs_describe_the_product_not_how_it_was_built():
    words = re.compile(r"the issue's|issue \d+|target not reached|not reached\)|as before", re.I)
    found = [f"{p.name}: {m.group(0)}" for p in [README, *DOCS.glob("*.md")] for m in words.finditer(p.read_text())]
    assert not found, found
