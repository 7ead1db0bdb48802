"""The package's layers, read from its source: imports go downwards only.

Every module under ``neoleasepool/`` is parsed with :mod:`ast`, and every
import statement counts: at module level, under ``if TYPE_CHECKING:``, and
inside functions (an import hidden in a function is still a dependency).
Relative imports are resolved; importing ``a.b.c`` also imports the
packages ``a.b`` and ``a`` (their ``__init__`` runs first), so those count
too, except the importer's own enclosing packages, which are initialised
before it runs.  The root package ``neoleasepool`` (whose ``__init__``
re-exports everything) is left out of the implicit edges, or every module
would depend on every other.

The rules, from ``DESIGN.md``:

* no import cycles between modules;
* a subpackage imports only from its own layer or lower ones, and within a
  layer only where :data:`SAME_LAYER` allows it;
* the background-worker modules do not reach leasing, grinders or the sync
  facades, directly or through other modules.

The checks themselves are tested on a small synthetic package at the end,
so that a rule that silently stopped looking would be noticed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "neoleasepool"
SOURCE = Path(__file__).resolve().parents[1] / PACKAGE

#: The layer of each top-level area (subpackage or module) of the package.
LAYERS: dict[str, int] = {
    "_util": 0,
    "exceptions": 0,
    "types": 0,
    "_version": 0,
    "backends": 1,
    "leasing": 2,
    "grinder": 2,
    "loops": 3,
    "sync": 4,
    "supervision": 4,
    "observe": 5,
    "cli": 6,
}

#: Root modules: the public face and the shims of leasepool's and
#: neotasker's module names.  They may import anything; no layer imports them.
ROOT_MODULES = {
    PACKAGE,
    f"{PACKAGE}.__main__",
    f"{PACKAGE}.manager",
    f"{PACKAGE}.supervisor",
    f"{PACKAGE}.workers",
}

#: Imports allowed between two areas of one layer: (from, to) -> the only
#: importing modules allowed, or ``None`` for any module of ``from``.
SAME_LAYER: dict[tuple[str, str], frozenset[str] | None] = {
    # A grinder leases from a manager; a manager knows nothing of grinders.
    ("grinder", "leasing"): None,
    # The full supervisor builds the facades; nothing else in supervision
    # (its workers least of all) may see them, and they never see it.
    ("supervision", "sync"): frozenset({f"{PACKAGE}.supervision.supervisor"}),
}

#: Modules that run background workers and async jobs, and the areas they
#: must not reach.
WORKER_MODULES = (
    f"{PACKAGE}.supervision.worker_base",
    f"{PACKAGE}.supervision.async_worker",
    f"{PACKAGE}.supervision.interval_worker",
    f"{PACKAGE}.supervision.workers",
    f"{PACKAGE}.supervision.jobs",
    f"{PACKAGE}.supervision.job_scheduler",
    f"{PACKAGE}.supervision.job_host",
    f"{PACKAGE}.workers",
)
WORKERS_MUST_NOT_REACH = ("leasing", "grinder", "sync")

#: Edges that break a rule in code being changed elsewhere, each with the
#: fix.  The test fails once one of them is gone, so that it leaves this list.
PENDING: dict[tuple[str, str], str] = {}


# ----------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int
    where: str  # "module level", "under TYPE_CHECKING", "in a function"
    implicit: bool = False  # the parent package of an imported module

    def __str__(self) -> str:
        how = f"its package {self.target}" if self.implicit else self.target
        return f"{self.path}:{self.line} imports {how} ({self.where})"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module under ``root`` by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def _is_package(modules: dict[str, Path], name: str) -> bool:
    return modules[name].name == "__init__.py"


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement in ``tree``, with where it sits."""

    def walk(node: ast.AST, where: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, where
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, "in a function")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from walk(ast.Module(body=child.body, type_ignores=[]), "under TYPE_CHECKING")
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), where)
            else:
                yield from walk(child, where)

    yield from walk(tree, "module level")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _known(modules: dict[str, Path], dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the package."""
    parts = dotted.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def _targets(
    modules: dict[str, Path], source: str, node: ast.Import | ast.ImportFrom
) -> Iterator[str]:
    """The package's modules that ``node`` (in module ``source``) imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            found = _known(modules, alias.name)
            if found is not None:
                yield found
        return
    if node.level:
        package = source if _is_package(modules, source) else source.rpartition(".")[0]
        base_parts = package.split(".")
        base_parts = base_parts[: len(base_parts) - (node.level - 1)]
        base = ".".join([*base_parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    for alias in node.names:
        found = _known(modules, f"{base}.{alias.name}") or _known(modules, base)
        if found is not None:
            yield found


def import_edges(root: Path, package: str) -> tuple[dict[str, Path], list[Edge]]:
    """The modules under ``root`` and every import edge between them."""
    modules = module_names(root, package)
    edges: list[Edge] = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        shown = f"{package}/{path.relative_to(root).as_posix()}"
        own_packages = _ancestors(source)
        for node, where in _imports(tree):
            for target in _targets(modules, source, node):
                if target != source:
                    edges.append(Edge(source, target, shown, node.lineno, where))
                for parent in _ancestors(target):
                    if parent not in (package, source) and parent not in own_packages:
                        edges.append(Edge(source, parent, shown, node.lineno, where, True))
    return modules, edges


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


# ----------------------------------------------------------------- the rules


def _by_source(modules: dict[str, Path], edges: list[Edge]) -> dict[str, list[Edge]]:
    graph: dict[str, list[Edge]] = {name: [] for name in modules}
    for edge in edges:
        graph[edge.source].append(edge)
    return graph


def find_cycles(modules: dict[str, Path], edges: list[Edge]) -> list[list[Edge]]:
    """Every distinct cycle a depth-first walk closes, as its edges."""
    graph = _by_source(modules, edges)
    on_path: set[str] = set()
    done: set[str] = set()
    path: list[Edge] = []
    cycles: list[list[Edge]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        on_path.add(node)
        for edge in graph[node]:
            if edge.target in on_path:
                first = next(i for i, step in enumerate(path) if step.source == edge.target)
                cycle = [*path[first:], edge]
                if (key := frozenset(str(step) for step in cycle)) not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif edge.target not in done:
                path.append(edge)
                visit(edge.target)
                path.pop()
        on_path.discard(node)
        done.add(node)

    for name in modules:
        if name not in done:
            visit(name)
    return cycles


def area(name: str) -> str | None:
    """The top-level area of a module, or ``None`` for a root module."""
    if name in ROOT_MODULES:
        return None
    return name.split(".")[1]


def layer_violations(modules: dict[str, Path], edges: list[Edge]) -> list[str]:
    """Every edge that goes up a layer, sideways where not allowed, or to the root."""
    problems = [
        f"module {name} is in no layer: add {area(name)!r} to LAYERS"
        for name in modules
        if area(name) is not None and area(name) not in LAYERS
    ]
    for edge in edges:
        # A package imported implicitly is in the same area as the module
        # that was named, so the named one decides.
        source, target = area(edge.source), area(edge.target)
        if edge.implicit or source is None or source not in LAYERS:
            continue
        if target is not None and target not in LAYERS:
            continue  # reported above
        if target is None:
            problems.append(f"{edge}: a layer imports a root module (the public face)")
        elif source == target:
            continue
        elif LAYERS[target] > LAYERS[source]:
            problems.append(
                f"{edge}: {source} (layer {LAYERS[source]}) must not import "
                f"{target} (layer {LAYERS[target]})"
            )
        elif LAYERS[source] == 0:
            continue  # the foundation's modules use each other (no cycles, see above)
        elif LAYERS[target] == LAYERS[source]:
            allowed = SAME_LAYER.get((source, target), frozenset())
            if allowed is not None and edge.source not in allowed:
                problems.append(
                    f"{edge}: {source} may import {target} (both layer "
                    f"{LAYERS[source]}) only from {sorted(allowed) or 'nowhere'}"
                )
    return list(dict.fromkeys(problems))  # one line per statement, not per name


def reach(modules: dict[str, Path], edges: list[Edge], start: str) -> dict[str, list[Edge]]:
    """Every module ``start`` imports, directly or not, with the chain that leads there.

    The start module's own enclosing packages count as imported (their
    ``__init__`` runs first), except the root package.
    """
    graph = _by_source(modules, edges)
    chains: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    for parent in _ancestors(start)[1:]:
        chains[parent] = [Edge(start, parent, "-", 0, "enclosing package", True)]
        frontier.append(parent)
    while frontier:
        node = frontier.pop(0)
        for edge in graph[node]:
            if edge.target not in chains and edge.target != PACKAGE:
                chains[edge.target] = [*chains[node], edge]
                frontier.append(edge.target)
    return chains


# ----------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def package_graph() -> tuple[dict[str, Path], list[Edge]]:
    return import_edges(SOURCE, PACKAGE)


def _without_pending(problems: list[str], edges: list[Edge]) -> list[str]:
    pending_edges = {f"{e}" for e in edges if (e.source, e.target) in PENDING}
    return [p for p in problems if not any(p.startswith(e) for e in pending_edges)]


def test_every_module_is_read(package_graph: tuple[dict[str, Path], list[Edge]]) -> None:
    modules, edges = package_graph
    assert f"{PACKAGE}.supervision.core" in modules
    assert f"{PACKAGE}.sync" in modules
    assert any(e.where == "in a function" for e in edges)


def test_no_module_imports_itself_back(package_graph: tuple[dict[str, Path], list[Edge]]) -> None:
    modules, edges = package_graph
    cycles = find_cycles(modules, edges)
    shown = "\n\n".join("\n  -> ".join(str(edge) for edge in cycle) for cycle in cycles)
    assert not cycles, f"import cycles:\n{shown}"


def test_imports_only_go_down_the_layers(package_graph: tuple[dict[str, Path], list[Edge]]) -> None:
    modules, edges = package_graph
    problems = _without_pending(layer_violations(modules, edges), edges)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_pending_exceptions_are_still_needed(
    package_graph: tuple[dict[str, Path], list[Edge]],
) -> None:
    _, edges = package_graph
    present = {(e.source, e.target) for e in edges}
    fixed = [f"{src} -> {dst}" for src, dst in PENDING if (src, dst) not in present]
    assert not fixed, f"fixed, so remove from PENDING: {fixed}"


@pytest.mark.parametrize("worker_module", WORKER_MODULES)
def test_background_workers_do_not_reach_leasing(
    package_graph: tuple[dict[str, Path], list[Edge]], worker_module: str
) -> None:
    modules, edges = package_graph
    assert worker_module in modules, f"{worker_module} is gone: update WORKER_MODULES"
    chains = reach(modules, edges, worker_module)
    bad = {name for name in chains if area(name) in WORKERS_MUST_NOT_REACH}
    # Show the way in: the chains whose last step crosses into a bad area.
    entries = sorted(name for name in bad if chains[name][-1].source not in bad)
    shown = "\n\n".join(
        f"{name}:\n  " + "\n  -> ".join(str(edge) for edge in chains[name]) for name in entries
    )
    assert not bad, f"{worker_module} reaches {sorted(bad)} by way of:\n{shown}"


# ------------------------------------------------- the checks, on a known package


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checks_name_each_offending_edge(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    _write(
        root,
        {
            "__init__.py": "from .supervision import workers\n",
            "_util/__init__.py": "",
            "_util/clock.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..loops import aloop\n",
            "loops/__init__.py": "",
            "loops/aloop.py": "from .._util import clock\n",
            "leasing/__init__.py": "",
            "leasing/manager.py": "def later():\n    from ..grinder.facade import G\n",
            "grinder/__init__.py": "",
            "grinder/facade.py": "from ..leasing.manager import later\nG = 1\n",
            "sync/__init__.py": "",
            "sync/facade.py": "import neoleasepool.leasing.manager\n",
            "supervision/__init__.py": "",
            "supervision/core.py": "",
            "supervision/workers.py": "from . import core\nfrom ..sync import facade\n",
            "stray/__init__.py": "",
        },
    )
    modules, edges = import_edges(root, PACKAGE)

    cycles = [sorted(str(edge) for edge in cycle) for cycle in find_cycles(modules, edges)]
    assert sorted(cycles) == [
        [
            "neoleasepool/_util/clock.py:3 imports neoleasepool.loops.aloop "
            "(under TYPE_CHECKING)",
            "neoleasepool/loops/aloop.py:1 imports neoleasepool._util.clock (module level)",
        ],
        [
            "neoleasepool/grinder/facade.py:1 imports neoleasepool.leasing.manager "
            "(module level)",
            "neoleasepool/leasing/manager.py:2 imports neoleasepool.grinder.facade "
            "(in a function)",
        ],
    ]

    problems = layer_violations(modules, edges)
    assert "module neoleasepool.stray is in no layer: add 'stray' to LAYERS" in problems
    assert "neoleasepool/_util/clock.py:3 imports neoleasepool.loops.aloop (under " \
        "TYPE_CHECKING): _util (layer 0) must not import loops (layer 3)" in problems
    assert "neoleasepool/leasing/manager.py:2 imports neoleasepool.grinder.facade (in a " \
        "function): leasing may import grinder (both layer 2) only from nowhere" in problems
    assert "neoleasepool/supervision/workers.py:2 imports neoleasepool.sync.facade " \
        "(module level): supervision may import sync (both layer 4) only from " \
        "['neoleasepool.supervision.supervisor']" in problems

    chains = reach(modules, edges, f"{PACKAGE}.supervision.workers")
    assert [str(edge) for edge in chains[f"{PACKAGE}.leasing.manager"]] == [
        "neoleasepool/supervision/workers.py:2 imports neoleasepool.sync.facade (module level)",
        "neoleasepool/sync/facade.py:1 imports neoleasepool.leasing.manager (module level)",
    ]
