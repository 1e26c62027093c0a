"""What `pip install` puts in site-packages (issue 16.8): the sanitizer package, its LICENSE, no top-level
`pipelines` package; TOML configs on every Python that requires-python admits."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("whl")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "License classifiers are deprecated" not in proc.stderr and "license` as a TOML table" not in proc.stderr
    (path,) = out.glob("sanitizer-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_sanitizer_and_no_top_level_pipelines(wheel):
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert "sanitizer" in tops and any(n == "sanitizer/cli/main.py" for n in names)
    assert "pipelines" not in tops, "a top-level `pipelines` package would shadow any other of that name"
    assert "sanitizer/schemas/manifest.schema.json" in names or any(n.startswith("sanitizer/schemas/") for n in names)


def test_wheel_holds_the_report_static_files(wheel):
    """report.html inlines CSS and JavaScript read from package data: every file of report/static/ ships."""
    static = REPO / "sanitizer" / "report" / "static"
    expected = {f"sanitizer/report/static/{p.name}" for p in static.iterdir()}
    assert expected and expected <= set(wheel.namelist()), expected - set(wheel.namelist())


def test_wheel_metadata_carries_the_license(wheel):
    names = wheel.namelist()
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(r"^License-Expression: Apache-2.0$", metadata, re.M), metadata[:800]
    licenses = [n for n in names if re.search(r"\.dist-info/licenses/LICENSE$", n)]
    assert licenses and b"Apache License" in wheel.read(licenses[0])
    assert re.search(r"^Requires-Dist: tomli>=2; python_version < \"3.11\"$", metadata, re.M), "TOML on 3.10"
    for extra in ("gcp", "aws", "airflow", "bench"):
        assert re.search(rf"^Provides-Extra: {extra}$", metadata, re.M), extra


def test_nothing_imports_pipelines_as_a_package():
    pattern = re.compile(r"^\s*(from pipelines\b|import pipelines\b)", re.M)
    offenders = [str(p.relative_to(REPO)) for folder in ("sanitizer", "tests", "bench")
                 for p in (REPO / folder).rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders, f"import pipelines/ files by path, not as an installed package: {offenders}"


def test_toml_config_loads_without_tomllib(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: the loader falls back to tomli (a dependency there)."""
    import builtins

    from sanitizer.settings.config import load_config_file

    real_import = builtins.__import__

    def no_tomllib(name, *args, **kwargs):
        if name == "tomllib":
            raise ModuleNotFoundError("No module named 'tomllib'")
        return real_import(name, *args, **kwargs)

    path = tmp_path / "c.toml"
    path.write_text('seed = 3\nlabel_column = "y"\n')
    monkeypatch.setattr(builtins, "__import__", no_tomllib)
    assert load_config_file(str(path)) == {"seed": 3, "label_column": "y"}
