"""The archive's own record of which stream entries it holds, kept in the warm store beside the data.

Redis is the queue, not a durable witness: restarted from an older snapshot, or failed over to a
lagging replica, it forgets acknowledgements and delivers archived entries again, regrouped into
batches whose identity no sink has seen. Every entry id a batch stored is therefore written here after
both tiers hold the batch, in one insert (one block, so all of a batch's ids or none), and an entry
Redis may be delivering again is looked up before it is written a second time. Entries a batch sent to
the dead-letter stream are noted too, as refused: their dead letters live in Redis and may have been
forgotten with the acknowledgement, so for them the dead-letter stream has the last word.

The ledger only has to remember what Redis could still deliver: entries older than ``keep_days`` have
long been trimmed from the stream, so the table drops them by TTL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exporter.engine.interface import ClickHouseBackend
from exporter.engine.sql import sql_string

TABLE = "archived_entries"
_LOOKUP_SPAN = 10_000  # ids per range read when checking entries delivered again
COMMENT = "stream entries the archive holds: how the exporter recognises entries Redis delivers again"


def _ttl(keep_days: int) -> str:
    return f"archived_at + toIntervalDay({keep_days})"


def create_statement(keep_days: int) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    stream LowCardinality(String) COMMENT 'the stream key the entry was read from',
    entry_ms UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'the entry id''s milliseconds',
    entry_seq UInt64 CODEC(T64, ZSTD(1)) COMMENT 'the entry id''s sequence number',
    refused UInt8 COMMENT '1 when it went to the dead-letter stream instead of the tiers',
    batch_id String CODEC(ZSTD(1)) COMMENT 'the batch that archived it',
    archived_at DateTime DEFAULT now() CODEC(DoubleDelta, ZSTD(1)) COMMENT 'when both tiers held it'
) ENGINE = MergeTree()
PARTITION BY toDate(archived_at)
ORDER BY (stream, entry_ms, entry_seq)
TTL {_ttl(keep_days)}
SETTINGS ttl_only_drop_parts = 1
COMMENT {sql_string(COMMENT)}
"""


def split_ids(entry_ids: Sequence[bytes | str]) -> tuple[np.ndarray, np.ndarray]:
    """Stream ids (``<ms>-<seq>``) as two uint64 arrays, without a Python step per id."""
    parts = pc.split_pattern(pa.array(entry_ids, pa.binary()).cast(pa.string()), "-", max_splits=1)
    millis = pc.list_element(parts, 0).cast(pa.uint64())
    sequence = pc.list_element(parts, 1).cast(pa.uint64())
    return millis.to_numpy(), sequence.to_numpy()


class ArchiveLedger:
    """Which entries of one stream the archive holds (see the module docstring)."""

    def __init__(self, backend: ClickHouseBackend, stream_key: str, keep_days: int) -> None:
        self.backend = backend
        self.stream = stream_key
        self.keep_days = max(2, keep_days)

    def ensure(self) -> None:
        """Create the table (a store of an earlier version gets it here) and keep its TTL in step."""
        self.backend.execute(create_statement(self.keep_days))
        shown = self.backend.query_arrow(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = "
            f"'{TABLE}'").column(0)[0].as_py()
        if f"TTL {_ttl(self.keep_days)}" not in shown:
            self.backend.execute(f"ALTER TABLE {TABLE} MODIFY TTL {_ttl(self.keep_days)}",
                                 {"materialize_ttl_after_modify": 0})

    def record(self, stored: Sequence[bytes | str], refused: Sequence[bytes | str], batch_id: str) -> None:
        """Note that both tiers hold ``stored`` and that ``refused`` are dead-lettered (one insert: all or none)."""
        entry_ids = [*stored, *refused]
        if not entry_ids:
            return
        millis, sequence = split_ids(entry_ids)
        rows = pa.table({
            "stream": pa.array([self.stream] * len(entry_ids), pa.string()),
            "entry_ms": millis, "entry_seq": sequence,
            "refused": pa.array([0] * len(stored) + [1] * len(refused), pa.uint8()),
            "batch_id": pa.array([batch_id] * len(entry_ids), pa.string()),
        })
        self.backend.insert_arrow(TABLE, rows, settings={"max_threads": 1})  # one block

    def handled(self, entry_ids: Sequence[bytes | str]) -> dict[bytes | str, bool]:
        """The entries among ``entry_ids`` a batch already handled, each with whether it was refused."""
        if not entry_ids:
            return {}
        millis, sequence = split_ids(entry_ids)
        order = np.argsort(millis, kind="stable")
        found: dict[tuple[int, int], bool] = {}
        for start in range(0, len(order), _LOOKUP_SPAN):
            span = millis[order[start:start + _LOOKUP_SPAN]]
            rows = self.backend.query_arrow(
                f"SELECT entry_ms, entry_seq, refused FROM {TABLE} WHERE stream = {sql_string(self.stream)} "
                f"AND entry_ms BETWEEN {int(span[0])} AND {int(span[-1])}").to_pydict()
            for m, s, refused in zip(rows["entry_ms"], rows["entry_seq"], rows["refused"], strict=True):
                found[(m, s)] = found.get((m, s), True) and bool(refused)  # stored once beats refused
        return {entry_id: found[(m, s)]
                for entry_id, m, s in zip(entry_ids, millis.tolist(), sequence.tolist(), strict=True)
                if (m, s) in found}

    def highest(self) -> tuple[int, int]:
        """The highest entry id handled (stored or refused), as ``(ms, seq)``; ``(0, 0)`` when none."""
        rows = self.backend.query_arrow(
            f"SELECT entry_ms, entry_seq FROM {TABLE} WHERE stream = {sql_string(self.stream)} "
            "ORDER BY entry_ms DESC, entry_seq DESC LIMIT 1").to_pylist()
        return (int(rows[0]["entry_ms"]), int(rows[0]["entry_seq"])) if rows else (0, 0)
