"""Imports go one way: no circle in bench/ and dashboard/, and no import back up the pipeline.

The graph is built from the source with ``ast`` (every import statement, including the ones
inside functions and under ``if TYPE_CHECKING``), not by importing, so a circle that only
shows at call time is caught too. The rules are ../shared/STYLE.md's module map:
``cli -> run -> api / store / results / quality -> suites -> records / errors``;
dashboard may import bench, never the reverse; only dashboard imports streamlit.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BASE = {"bench", "bench.errors", "bench.records", "bench.config"}
"""Importable from everywhere: the version, the exception tree, typed rows, Settings."""
ALLOWED: dict[str, set[str]] = {
    "bench.errors": set(),
    "bench.records": set(),
    "bench.config": {"bench.errors"},
    "bench.suites": BASE,
    "bench.api": BASE | {"bench.suites"},
    "bench.store": BASE | {"bench.suites"},
    "bench.quality": BASE | {"bench.suites", "bench.api"},
    "bench.results": BASE | {"bench.suites", "bench.store"},
    "bench.local_build": BASE,
    "bench.local": BASE | {"bench.local_build"},
    "bench.examples": BASE,
    "bench.sandbox": BASE,
    "bench.run": BASE | {"bench.suites", "bench.api", "bench.store", "bench.results", "bench.quality",
                         "bench.local", "bench.local_build"},
    "bench.monitor": BASE | {"bench.suites", "bench.api", "bench.store", "bench.results", "bench.quality",
                             "bench.run"},
}
"""Per package (or top-level module): the other bench packages its modules may import.

bench.cli, bench.__main__ and dashboard may import any of bench; a package may always
import its own modules. Anything not listed here is refused, so a new package must
say where it sits."""
ANYTHING_IN_BENCH = ("bench.cli", "bench.__main__")
ONLY_DASHBOARD = ("streamlit",)
"""Third-party packages only dashboard/ may import."""


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, name: str, is_package: bool) -> Iterable[tuple[str, int]]:
    """(imported dotted name, line) for every import in the module, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:  # a submodule, or a name in `base` (build_graph tells which)
                yield f"{base}.{alias.name}", node.lineno


def build_graph(root: Path, packages: Iterable[str]) -> tuple[dict[str, dict[str, int]], set[str]]:
    """Module -> {imported module of ours: first line}, plus the third-party tops each module imports
    (as "module:top" strings). ``packages`` are the top-level folders under ``root`` to scan."""
    files = {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    third_party: set[str] = set()
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target, line in _imports(tree, mod, path.name == "__init__.py"):
            top = target.split(".")[0]
            if top not in packages:
                third_party.add(f"{mod}:{top}")
                continue
            # the most specific module of ours that the name denotes (`from a import b` may be a.b)
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != mod:
                graph[mod].setdefault(target, line)
    return graph, third_party


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One concrete circle (a -> ... -> a) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle(graph, set(c), c[0]) for c in components]


def _circle(graph: dict[str, dict[str, int]], members: set[str], start: str) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def owner(module: str) -> str:
    """The package (or top-level module) a module belongs to for the rules: bench.api.client -> bench.api."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bench" and len(parts) > 1 else parts[0]


def may_import(importer: str, imported: str) -> bool:
    """May a module of package ``importer`` import one of package ``imported`` (both from ``owner``)?"""
    if importer == imported or importer == "dashboard":
        return True  # its own modules; the dashboard may use all of bench
    if imported == "dashboard":
        return False  # bench never imports the dashboard
    if importer in ANYTHING_IN_BENCH:
        return True
    return imported in ALLOWED.get(importer, set())


def forbidden_imports(graph: dict[str, dict[str, int]], third_party: set[str]) -> list[str]:
    """Every import that goes against ALLOWED, as 'importer -> imported (line n)'."""
    bad = [f"{mod} -> {target} (line {line})"
           for mod, targets in sorted(graph.items()) for target, line in sorted(targets.items())
           if not may_import(owner(mod), owner(target))]
    for entry in sorted(third_party):
        mod, top = entry.split(":")
        if top in ONLY_DASHBOARD and owner(mod) != "dashboard":
            bad.append(f"{mod} -> {top}")
    return bad


# ---------------------------------------------------------------------- the real tree
def test_bench_and_dashboard_have_no_import_circle() -> None:
    graph, _ = build_graph(ROOT, ("bench", "dashboard"))
    assert len(graph) > 50  # the scan found the code base
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_go_one_way() -> None:
    graph, third_party = build_graph(ROOT, ("bench", "dashboard"))
    bad = forbidden_imports(graph, third_party)
    assert not bad, "imports against the pipeline's direction:\n" + "\n".join(bad)


def test_every_bench_package_says_what_it_owns_and_may_import() -> None:
    for init in sorted((ROOT / "bench").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc or init.parent.name in ("sandbox", "examples"), f"{init}: no 'May import'"


# ---------------------------------------------------------------------- the checker can fail
def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_circle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    _package(tmp_path, {
        "bench/__init__.py": "",
        "bench/api/__init__.py": "",
        "bench/api/a.py": "from bench.api import b\n",
        "bench/api/b.py": "def f():\n    from bench.api.c import g\n    return g\n",
        "bench/api/c.py": "import bench.api.a\n\ndef g():\n    return 1\n",
        "bench/api/d.py": "from bench.api import a\n",  # reaches the circle, is not in it
    })
    graph, _ = build_graph(tmp_path, ("bench",))
    assert find_cycles(graph) == [["bench.api.a", "bench.api.b", "bench.api.c", "bench.api.a"]]


def test_relative_and_type_checking_imports_count(tmp_path: Path) -> None:
    _package(tmp_path, {
        "bench/__init__.py": "",
        "bench/store/__init__.py": "",
        "bench/store/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .y import Y\n",
        "bench/store/y.py": "from . import x\n",
    })
    graph, _ = build_graph(tmp_path, ("bench",))
    assert find_cycles(graph) == [["bench.store.x", "bench.store.y", "bench.store.x"]]


@pytest.mark.parametrize(("importer", "statement", "expected"), [
    ("bench/api/client.py", "from bench.run import engine", "bench.api.client -> bench.run.engine (line 1)"),
    ("bench/store/s.py", "def f():\n    from bench.cli import common", "bench.store.s -> bench.cli.common (line 2)"),
    ("bench/results/r.py", "import dashboard.charts", "bench.results.r -> dashboard.charts (line 1)"),
    ("bench/suites/p.py", "from bench.quality import checks", "bench.suites.p -> bench.quality.checks (line 1)"),
    ("bench/cli/c.py", "import dashboard.charts", "bench.cli.c -> dashboard.charts (line 1)"),
    ("bench/results/r.py", "import streamlit as st", "bench.results.r -> streamlit"),
])
def test_an_import_back_up_is_refused(tmp_path: Path, importer: str, statement: str, expected: str) -> None:
    files = {f"{pkg}/__init__.py": "" for pkg in ("bench", "bench/api", "bench/run", "bench/store", "bench/cli",
                                                   "bench/results", "bench/suites", "bench/quality", "dashboard")}
    files |= {"bench/run/engine.py": "", "bench/cli/common.py": "", "dashboard/charts.py": "",
              "bench/quality/checks.py": "", importer: statement + "\n"}
    _package(tmp_path, files)
    graph, third_party = build_graph(tmp_path, ("bench", "dashboard"))
    assert forbidden_imports(graph, third_party) == [expected]


def test_the_allowed_direction_passes(tmp_path: Path) -> None:
    _package(tmp_path, {
        "bench/__init__.py": "", "bench/errors.py": "", "bench/records.py": "",
        "bench/run/__init__.py": "", "bench/run/engine.py": "from bench.api import client\nfrom bench import errors\n",
        "bench/api/__init__.py": "", "bench/api/client.py": "from bench.suites.model import Suite\n",
        "bench/suites/__init__.py": "", "bench/suites/model.py": "from bench.records import RequestRow\n",
        "bench/cli/__init__.py": "", "bench/cli/run.py": "from bench.run import engine\n",
        "dashboard/__init__.py": "", "dashboard/app.py": "import streamlit\nfrom bench.cli import run\n",
    })
    graph, third_party = build_graph(tmp_path, ("bench", "dashboard"))
    assert find_cycles(graph) == [] and forbidden_imports(graph, third_party) == []


# ---------------------------------------------------------------------- public seams
STORE_INTERNAL = "bench.store"
"""bench/store's modules still share a few underscore names among themselves (the merge's
columns and settled rule); the team-store work makes that seam public, so only imports
inside bench/store are let through, never one from outside it."""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(root: Path, packages: Iterable[str]) -> list[str]:
    """Every use of another module's underscore name: ``from m import _x`` and ``m._x`` on an
    imported module of ours, as 'importer -> module._x (line n)'."""
    files = {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    bad = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases: dict[str, str] = {}  # local name -> module of ours it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in files and not node.level:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in files:
                        aliases[alias.asname or alias.name] = target
                    elif _private(alias.name) and node.module != mod:
                        bad.append((mod, target, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in files and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr)
                    and aliases.get(node.value.id, mod) != mod):
                bad.append((mod, f"{aliases[node.value.id]}.{node.attr}", node.lineno))
    return [f"{m} -> {t} (line {line})" for m, t, line in sorted(set(bad))
            if not (owner(m) == STORE_INTERNAL and owner(t) == STORE_INTERNAL)]


def package_surface(root: Path, package: str) -> set[str] | None:
    """The names in a package's ``__init__`` ``__all__`` (None when it has none)."""
    init = root / package.replace(".", "/") / "__init__.py"
    if not init.exists():
        return None
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return {elt.value for elt in getattr(node.value, "elts", []) if isinstance(elt, ast.Constant)}
    return None


def off_surface_imports(root: Path, graph: dict[str, dict[str, int]]) -> list[str]:
    """Imports of another package's module that its ``__all__`` does not name."""
    bad = []
    for mod, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            pkg = owner(target)
            if pkg == owner(mod) or pkg == target or not pkg.startswith("bench."):
                continue
            surface = package_surface(root, pkg)
            if surface is None or target.split(".")[2] not in surface:
                bad.append(f"{mod} -> {target} (line {line}): not in {pkg}.__all__")
    return bad


def test_no_module_imports_another_modules_private_name() -> None:
    bad = private_imports(ROOT, ("bench", "dashboard"))
    assert not bad, "underscore names used outside their module:\n" + "\n".join(bad)


def test_every_bench_package_names_its_public_modules_and_others_import_only_those() -> None:
    for init in sorted((ROOT / "bench").glob("*/__init__.py")):
        surface = package_surface(ROOT, f"bench.{init.parent.name}")
        assert surface is not None, f"{init}: no __all__"
        missing = {name for name in surface
                   if not (init.parent / f"{name}.py").exists() and not (init.parent / name).is_dir()
                   and name not in init.read_text()}
        assert not missing, f"{init}: __all__ names what does not exist: {sorted(missing)}"
    graph, _ = build_graph(ROOT, ("bench", "dashboard"))
    bad = off_surface_imports(ROOT, graph)
    assert not bad, "imports of modules a package does not make public:\n" + "\n".join(bad)


def test_a_planted_private_import_is_found(tmp_path: Path) -> None:
    _package(tmp_path, {
        "bench/__init__.py": "", "bench/api/__init__.py": "__all__ = ['client']\n",
        "bench/api/client.py": "def _secret():\n    return 1\n\ndef public():\n    return _secret()\n",
        "bench/run/__init__.py": "",
        "bench/run/engine.py": "from bench.api.client import _secret, public\n",
        "bench/run/plan.py": "from bench.api import client as c\n\ndef f():\n    return c._secret()\n",
        "bench/store/__init__.py": "", "bench/store/a.py": "_COLS = ()\n",
        "bench/store/b.py": "from bench.store.a import _COLS\n",  # inside bench/store: let through
    })
    assert private_imports(tmp_path, ("bench",)) == [
        "bench.run.engine -> bench.api.client._secret (line 1)",
        "bench.run.plan -> bench.api.client._secret (line 4)",
    ]


def test_a_planted_import_of_an_unlisted_module_is_found(tmp_path: Path) -> None:
    _package(tmp_path, {
        "bench/__init__.py": "", "bench/api/__init__.py": "__all__ = ['client']\n",
        "bench/api/client.py": "", "bench/api/wire.py": "",
        "bench/run/__init__.py": "", "bench/run/engine.py": "from bench.api import client, wire\n",
    })
    graph, _ = build_graph(tmp_path, ("bench",))
    assert off_surface_imports(tmp_path, graph) == [
        "bench.run.engine -> bench.api.wire (line 1): not in bench.api.__all__"]
