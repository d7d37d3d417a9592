"""Retention of the cold tier: Parquet hours older than ``retention.s3_archive_ttl`` (or
``data_retention_max_days``, whichever is shorter) are deleted, a whole year, month, day or hour
directory at a time.

The cold tier is the system of record, so this is the only place an archived record leaves for good.
A directory goes only when every hour in it ended before the limit: an hour still partly inside the
window is kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exporter.redact import describe, redact
from exporter.tiers.cold import ParquetStore

_LEVELS = ("year", "month", "day", "hour")


@dataclass(frozen=True)
class Expired:
    path: str
    files: int
    size: int


def _start(parts: list[int]) -> datetime:
    """The start of the period a (year[, month[, day[, hour]]]) prefix names."""
    return datetime(*(parts + [1, 1, 0][len(parts) - 1:]), tzinfo=UTC)


def _end(parts: list[int]) -> datetime:
    """The end of the period a (year[, month[, day[, hour]]]) prefix names."""
    year, month, day, hour = (*parts, *[None] * (4 - len(parts)))
    if month is None:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    if day is None:
        return datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    start = datetime(year, month, day, hour or 0, tzinfo=UTC)
    return start + (timedelta(days=1) if hour is None else timedelta(hours=1))


def _children(store: ParquetStore, path: str, level: str) -> list[tuple[str, int]]:
    """The ``level=N`` directories under ``path`` with their N; anything else there is left alone."""
    found = []
    for child in store.fs.ls(path, detail=False):
        name = child.rstrip("/").rsplit("/", 1)[-1]
        key, _, value = name.partition("=")
        if key == level and value.isdigit():
            found.append((child.rstrip("/"), int(value)))
    return sorted(found, key=lambda item: item[1])


def expired(store: ParquetStore, before: datetime) -> list[Expired]:
    """The largest directories whose every hour ended at or before ``before``, oldest first."""
    if not store.fs.exists(store.jobs_root):
        return []
    store.fs.invalidate_cache()
    found: list[Expired] = []

    def walk(path: str, parts: list[int]) -> None:
        level = _LEVELS[len(parts)]
        for child, value in _children(store, path, level):
            prefix = [*parts, value]
            if _end(prefix) <= before:
                files = store.fs.find(child, detail=True)
                found.append(Expired(child, len(files), sum(int(f.get("size") or 0) for f in files.values())))
            elif len(prefix) < len(_LEVELS) and _start(prefix) < before:
                walk(child, prefix)

    walk(store.jobs_root, [])
    return found


def delete(store: ParquetStore, directories: list[Expired]) -> None:
    for directory in directories:
        store.fs.rm(directory.path, recursive=True)
    store.fs.invalidate_cache()


def outage(url: str, endpoint: str | None, exc: BaseException) -> str:
    """One sentence for a cold store that failed to answer: where it is (credentials masked), whether it
    could not be reached at all or answered with an error, and the error's own words (no traceback)."""
    where = redact(f"{endpoint} ({url})" if endpoint else url)
    state = "is unreachable" if _unreachable(exc) else "cannot be read"
    return f"the cold store at {where} {state}: {describe(exc)}"


def _unreachable(exc: BaseException) -> bool:
    """A connection that failed or timed out (S3's endpoint down, a network gone), not an answer."""
    from botocore.exceptions import ConnectionError as EndpointError  # only once something failed
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, EndpointError | HTTPClientError | ConnectionError | TimeoutError)
