"""The dashboard's themes, one YAML file each in ``archives_tui/themes/`` (installed with the package):
dark, light and high contrast, with the same meaning for every colour in each."""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.theme import Theme

THEMES_DIR = Path(__file__).parent / "themes"


def load_themes() -> dict[str, Theme]:
    """Every theme file, by its short name (the file's stem, as the config and --theme name it)."""
    found = {}
    for path in sorted(THEMES_DIR.glob("*.yaml")):
        found[path.stem] = Theme(**yaml.safe_load(path.read_text()))
    return found
