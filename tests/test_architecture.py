"""The house rules a newcomer relies on: who may import whom.

- no import circles among sanitizer's modules;
- the pipeline never imports ``sanitizer.review`` (only ``review/`` and ``cli/`` do);
- ``data/`` imports neither ``io/`` nor ``detectors/`` nor ``beam/``;
- ``training/`` and ``detectors/`` import no Apache Beam;
- at most 10 modules directly under ``sanitizer/``; no oversized module;
- nothing a training image imports pulls in Beam.

Imports are read from the source (``ast``), wherever they sit - at the top of
a module, inside a function or under ``if TYPE_CHECKING:`` - because each of
them ties the two modules together.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sanitizer"
MAX_LINES = 430  # "no module over ~400 lines"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imported_names(path: Path, module: str) -> set[str]:
    """Every module name ``path`` imports (absolute, relative ones resolved), at any depth of the code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target in _imported_names(path, module):
            resolved = resolve(target) if target.startswith("sanitizer.") else None
            # a package's own __init__ is not a tie from inside the package (``from sanitizer.x import y``)
            if resolved and resolved != module and not module.startswith(resolved + "."):
                graph[module].add(resolved)
    return graph


def external_imports(module: str) -> set[str]:
    """The top-level names of the third-party packages ``module`` imports."""
    return {name.partition(".")[0] for name in _imported_names(_modules()[module], module)} - {"sanitizer", ""}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_among_sanitizer_modules():
    graph = import_graph()
    assert "sanitizer.beam.sanitize" in graph and graph["sanitizer.beam.job"], "the checker read nothing"
    assert circles(graph) == []


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same imports between sanitizer's packages (a module directly under sanitizer/ is its own node)."""
    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(top(module), set()).update(top(t) for t in targets if top(t) != top(module))
    return packages


def test_no_import_circles_among_sanitizer_packages():
    """Packages stand in layers: no package imports one that imports it back, however indirectly."""
    packages = package_graph(import_graph())
    assert {"sanitizer.beam", "sanitizer.detectors", "sanitizer.settings"} <= set(packages)
    assert circles(packages) == []


def test_type_checking_imports_count():
    """A name imported only for annotations still ties the two modules: it is read like any other."""
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sanitizer.a import B\n")
    path = ROOT / "tests" / "_typing_probe.py"
    try:
        path.write_text(ast.unparse(tree))
        assert "sanitizer.a.B" in _imported_names(path, "tests._typing_probe")
    finally:
        path.unlink()


def test_the_pipeline_never_imports_review():
    """Review reads what a run published; nothing a run executes may depend on it."""
    graph = import_graph()
    allowed = ("sanitizer.review", "sanitizer.cli")
    offenders = {m: sorted(t for t in targets if _under(t, "sanitizer.review"))
                 for m, targets in graph.items() if not any(_under(m, a) for a in allowed)}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_data_imports_neither_io_nor_detectors_nor_beam():
    graph = import_graph()
    banned = ("sanitizer.io", "sanitizer.detectors", "sanitizer.beam")
    offenders = {m: sorted(t for t in targets if any(_under(t, b) for b in banned))
                 for m, targets in graph.items() if _under(m, "sanitizer.data")}
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize("package", ["sanitizer.training", "sanitizer.detectors"])
def test_package_imports_no_beam(package):
    offenders = sorted(m for m in _modules() if _under(m, package) and "apache_beam" in external_imports(m))
    assert offenders == []


def test_few_modules_directly_under_sanitizer():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_every_package_says_what_lives_there():
    """Each package's ``__init__`` opens with a docstring: what lives there and what it may import."""
    silent = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("__init__.py")
              if not ast.get_docstring(ast.parse(p.read_text()))]
    assert silent == []


def test_no_module_is_oversized():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert not {name: n for name, n in sizes.items() if n > MAX_LINES}


@pytest.mark.parametrize("module", ["sanitizer.training", "sanitizer.data.layout", "sanitizer.runs.decisions"])
def test_training_side_modules_import_without_beam(module):
    code = f"import sys, {module}; assert 'apache_beam' not in sys.modules, sorted(m for m in sys.modules if 'beam' in m)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
