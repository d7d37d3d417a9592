"""Rendering values and settings as ClickHouse SQL text, for every backend."""

from __future__ import annotations


def sql_string(value: str) -> str:
    """Quote a value as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def assignments(settings: dict[str, object]) -> str:
    """``a = 1, b = 'x'``: the list a SETTINGS clause or a SET statement takes."""
    def literal(value: object) -> str:
        return sql_string(value) if isinstance(value, str) else str(int(value) if isinstance(value, bool) else value)

    return ", ".join(f"{key} = {literal(value)}" for key, value in settings.items())


def settings_clause(settings: dict[str, object] | None) -> str:
    """Render a SETTINGS clause for engines that take settings only in SQL."""
    return " SETTINGS " + assignments(settings) if settings else ""
