"""The import rules of DESIGN.md §2 are enforced by import-linter; prove the contracts bite."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(tree / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for pkg in ("drgnet", "db", "feedback", "webapp"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_current_tree_keeps_the_contracts(tree: Path):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("drgnet/_bad.py", "import db\n", "The ML core imports none of db, feedback, webapp"),
        ("db/_bad.py", "import torch\n", "Persistence imports nothing of ours and no torch"),
        ("webapp/_bad.py", "import drgnet.cli\n", "The web app uses only inference and labels"),
        # Inside a function too: that is how the worklist hid its import of the router.
        ("webapp/views/_bad.py", "def f():\n    from webapp import nav\n", "Pages never import the router"),
    ],
)
def test_a_forbidden_import_breaks_the_build(tree: Path, module: str, line: str, contract: str):
    (tree / module).write_text(line)
    result = _lint(tree)
    assert result.returncode != 0
    assert contract in result.stdout


# --------------------------------------------------------------------------------------------- import cycles
PACKAGES = ("drgnet", "db", "feedback", "webapp")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules one import statement names (``from pkg import sub`` names the module ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        bases, names = [alias.name for alias in node.names], []
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        bases, names = [base], [alias.name for alias in node.names]
    found = []
    for base in bases:
        for target in [f"{base}.{name}" for name in names] or [base]:
            # The longest prefix that is one of our modules: "import a.b.c" where c is a function names a.b.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                found.append(target)
        if names and base in known and not any(f"{base}.{name}" in known for name in names):
            found.append(base)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, from every import statement (at the top, inside functions, under
    ``TYPE_CHECKING``): an import moved into a function still makes a cycle, it only hides it from the interpreter."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges.update(_imported(node, module, is_package, known))
        graph[module] = edges - {module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), each as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    # Breadth-first from the group's first module back to itself: the shortest cycle through it.
    start = min(group)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def test_no_import_cycle_between_modules():
    graph = import_graph()
    # The walk found every package of the project, each with its modules.
    assert len(graph) > 100 and all(any(m.startswith(f"{pkg}.") for m in graph) for pkg in PACKAGES)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_the_cycle_check_sees_imports_inside_functions_and_relative_imports():
    graph = {
        "pkg": set(),
        "pkg.a": set(),
        "pkg.b": set(),
    }
    known = set(graph)
    hidden = ast.parse("def f():\n    from . import b\n").body[0].body[0]
    graph["pkg.a"].update(_imported(hidden, "pkg.a", False, known))
    graph["pkg.b"].update(_imported(ast.parse("from pkg.a import something").body[0], "pkg.b", False, known))
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []
