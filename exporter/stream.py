"""Consumer-group access to the completions stream: read, recover, acknowledge, dead-letter.

Acknowledgement, dead-lettering and forgetting a batch's manifest happen in one MULTI/EXEC, so after
any crash either all three happened or none did.
"""

from __future__ import annotations

import time

import redis

from exporter.batch import Batch, Manifest

Entry = list  # [entry id, [field, value, ...]] as redis-py returns it with the reply callback bypassed


def raw_client(client: redis.Redis) -> redis.Redis:
    """A client whose XREADGROUP/XRANGE/XAUTOCLAIM replies stay raw lists (no per-entry dicts)."""
    clone = redis.Redis(connection_pool=client.connection_pool)
    for command in ("XREADGROUP", "XRANGE", "XAUTOCLAIM", "XCLAIM"):
        clone.set_response_callback(command, lambda response, **options: response)
    return clone


def entries_of(reply) -> list[Entry]:
    """The entries of a single-stream XREADGROUP reply (a RESP2 list or a RESP3 map)."""
    if not reply:
        return []
    entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    return entries or []


class StreamReader:
    def __init__(self, client: redis.Redis, stream_key: str, group: str, consumer: str) -> None:
        self.client = raw_client(client)
        self.stream_key = stream_key
        self.group = group
        self.consumer = consumer
        self.dlq_key = f"{stream_key}:dlq"
        self.manifests_key = f"{stream_key}:batches:{group}"

    def ensure_group(self) -> None:
        """Create the consumer group at the start of the stream (archive what is already there)."""
        try:
            self.client.xgroup_create(self.stream_key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        return self._read(">", count, block_ms)

    def read_own_pending(self, count: int, after: str = "0") -> list[Entry]:
        """Entries delivered to this consumer and not acknowledged (after a crash)."""
        return self._read(after, count, None)

    def _read(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        args: list = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", self.stream_key, start]
        return entries_of(self.client.execute_command(*args))

    def read_range(self, first: str, last: str, count: int) -> list[Entry]:
        return self.client.execute_command("XRANGE", self.stream_key, first, last, "COUNT", count) or []

    def claim_stale(self, min_idle_ms: int, count: int, start: str = "0-0") -> tuple[str, list[Entry]]:
        """Take over entries another consumer left pending for ``min_idle_ms`` (it died)."""
        reply = self.client.execute_command(
            "XAUTOCLAIM", self.stream_key, self.group, self.consumer, min_idle_ms, start, "COUNT", count
        )
        next_start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        return next_start, [e for e in reply[1] if e and e[1] is not None]

    def record_manifest(self, batch: Batch) -> None:
        self.client.hset(self.manifests_key, batch.batch_id, batch.manifest())

    def manifests(self) -> list[Manifest]:
        raw = self.client.hgetall(self.manifests_key)
        return sorted((Manifest.parse(k.decode(), v) for k, v in raw.items()), key=lambda m: m.first_id)

    def rebuild(self, manifest: Manifest) -> Batch:
        """The batch a manifest describes, re-read from the stream (trimmed entries are gone)."""
        entries: list[Entry] = []
        for first, last, count in manifest.ranges or []:
            entries.extend(self.read_range(first, last, count))
        for start in range(0, len(manifest.ids or []), 1000):
            chunk = manifest.ids[start:start + 1000]  # type: ignore[index]
            claimed = self.client.execute_command(
                "XCLAIM", self.stream_key, self.group, self.consumer, 0, *chunk
            ) or []
            entries.extend(e for e in claimed if e and e[1] is not None)
        return Batch.of_entries(entries, manifest.consumer, ranges=manifest.ranges, ids=manifest.ids,
                                created=manifest.created, recovered=True)

    def complete(self, batch: Batch, dead_letters: list[tuple[Entry, str]]) -> None:
        """Dead-letter the refused entries, acknowledge the whole batch, forget its manifest: atomically."""
        pipe = self.client.pipeline(transaction=True)
        for (entry_id, fields), reason in dead_letters:
            pipe.xadd(self.dlq_key, _dead_letter_fields(entry_id, fields, reason, batch.batch_id))
        ids = batch.entry_ids
        for start in range(0, len(ids), 10_000):
            pipe.xack(self.stream_key, self.group, *ids[start:start + 10_000])
        pipe.hdel(self.manifests_key, batch.batch_id)
        pipe.execute()

    def has_own_pending(self) -> bool:
        """Whether entries delivered to this consumer still await acknowledgement."""
        return bool(self.client.xpending_range(self.stream_key, self.group, "-", "+", 1, consumername=self.consumer))


def _dead_letter_fields(entry_id, fields: list, reason: str, batch_id: str) -> dict:
    out: dict = {}
    for key, value in zip(fields[::2], fields[1::2], strict=False):
        name = key if isinstance(key, bytes) else str(key).encode()
        if name in (b"_reason", b"_source_id", b"_failed_at", b"_batch_id"):
            name = b"_orig" + name
        out[name] = value
    out[b"_reason"] = reason.encode()
    out[b"_source_id"] = entry_id
    out[b"_failed_at"] = str(int(time.time() * 1000)).encode()
    out[b"_batch_id"] = batch_id.encode()
    return out
