"""Consumer-group access to the completions stream: read, recover, acknowledge, dead-letter.

Acknowledgement, dead-lettering, forgetting a batch's manifest and raising the archived mark happen in
one MULTI/EXEC, so after any crash either all of them happened or none did. The mark (the highest entry
id of any completed batch) outlives the consumer group: if the group is destroyed (FLUSHDB, XGROUP
DESTROY, a restart without persistence) it is re-created after the mark, or after the highest batch
still in hand, so nothing is skipped and nothing is read again into a new batch.
"""

from __future__ import annotations

import redis

from exporter.batch import Batch, Manifest, as_text, id_order
from exporter.dead_letters import dlq_key, letter_fields

# SET KEYS[1] ARGV[1] unless it already holds a higher stream id (batches complete out of order).
_RAISE_MARK = """
local current = redis.call('GET', KEYS[1])
if current then
  local cm, cs = string.match(current, '^(%d+)-(%d+)$')
  local nm, ns = string.match(ARGV[1], '^(%d+)-(%d+)$')
  local function less(a, b) return #a < #b or (#a == #b and a < b) end
  if cm and (less(nm, cm) or (nm == cm and not less(cs, ns))) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

Entry = list  # [entry id, [field, value, ...]] as redis-py returns it with the reply callback bypassed


def raw_client(client: redis.Redis) -> redis.Redis:
    """A client whose XREADGROUP/XRANGE/XCLAIM replies stay raw lists (no per-entry dicts)."""
    clone = redis.Redis(connection_pool=client.connection_pool)
    for command in ("XREADGROUP", "XRANGE", "XCLAIM"):
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
        self.dlq_key = dlq_key(stream_key)
        self.manifests_key = f"{stream_key}:batches:{group}"
        self.mark_key = mark_key(stream_key, group)

    def ensure_group(self) -> str | None:
        """Make sure the consumer group exists; returns the position if it had to be re-created.

        A new group starts at the beginning of the stream (archive what is already there); a lost one
        (there is an archived mark or a manifest) after what was archived or is in hand, so that an
        exporter started after the loss neither skips nor re-reads anything.
        A group made by a version without the archived mark gets one: its last delivered id, since
        every entry up to it is acknowledged, in a manifest, or pending (whose fate is the group's).
        """
        position = self._resume_position()
        if self._create_group(position):
            return position if position != "0" else None
        if not self.client.exists(self.mark_key):
            for group in self.client.xinfo_groups(self.stream_key):
                name, last = (as_text(group[k]) for k in ("name", "last-delivered-id"))
                if name == self.group and last != "0-0":
                    self.client.set(self.mark_key, last, nx=True)
        return None

    def recreate_group(self) -> str | None:
        """Re-create a lost group after everything archived or in hand; None if another exporter did.

        Entries up to the archived mark are stored; entries of batches still in hand (their manifests)
        are stored when those batches complete. Reading resumes after the higher of the two, or at the
        start of whatever stream exists when both are gone too (FLUSHDB).
        """
        position = self._resume_position()
        return position if self._create_group(position) else None

    def _resume_position(self) -> str:
        candidates = [m.last_id for m in self.manifests() if m.last_id]
        mark = self.client.get(self.mark_key)
        if mark:
            candidates.append(mark.decode())
        return max(candidates, key=id_order) if candidates else "0"

    def _create_group(self, position: str) -> bool:
        try:
            self.client.xgroup_create(self.stream_key, self.group, id=position, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

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

    def record_manifest(self, batch: Batch) -> None:
        self.client.hset(self.manifests_key, batch.batch_id, batch.manifest())

    def manifests(self) -> list[Manifest]:
        raw = self.client.hgetall(self.manifests_key)
        return sorted((Manifest.parse(k.decode(), v) for k, v in raw.items()), key=lambda m: m.first_id)

    def rebuild(self, manifest: Manifest) -> Batch:
        """The batch a manifest describes, re-read from the stream (trimmed entries are gone).

        Entries are read by id, not through the group, so a batch rebuilds the same whether or not its
        entries are still pending (a re-created group has forgotten them); those still pending are
        claimed so that this consumer acknowledges them.
        """
        entries: list[Entry] = []
        for first, last, count in manifest.ranges or []:
            entries.extend(self.read_range(first, last, count))
        for start in range(0, len(manifest.ids or []), 1000):
            chunk = manifest.ids[start:start + 1000]  # type: ignore[index]
            pipe = self.client.pipeline(transaction=False)
            for entry_id in chunk:
                pipe.execute_command("XRANGE", self.stream_key, entry_id, entry_id)
            entries.extend(found[0] for found in pipe.execute() if found)
            self.client.execute_command("XCLAIM", self.stream_key, self.group, self.consumer, 0, *chunk, "JUSTID")
        return Batch.of_entries(entries, manifest.consumer, ranges=manifest.ranges, ids=manifest.ids,
                                created=manifest.created, recovered=True)

    def claim_from(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over up to ``count`` of ``consumer``'s pending entries (it is gone); trimmed ones are acked."""
        pending = self.client.xpending_range(self.stream_key, self.group, "-", "+", count, consumername=consumer)
        ids = [p["message_id"] for p in pending]
        if not ids:
            return []
        claimed = self.client.execute_command("XCLAIM", self.stream_key, self.group, self.consumer, min_idle_ms,
                                              *ids) or []
        gone = [e[0] for e in claimed if e and e[1] is None]
        if gone:
            self.client.xack(self.stream_key, self.group, *gone)
        return [e for e in claimed if e and e[1] is not None]

    def consumers_with_pending(self) -> dict[str, int]:
        """Pending entries per consumer of the group."""
        found = self.client.xinfo_consumers(self.stream_key, self.group)
        return {as_text(c["name"]): int(c["pending"]) for c in found if int(c["pending"])}

    def complete(self, batch: Batch, dead_letters: list[tuple[Entry, str]]) -> None:
        """Dead-letter the refused entries, acknowledge the whole batch, forget its manifest: atomically."""
        pipe = self.client.pipeline(transaction=True)
        for (entry_id, fields), reason in dead_letters:
            pipe.execute_command("XADD", self.dlq_key, "*", *letter_fields(entry_id, fields, reason, batch.batch_id))
        ids = batch.entry_ids
        for start in range(0, len(ids), 10_000):
            pipe.xack(self.stream_key, self.group, *ids[start:start + 10_000])
        pipe.hdel(self.manifests_key, batch.batch_id)
        if batch.last_id:
            pipe.eval(_RAISE_MARK, 1, self.mark_key, batch.last_id)
        pipe.execute()

    def dead_lettered(self, entry_ids: list) -> set:
        """Which of ``entry_ids`` the dead-letter stream holds. Only its tail is read: an entry is
        dead-lettered after it was added, so its dead letter's id is not older than its own."""
        wanted = set(entry_ids)
        found: set = set()
        start = f"{min(id_order(e) for e in entry_ids)[0]}-0" if entry_ids else None
        while start is not None:
            chunk = self.client.execute_command("XRANGE", self.dlq_key, start, "+", "COUNT", 1000) or []
            for _, fields in chunk:
                source = dict(zip(fields[::2], fields[1::2], strict=False)).get(b"_source_id")
                if source in wanted:
                    found.add(source)
            start = "(" + as_text(chunk[-1][0]) if len(chunk) == 1000 else None
        return found

    def last_delivered(self) -> tuple[int, int] | None:
        """The group's last delivered entry id (``None`` without the group): it only goes back when Redis
        forgot deliveries (an older snapshot, a lagging replica) or the group was re-created lower."""
        try:
            groups = self.client.xinfo_groups(self.stream_key)
        except redis.ResponseError as exc:
            if "no such key" in str(exc):
                return None  # the stream is gone too (a restart without persistence)
            raise
        for group in groups:
            if as_text(group["name"]) == self.group:
                return id_order(group["last-delivered-id"])
        return None

    def server_run(self) -> str:
        """The Redis server's run id: a new one means it restarted or another server took over."""
        return as_text(self.client.info("server")["run_id"])

    def has_own_pending(self) -> bool:
        """Whether entries delivered to this consumer still await acknowledgement."""
        return bool(self.client.xpending_range(self.stream_key, self.group, "-", "+", 1, consumername=self.consumer))


def mark_key(stream_key: str, group: str) -> str:
    """Where the highest archived entry id of ``group`` is kept (see the module docstring)."""
    return f"{stream_key}:archived:{group}"


def is_lost_group(exc: BaseException) -> bool:
    """Whether Redis says the consumer group (or the whole stream) no longer exists."""
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP")
