"""The engine under exporter/ knows nothing of the terminal: the CLI and the dashboard build on it."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "exporter"
UI_PACKAGES = {"textual", "rich", "archives_tui"}


def test_nothing_under_exporter_imports_a_ui_package():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(ENGINE.parent)}: {n}" for n in names if n.split(".")[0] in UI_PACKAGES]
    assert not offenders, offenders
