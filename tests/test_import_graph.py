"""No import loops inside the package: module A importing B (at the top or inside a function)
while B imports A means neither can be read, tested or replaced alone.

The graph is read from the source with ast. An edge A -> B is any ``import``/``from ... import``
in A, at any depth, that names module B of the package (``from nas.x import y`` is an edge to
``nas.x.y`` when that is a module, else to ``nas.x``). Imports under ``if TYPE_CHECKING:``
never run and are left out. Importing ``nas.x.y`` also runs ``nas/x/__init__.py``; that implicit
edge is left out too, since a package's ``__init__`` that imports its own submodules would then
be a loop by construction.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_names(package: Path) -> dict[str, Path]:
    """Every module of the package in folder ``package``, by dotted name."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` at any depth, except those under ``if TYPE_CHECKING:``."""
    found = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module docstring)."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(_known(alias.name, modules) for alias in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the current package, one level up per extra dot
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([base] if base else []))
            for alias in node.names:
                targets.add(_known(f"{base}.{alias.name}", modules) or _known(base, modules))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a list of modules, each importing the next and the last the first) for each
    group of modules that import each other (strongly connected component, Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the package's module count
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_cycle_through(sorted(group)[0], set(group), graph) for group in groups)


def _cycle_through(start: str, group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from ``start`` back to itself within ``group`` (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph.get(node, ()) & group):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                if succ not in came_from:
                    came_from[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group but on no cycle")


# Loops still to untangle, each named by its modules. The test fails on any other loop, and
# on a listed one that is gone (so that the list only shrinks). None is left.
KNOWN_LOOPS: set[frozenset[str]] = set()


def test_the_package_has_no_import_loop():
    cycles = find_cycles(import_graph(ROOT / "nas"))
    new = [c for c in cycles if frozenset(c) not in KNOWN_LOOPS]
    assert not new, "import loops: " + "; ".join(" -> ".join([*c, c[0]]) for c in new)
    gone = KNOWN_LOOPS - {frozenset(c) for c in cycles}
    assert not gone, f"these loops are gone: remove them from KNOWN_LOOPS: {[sorted(g) for g in gone]}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for succ in graph.get(todo.pop(), ()):
            if succ not in seen:
                seen.add(succ)
                todo.append(succ)
    return seen


def test_the_report_reads_a_finished_study_and_the_search_never_imports_it():
    graph = import_graph(ROOT / "nas")
    search = {m for m in graph if m == "nas.search" or m.startswith("nas.search.")}
    report = {m for m in graph if m == "nas.report" or m.startswith("nas.report_")}
    assert report and search
    for module in search:
        assert not reachable(graph, module) & report, f"{module} imports the report"
    for module in report:
        reached = reachable(graph, module) & {"nas.search.runner", "nas.search.controller"}
        assert not reached, f"{module} imports {sorted(reached)}: the report reads a finished study"


def test_cycle_finder_names_each_loop_once():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a", "f"}, "f": {"e"}, "g": {"g"}}
    assert find_cycles(graph) == [["a", "b", "c"], ["e", "f"], ["g"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_graph_sees_lazy_and_relative_imports_but_not_type_checking_ones(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "top.py").write_text("from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n    from pkg import hidden\n"
                                    "def later():\n    from pkg.sub import leaf\n    return leaf\n")
    (package / "hidden.py").write_text("import pkg.top\n")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("import os\nfrom .. import top\nfrom ..sub.leaf import x\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.top": {"pkg.sub.leaf"}, "pkg.hidden": {"pkg.top"},
                     "pkg.sub": {"pkg.sub.leaf"}, "pkg.sub.leaf": {"pkg.top"}}
    assert find_cycles(graph) == [["pkg.sub.leaf", "pkg.top"]]
