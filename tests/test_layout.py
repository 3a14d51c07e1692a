"""The shape of the house: no import circles, and imports flow models -> data_index -> benchmarks,
demo -> app.py.

Parsed with ``ast``, never imported, so every import counts: module level, inside functions and
under ``TYPE_CHECKING``. ``from pkg import sub`` is an import of ``pkg.sub`` when that module
exists, else of ``pkg`` (the package ``__init__``, for a name it holds).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "data_index", "benchmarks", "demo")
# What each layer must not import; app.py is the top and is imported by nothing.
FORBIDDEN = {
    "models": {"data_index", "benchmarks", "demo", "app"},
    "data_index": {"benchmarks", "demo", "app"},
    "benchmarks": {"demo", "app"},
    "demo": {"app"},
}
GRADIO_LAYERS = {"demo", "app"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing project module
    target: str  # a project module, or the top-level name of a third-party one
    line: int
    internal: bool

    def where(self) -> str:
        return f"{module_files()[self.source].relative_to(ROOT)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def module_files() -> dict[str, Path]:
    files = [ROOT / "app.py"]
    for package in PACKAGES:
        files += [p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts]
    return {module_name(path): path for path in sorted(files)}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import of ``name`` runs: itself, or its longest importable prefix."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _base(source: str, level: int, modules: dict[str, Path]) -> str:
    """The package a relative import of ``level`` dots starts from."""
    package = source if modules[source].name == "__init__.py" else source.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


def imports_of(source: str, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(modules[source].read_text(encoding="utf-8"), filename=str(modules[source]))
    found = []

    def add(name: str, line: int) -> None:
        target = _resolve(name, modules)
        if target is None:
            found.append(Import(source, name.split(".")[0], line, internal=False))
        elif target != source:
            found.append(Import(source, target, line, internal=True))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = _base(source, node.level, modules)
                module = f"{base}.{module}" if module else base
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                add(sub if sub in modules else module, node.lineno)
    return found


def import_graph() -> dict[str, list[Import]]:
    modules = module_files()
    return {source: imports_of(source, modules) for source in modules}


def layer(module: str) -> str:
    return module.split(".")[0]


def find_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle per strongly connected group of modules (Tarjan), as the imports that close it."""
    edges = {s: sorted({i.target for i in imps if i.internal}) for s, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in edges:
        if node not in index:
            visit(node)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: dict[str, list[Import]]) -> list[Import]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for imp in graph[node]:
                if not imp.internal or imp.target not in group:
                    continue
                if imp.target == start:
                    return [*paths[node], imp]
                if imp.target not in paths:
                    paths[imp.target] = [*paths[node], imp]
                    following.append(imp.target)
        frontier = following
    raise AssertionError(f"{sorted(group)} holds no cycle through {start}")


def describe(cycle: list[Import]) -> str:
    steps = " -> ".join([cycle[0].source] + [f"{i.target} ({i.where()})" for i in cycle])
    return f"  {steps}"


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph()


def test_the_parser_sees_the_project(graph):
    assert {"app", "models", "models.factory", "data_index.case_index", "demo"} <= set(graph)
    targets = {i.target for i in graph["data_index.case_index"] if i.internal}
    assert {"data_index.search", "models", "models.base"} <= targets


def test_no_import_circle(graph):
    cycles = find_cycles(graph)
    if cycles:
        pytest.fail("Import circles between project modules:\n" + "\n".join(map(describe, cycles)))


def test_imports_flow_one_way(graph):
    wrong = [
        f"  {imp.where()}: {imp.source} imports {imp.target}"
        for imports in graph.values()
        for imp in imports
        if imp.internal and layer(imp.target) in FORBIDDEN.get(layer(imp.source), set())
    ]
    if wrong:
        pytest.fail(
            "Imports against models -> data_index -> benchmarks, demo -> app:\n" + "\n".join(wrong)
        )


def test_only_demo_and_app_import_gradio(graph):
    wrong = [
        f"  {imp.where()}: {imp.source}"
        for imports in graph.values()
        for imp in imports
        if not imp.internal and imp.target == "gradio" and layer(imp.source) not in GRADIO_LAYERS
    ]
    if wrong:
        pytest.fail("gradio imported outside demo/ and app.py:\n" + "\n".join(wrong))


@pytest.mark.parametrize(
    ("source", "code", "expected"),
    [
        ("demo.ui_search", "from demo import handlers_search as hs", "demo.handlers_search"),
        ("demo.ui_search", "from demo import guarded", "demo"),
        ("demo.ui_search", "import demo.state", "demo.state"),
        ("demo.ui_search", "from demo.state import AppState", "demo.state"),
        ("demo.ui_search", "from .state import AppState", "demo.state"),
        ("demo.ui_search", "from . import state", "demo.state"),
        ("demo", "from .layout import build_demo", "demo.layout"),
        ("models.factory", "from models.base import Backbone", "models.base"),
        ("models.factory", "import numpy.linalg", "numpy"),
        ("data_index.case_index", "from models import Backbone", "models"),
    ],
)
def test_imports_resolve_to_project_modules(source, code, expected, tmp_path):
    modules = dict(module_files())
    modules[source] = tmp_path / ("__init__.py" if source == "demo" else "module.py")
    modules[source].write_text(code + "\n", encoding="utf-8")
    assert [i.target for i in imports_of(source, modules)] == [expected]


def test_a_circle_is_reported_with_its_lines():
    graph = {
        "a": [Import("a", "b", 3, internal=True), Import("a", "numpy", 1, internal=False)],
        "b": [Import("b", "c", 4, internal=True)],
        "c": [Import("c", "a", 5, internal=True)],
        "d": [Import("d", "a", 6, internal=True)],
    }
    (cycle,) = find_cycles(graph)
    assert [(i.source, i.target, i.line) for i in cycle] == [
        ("a", "b", 3),
        ("b", "c", 4),
        ("c", "a", 5),
    ]


# The evaluation package stays readable at a glance: a new part joins a subpackage (report/,
# trust/, perf/) or replaces a module, rather than growing the flat list past about twenty.
MAX_BENCHMARK_MODULES = 21


def test_benchmarks_itself_holds_about_twenty_modules():
    flat = sorted(
        p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in {"__init__", "__main__"}
    )
    assert len(flat) <= MAX_BENCHMARK_MODULES, (
        f"benchmarks/ holds {len(flat)} modules (at most {MAX_BENCHMARK_MODULES}); put new "
        f"ones in a subpackage: {', '.join(flat)}"
    )


def test_every_package_says_what_it_owns():
    packages = [p for p in ROOT.glob("*/**/__init__.py") if p.parts[len(ROOT.parts)] in PACKAGES]
    silent = [
        str(p.relative_to(ROOT))
        for p in packages
        if len(ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or "") < 40
    ]
    assert not silent, f"packages without a docstring saying what they own: {silent}"


def test_the_load_average_is_read_in_one_place():
    """Machine description and load come from ``benchmarks.timing.machine_description``."""
    readers = [
        str(path.relative_to(ROOT))
        for name, path in module_files().items()
        if name != "benchmarks.timing" and "getloadavg" in path.read_text(encoding="utf-8")
    ]
    assert not readers, f"read the load through benchmarks.timing.machine_description: {readers}"
