"""The report's stylesheets and scripts are files under sanitizer/report/static/, each inlined into the page."""

from __future__ import annotations

from importlib.resources import files

from sanitizer.report import assets, review_assets


def test_every_static_file_is_inlined_whole():
    static = files("sanitizer.report").joinpath("static")
    names = sorted(p.name for p in static.iterdir())
    assert {n.rsplit(".", 1)[1] for n in names} == {"css", "js"}, names
    inlined = assets.CSS + review_assets.REVIEW_CSS + assets.ERROR_JS + review_assets.REVIEW_JS + assets.TABLE_JS
    assert "/*NEIGHBOURS*/" not in inlined and "__MAX_SHOWN__" not in inlined  # every splice point filled
    for name in names:
        text = static.joinpath(name).read_text(encoding="utf-8")
        text = text.replace("__MAX_SHOWN__", str(assets.MAX_SHOWN))
        for piece in text.split("/*NEIGHBOURS*/\n"):
            assert piece and piece in inlined, f"static/{name} is not inlined into report.html"
