"""MkDocs hook: the site's home page is README.md, its links made relative to docs/.

docs/index.md only holds the page's place in the nav; at build time its source is replaced by the
README, so the front page of the repository and of the site are one text.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def home_markdown() -> str:
    """README.md as the site's home page: links into docs/ become links between pages."""
    return README.read_text(encoding="utf-8").replace("](docs/", "](")


def on_page_read_source(page, config):  # MkDocs event: the page's Markdown, or None to read the file
    return home_markdown() if page.file.src_uri == "index.md" else None
