"""The dead-letter stream, ``<stream>:dlq``: what could not be archived, with why; and its replay.

Each dead letter holds the original entry's fields as they were, plus ``_reason``, ``_source_id`` (the
entry's id in the stream), ``_failed_at`` (ms) and ``_batch_id``; an original field of one of those
names was kept as ``_orig_<name>``. Replaying one, after the cause was fixed (a schema version
registered, a producer corrected), appends the original fields to the stream as a new entry and
removes the dead letter, in one transaction: it is in exactly one of the two streams whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from exporter.batch import as_text

META = (b"_reason", b"_source_id", b"_failed_at", b"_batch_id")
_ORIGINAL = b"_orig"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    reason: str
    source_id: str
    failed_at_ms: int | None
    batch_id: str
    fields: dict[bytes, bytes]  # the original entry's fields, as they were

    def preview(self, width: int = 80) -> str:
        """The entry's content on one line: its ``data`` field, or its fields as name=value."""
        body = self.fields.get(b"data")
        text = (body.decode("utf-8", "replace") if body is not None else
                " ".join(f"{as_text(k)}={v.decode('utf-8', 'replace')}" for k, v in self.fields.items()))
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    def as_dict(self) -> dict:
        return {"id": self.id, "reason": self.reason, "source_id": self.source_id, "failed_at_ms": self.failed_at_ms,
                "batch_id": self.batch_id,
                "fields": {as_text(k): v.decode("utf-8", "replace") for k, v in self.fields.items()}}


def dlq_key(stream_key: str) -> str:
    return f"{stream_key}:dlq"


def parse(entry_id, raw: dict) -> DeadLetter:
    fields = {(k if isinstance(k, bytes) else str(k).encode()): (v if isinstance(v, bytes) else str(v).encode())
              for k, v in raw.items()}
    original = {}
    for name, value in fields.items():
        if name in META:
            continue
        original[name[len(_ORIGINAL):] if name.startswith(_ORIGINAL + b"_") else name] = value
    failed = fields.get(b"_failed_at", b"")
    return DeadLetter(as_text(entry_id), fields.get(b"_reason", b"").decode("utf-8", "replace"),
                      as_text(fields.get(b"_source_id", b"")), int(failed) if failed.isdigit() else None,
                      as_text(fields.get(b"_batch_id", b"")), original)


def dead_letters(client: redis.Redis, stream_key: str, limit: int | None = None, newest_first: bool = True,
                 page: int = 1000) -> Iterator[DeadLetter]:
    """The dead letters, newest first by default, at most ``limit``."""
    key, given, cursor = dlq_key(stream_key), 0, "+" if newest_first else "-"
    while limit is None or given < limit:
        count = page if limit is None else min(page, limit - given)
        entries = (client.xrevrange(key, cursor, "-", count=count) if newest_first
                   else client.xrange(key, cursor, "+", count=count))
        for entry_id, raw in entries:
            yield parse(entry_id, raw)
            given += 1
        if len(entries) < count:
            return
        cursor = f"({as_text(entries[-1][0])}"


@dataclass
class Replay:
    replayed: list[tuple[str, str]]  # (dead letter id, the new entry's id in the stream)
    missing: list[str]  # ids asked for that are not in the dead-letter stream


# Moves one dead letter back, atomically: nothing else runs between the read, the append and the delete,
# so two replays of the same letter append it once. Fields are restored as ``parse`` restores them.
_REPLAY = """
local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields, original = found[1][2], {}
for i = 1, #fields, 2 do
  local name = fields[i]
  if name ~= '_reason' and name ~= '_source_id' and name ~= '_failed_at' and name ~= '_batch_id' then
    if string.sub(name, 1, 6) == '_orig_' then name = string.sub(name, 6) end
    table.insert(original, name)
    table.insert(original, fields[i + 1])
  end
end
local id = redis.call('XADD', KEYS[1], '*', unpack(original))
redis.call('XDEL', KEYS[2], ARGV[1])
return id
"""


def replay(client: redis.Redis, stream_key: str, ids: list[str] | None = None) -> Replay:
    """Append each dead letter's original fields to the stream and remove it from the dead letters,
    atomically one by one; ``ids`` None replays them all, oldest first."""
    key = dlq_key(stream_key)
    done = Replay([], [])
    wanted = ids if ids is not None else [letter.id for letter in dead_letters(client, stream_key, newest_first=False)]
    move = client.register_script(_REPLAY)
    for entry_id in wanted:
        new_id = move(keys=[stream_key, key], args=[entry_id])
        if new_id:
            done.replayed.append((entry_id, as_text(new_id)))
        else:
            done.missing.append(entry_id)
    return done
