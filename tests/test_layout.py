"""The engine under exporter/ knows nothing of the terminal, and its modules import each other without
cycles: the CLI and the dashboard build on it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "exporter"
UI_PACKAGES = {"textual", "rich", "archives_tui"}


def _imports(path: Path) -> list[str]:
    """Every absolute module name ``path`` imports, at any depth (function-level imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_nothing_under_exporter_imports_a_ui_package():
    offenders = [f"{_module(path)}: {name}" for path in sorted(ENGINE.rglob("*.py"))
                 for name in _imports(path) if name.split(".")[0] in UI_PACKAGES]
    assert not offenders, offenders


def test_no_module_under_exporter_imports_itself_through_others():
    graph = {_module(path): set(_imports(path)) for path in ENGINE.rglob("*.py")}
    graph = {module: {name for name in names if name in graph and name != module} for module, names in graph.items()}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for name in sorted(graph[module]):
            if name in trail:
                cycles.append(" -> ".join([*trail[trail.index(name):], name]))
            elif len(trail) < len(graph):
                visit(name, [*trail, name])

    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, cycles[:5]
