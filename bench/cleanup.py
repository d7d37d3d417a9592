"""What a bench leaves behind, undone once: its closers, newest first, then its temp dir."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cleanup:
    """Runs every closer once, newest first, from ``finally``, atexit or SIGTERM; then removes the temp dir."""

    root: Path
    keep: bool = False
    closers: list[Callable[[], None]] = field(default_factory=list)
    done: bool = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:
                print(f"cleanup: {exc}", file=sys.stderr)
        if self.keep:
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
