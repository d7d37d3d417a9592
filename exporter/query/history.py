"""Query history and favorites, kept under the data directory, owner-only (queries name jobs, tenants
and error texts).

History is JSON lines, newest last, appended once per query; past ``max_bytes`` the older half is
dropped in one rewrite, so the file stays bounded without a rewrite per query. Favorites are one JSON
object of name -> SQL. Both are written through a temporary file and a rename where they are rewritten,
so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from exporter.embedded import private_dir


@dataclass(frozen=True)
class HistoryEntry:
    sql: str
    started_at: float
    elapsed: float
    rows: int | None = None
    tiers: tuple[str, ...] = ()
    error: str | None = None


class QueryHistory:
    def __init__(self, directory: Path, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.directory = directory
        self.path = directory / "history.jsonl"
        self.favorites_path = directory / "favorites.json"
        self.max_bytes = max_bytes

    def record(self, entry: HistoryEntry) -> None:
        private_dir(self.directory)
        line = orjson.dumps(asdict(entry)) + b"\n"
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab") as handle:
            end = os.fstat(descriptor).st_size
            if end and os.pread(descriptor, 1, end - 1) != b"\n":
                line = b"\n" + line  # a line a crash cut short stays on its own (and is skipped)
            handle.write(line)
            size = end + len(line)
        if size > self.max_bytes:
            entries = self._read()
            self._rewrite(self.path, b"".join(orjson.dumps(asdict(e)) + b"\n" for e in entries[len(entries) // 2:]))

    def entries(self, search: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        """Newest first; ``search`` matches the SQL or the error, case-insensitively."""
        found = [e for e in reversed(self._read()) if _matches(search, e.sql, e.error or "")]
        return found[:limit] if limit else found

    def purge(self, before: float | None = None) -> int:
        """Forget every entry (or those started before ``before``); returns how many were forgotten."""
        entries = self._read()
        kept = [e for e in entries if before is not None and e.started_at >= before]
        self._rewrite(self.path, b"".join(orjson.dumps(asdict(e)) + b"\n" for e in kept))
        return len(entries) - len(kept)

    def save_favorite(self, name: str, sql: str) -> None:
        favorites = self.favorites()
        favorites[name] = sql
        self._rewrite(self.favorites_path, orjson.dumps(favorites, option=orjson.OPT_INDENT_2))

    def remove_favorite(self, name: str) -> bool:
        favorites = self.favorites()
        if favorites.pop(name, None) is None:
            return False
        self._rewrite(self.favorites_path, orjson.dumps(favorites, option=orjson.OPT_INDENT_2))
        return True

    def favorites(self, search: str | None = None) -> dict[str, str]:
        try:
            stored = orjson.loads(self.favorites_path.read_bytes())
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError:
            return {}  # a damaged file is not worth a failed query; the next save replaces it
        return {name: sql for name, sql in sorted(stored.items()) if _matches(search, name, sql)}

    def _read(self) -> list[HistoryEntry]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                data = orjson.loads(line)
                entries.append(HistoryEntry(**{**data, "tiers": tuple(data.get("tiers") or ())}))
            except (orjson.JSONDecodeError, TypeError):
                continue  # a line cut by a crash
        return entries

    def _rewrite(self, path: Path, data: bytes) -> None:
        private_dir(self.directory)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)


def _matches(search: str | None, *texts: str) -> bool:
    return not search or any(search.lower() in text.lower() for text in texts)
