"""Rendering values and settings as ClickHouse SQL text, for every backend."""

from __future__ import annotations


def sql_string(value: str) -> str:
    """Quote a value as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def settings_clause(settings: dict[str, object] | None) -> str:
    """Render a SETTINGS clause for engines that take settings only in SQL."""
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if isinstance(value, str):
            rendered = sql_string(value)
        else:
            rendered = str(int(value) if isinstance(value, bool) else value)
        parts.append(f"{key} = {rendered}")
    return " SETTINGS " + ", ".join(parts)
