"""The installed package carries its data files: tests that import the work tree would hide a missing one
(the guard's function list, the dashboard's CSS and themes), while `pip install .` users would meet it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_function_list_the_css_and_the_themes(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "*.egg-info"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    wanted = {"exporter/query/functions.txt", "archives_tui/app.tcss"} | {
        f"archives_tui/themes/{p.name}" for p in (ROOT / "archives_tui" / "themes").glob("*.yaml")}
    assert wanted <= names, wanted - names
