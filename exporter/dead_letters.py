"""The dead-letter stream, ``<stream>:dlq``: what could not be archived, with why; and its replay.

Each dead letter holds the original entry's fields as they were, plus ``_reason``, ``_source_id`` (the
entry's id in the stream), ``_failed_at`` (ms) and ``_batch_id``; an original field of one of those
names was kept as ``_orig_<name>``. Replaying one, after the cause was fixed (a schema version
registered, a producer corrected), appends the original fields to the stream as a new entry and
removes the dead letter, in one transaction: it is in exactly one of the two streams whatever happens.

A dead letter holds whatever bytes the producer wrote (names and values that are not UTF-8, NUL,
escape sequences, megabytes): it is read as bytes, shown as text (``text``: bytes that are not UTF-8 as
``\\xff``; a terminal view escapes control characters on top, see ``archives_tui.render.visible``) and
replayed byte for byte by Redis itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

META = (b"_reason", b"_source_id", b"_failed_at", b"_batch_id")
_ORIGINAL = b"_orig"
_LIKE_META = re.compile(rb"(?:_orig)*(?:" + b"|".join(META) + rb")\Z")  # a producer's name the letter's could shadow
_RENAMED = re.compile(rb"(?:_orig)+(?:" + b"|".join(META) + rb")\Z")  # such a name, as the letter keeps it
_SPACES = re.compile(r"[ \t\n]+")


def text(value: bytes | str) -> str:
    """Bytes from Redis as text that says every byte: UTF-8 as it is, any other byte as ``\\xNN``."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def original_name(name: bytes) -> bytes:
    """The producer's field name a dead letter's ``name`` stands for: ``_orig_reason`` was ``_reason``
    (the exporter renamed it to keep it apart from the letter's own fields); any other name is itself."""
    return name[len(_ORIGINAL):] if _RENAMED.match(name) else name


def letter_fields(entry_id: bytes, fields: list, reason: str, batch_id: str) -> list:
    """A dead letter's field list: the entry's fields in order, repeated names and all, then the letter's
    own (``META``). A producer's field named like one of those (``_reason``, or ``_orig_reason`` already)
    gains an ``_orig`` prefix, which replay takes off again (``original_name``)."""
    out: list = []
    for key, value in zip(fields[::2], fields[1::2], strict=False):
        name = key if isinstance(key, bytes) else str(key).encode()
        out += [_ORIGINAL + name if _LIKE_META.match(name) else name, value]
    return [*out, b"_reason", reason.encode(), b"_source_id", entry_id, b"_failed_at",
            str(int(time.time() * 1000)).encode(), b"_batch_id", batch_id.encode()]


@dataclass(frozen=True)
class DeadLetter:
    id: str
    reason: str
    source_id: str
    failed_at_ms: int | None
    batch_id: str
    fields: dict[bytes, bytes]  # the original entry's fields, as they were

    def preview(self, width: int = 80) -> str:
        """The entry's content on one line, at most ``width`` characters: its ``data`` field, or its fields
        as name=value. Only the head of each value is decoded, so a huge entry costs no more than a small
        one. Text, not terminal-safe: control characters are as they were (see ``render.visible``)."""
        body = self.fields.get(b"data")
        pairs = [(None, body)] if body is not None else list(self.fields.items())
        shown, room = [], width + 1
        for name, value in pairs:
            head = _SPACES.sub(" ", (f"{text(name)}=" if name is not None else "") + text(value[:4 * room])).strip()
            shown.append(head)
            room -= len(head) + 1
            if room <= 0:
                break
        line = " ".join(shown)
        return line if len(line) <= width else line[: width - 1] + "…"

    def failed_at(self) -> datetime | None:
        """When it was refused, or None when unknown or no date (a letter written by hand may say anything)."""
        if self.failed_at_ms is None:
            return None
        try:
            return datetime.fromtimestamp(self.failed_at_ms / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            return None

    def as_dict(self) -> dict:
        """For JSON: names and values as ``text`` (bytes that are not UTF-8 as ``\\xNN``)."""
        return {"id": self.id, "reason": self.reason, "source_id": self.source_id, "failed_at_ms": self.failed_at_ms,
                "batch_id": self.batch_id, "fields": {text(k): text(v) for k, v in self.fields.items()}}


def is_entry_id(candidate: str) -> bool:
    """Whether ``candidate`` is a stream entry id as Redis writes one (``1764322800000-0``)."""
    return _ENTRY_ID.fullmatch(candidate) is not None


_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def dlq_key(stream_key: str) -> str:
    return f"{stream_key}:dlq"


def parse(entry_id, raw: dict) -> DeadLetter:
    fields = {(k if isinstance(k, bytes) else str(k).encode()): (v if isinstance(v, bytes) else str(v).encode())
              for k, v in raw.items()}
    original = {original_name(name): value for name, value in fields.items() if name not in META}
    failed = fields.get(b"_failed_at", b"")
    failed_at_ms = int(failed) if failed.isdigit() and len(failed) <= 18 else None  # JSON's integers: 64 bits
    return DeadLetter(text(entry_id), text(fields.get(b"_reason", b"")), text(fields.get(b"_source_id", b"")),
                      failed_at_ms, text(fields.get(b"_batch_id", b"")), original)


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
        cursor = f"({text(entries[-1][0])}"


@dataclass
class Replay:
    replayed: list[tuple[str, str]]  # (dead letter id, the new entry's id in the stream)
    missing: list[str]  # ids asked for that are not in the dead-letter stream
    empty: list[str]  # dead letters with no original field: nothing to append, so they stay


_READ = "return redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])"  # the letter's fields as Redis holds them


def replay(client: redis.Redis, stream_key: str, ids: list[str] | None = None) -> Replay:
    """Append each dead letter's original fields to the stream and remove it from the dead letters,
    atomically one by one; ``ids`` None replays them all, oldest first."""
    done = Replay([], [], [])
    wanted = ids if ids is not None else [letter.id for letter in dead_letters(client, stream_key, newest_first=False)]
    for entry_id in wanted:
        new_id = _move(client, stream_key, entry_id)
        if new_id is None:
            done.missing.append(entry_id)
        elif new_id:
            done.replayed.append((entry_id, text(new_id)))
        else:
            done.empty.append(entry_id)
    return done


def _move(client: redis.Redis, stream_key: str, entry_id: str) -> bytes | None:
    """Move one dead letter back: its new id, None when it is gone, b"" when it has no original field.

    The read, the append and the delete are one transaction under WATCH, so a letter replayed twice at
    once is appended once. Not a Lua script: its ``unpack`` stops at about 4,000 fields, and an entry
    may hold any number. The fields are read raw (a script's reply), in order, duplicates and all."""
    key = dlq_key(stream_key)
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                found = pipe.execute_command("EVAL", _READ, 1, key, entry_id)
                if not found:
                    return None
                raw = found[0][1]
                original = [part for name, value in zip(raw[::2], raw[1::2], strict=True) if name not in META
                            for part in (original_name(name), value)]
                if not original:
                    return b""
                pipe.multi()
                pipe.execute_command("XADD", stream_key, "*", *original)
                pipe.xdel(key, entry_id)
                return pipe.execute()[0]
            except redis.WatchError:  # the dead letters changed between the read and the move: read again
                continue
