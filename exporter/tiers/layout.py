"""Which Parquet files of an hour directory are live: the naming rule every reader of the cold tier honours.

An hour directory holds two kinds of files:

* batch files, ``<first entry id>_<digest>.parquet``, one per exported batch (see ``exporter.batch``);
* compacted files, ``compacted_<watermark>_<i>of<n>.parquet``: part i of a generation of n parts that
  holds, sorted, every row of the previous generation and of the batch files whose entry id is below
  the watermark (a stream entry id). Every entry below the watermark was acknowledged by the archive
  group when the generation was written, and a batch is acknowledged whole, after its files were
  written: so the batch files below the watermark were complete and final, and no replay can write one
  again with other content.

The rule: a generation counts only when all n of its parts are present; the newest complete generation
(by watermark, then n) is live with the batch files at or above its watermark; every other compacted
file, and every batch file below it, is superseded. Any other ``.parquet`` file is always live.

So a compaction switches an hour atomically: it writes the new generation's parts (each object appears
whole), and the moment the last part lands, readers take it instead of the files it covers, which are
deleted later. A compaction killed at any point leaves either the old files or the new generation live,
never both, never neither. A batch replayed after compaction rewrites a file below the watermark: it
is superseded on arrival. The rule is written twice, here in Python and as SQL for the engine; a test
holds them to the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

StreamId = tuple[int, int]  # (milliseconds, sequence), as exporter.batch.id_order reads one

_BATCH = re.compile(r"^(\d+)-(\d+)_[0-9a-f]+\.parquet$")
_COMPACTED = re.compile(r"^compacted_(\d+)-(\d+)_(\d+)of(\d+)\.parquet$")


def compacted_name(watermark: StreamId, part: int, parts: int) -> str:
    return f"compacted_{watermark[0]}-{watermark[1]}_{part}of{parts}.parquet"


def batch_id_of(name: str) -> StreamId | None:
    """The entry id a batch file is named by; None for any other file."""
    match = _BATCH.match(name)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True, order=True)
class Generation:
    """A compacted generation of an hour: its watermark and number of parts."""

    watermark: StreamId
    parts: int


def generation_of(name: str) -> tuple[Generation, int] | None:
    """(generation, part number) of a compacted file; None for any other file."""
    match = _COMPACTED.match(name)
    if match is None:
        return None
    return Generation((int(match[1]), int(match[2])), int(match[4])), int(match[3])


def newest_complete(names: list[str]) -> Generation | None:
    """The live generation of a directory holding ``names``: the newest with all its parts present."""
    parts: dict[Generation, set[int]] = {}
    for name in names:
        found = generation_of(name)
        if found is not None:
            parts.setdefault(found[0], set()).add(found[1])
    complete = [g for g, seen in parts.items() if len(seen) == g.parts]
    return max(complete, default=None)


def superseded(names: list[str]) -> set[str]:
    """The files of one directory that readers skip (see the module docstring)."""
    live = newest_complete(names)
    skipped = set()
    for name in names:
        found = generation_of(name)
        if found is not None and found[0] != live:
            skipped.add(name)
        batch = batch_id_of(name)
        if batch is not None and live is not None and batch < live.watermark:
            skipped.add(name)
    return skipped


def superseded_sql(listing: str) -> str:
    """A query of the superseded files' ``_path`` among those ``listing`` (a table function reading the
    cold tier's files in the ``One`` format: names only, no data) lists: the same rule as ``superseded``,
    one listing, no file opened."""
    return (
        "SELECT arrayJoin(arrayFlatten(arrayMap(g -> if((g.1 = 'c' AND (g.2, g.3, g.4) != live) OR (g.1 = 'b' "
        "AND live.3 > 0 AND (g.2, g.3) < (live.1, live.2)), g.5, []), generations))) AS path "
        "FROM (SELECT dir, groupArray((kind, ms, seq, n, paths)) AS generations, "
        "maxIf((ms, seq, n), kind = 'c' AND parts = n) AS live "
        "FROM (SELECT dir, kind, ms, seq, n, groupArray(path) AS paths, uniqExact(i) AS parts "
        "FROM (SELECT _path AS path, substring(path, 1, length(path) - length(_file)) AS dir, "
        f"extractGroups(_file, '{_sql_pattern(_COMPACTED)}') AS c, "
        f"extractGroups(_file, '{_sql_pattern(_BATCH)}') AS b, "
        "multiIf(length(c) > 0, 'c', length(b) > 0, 'b', '') AS kind, "
        "toUInt64OrZero(if(kind = 'c', c[1], b[1])) AS ms, toUInt64OrZero(if(kind = 'c', c[2], b[2])) AS seq, "
        f"toUInt32OrZero(c[3]) AS i, toUInt32OrZero(c[4]) AS n FROM {listing} WHERE kind != '') "
        "GROUP BY dir, kind, ms, seq, n, if(kind = 'b', path, '')) GROUP BY dir)"
    )


def _sql_pattern(pattern: re.Pattern) -> str:
    """A Python regex as a ClickHouse string literal (re2 reads the same syntax here)."""
    return pattern.pattern.replace("\\", "\\\\")
