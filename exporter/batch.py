"""A batch of stream entries and the identity that makes its writes idempotent.

The identity is derived from the batch's manifest (the ranges of entry ids it was read as), which is
recorded in Redis before anything is written. After a crash the batch is rebuilt from its manifest,
so it gets the same identity and the same content, and the sinks recognise the replay.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cached_property

import orjson

# A contiguous run of entries returned by one XREADGROUP call: (first id, last id, count).
Range = tuple[str, str, int]

# An entry's content: the ``data`` field's JSON bytes, or the whole field list for any other form.
# Holding bytes instead of redis-py's per-entry lists keeps a large backlog out of the garbage
# collector's way: bytes are not GC-tracked, lists are, and full collections walk every one of them.
Body = bytes | list


def batch_identity(ranges: list[Range] | None, ids: list[str] | None) -> str:
    """``<first entry id>_<digest of the manifest>``: sortable, readable, and unique per batch."""
    first = ranges[0][0] if ranges else ids[0]  # type: ignore[index]
    digest = hashlib.blake2b(orjson.dumps([ranges, ids]), digest_size=6).hexdigest()
    return f"{first}_{digest}"


def as_text(entry_id) -> str:
    """A stream id, group or consumer name as redis-py returns it (bytes or str), as str."""
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def id_order(entry_id: str | bytes) -> tuple[int, int]:
    """A stream entry id as a sortable pair: ids compare by milliseconds, then sequence."""
    millis, _, sequence = as_text(entry_id).partition("-")
    return int(millis), int(sequence or 0)


def last_of(ranges: list[Range] | None, ids: list[str] | None) -> str | None:
    """The highest entry id a batch holds."""
    candidates = [r[1] for r in ranges or []] + list(ids or [])
    return max(candidates, key=id_order) if candidates else None


def read_range(entries: list[list]) -> Range:
    """The range one XREADGROUP ``>`` call returned: contiguous in the stream."""
    return (as_text(entries[0][0]), as_text(entries[-1][0]), len(entries))


def bodies_of(entries: list[list]) -> list[Body]:
    return [f[1] if len(f) == 2 and f[0] == b"data" else f for _, f in entries]


def fields_of(body: Body) -> list:
    """The entry's original field list (for the dead-letter stream)."""
    return [b"data", body] if isinstance(body, bytes) else body


def body_size(body: Body) -> int:
    """Bytes of field names and values, as the entry held them in Redis."""
    return 4 + len(body) if isinstance(body, bytes) else sum(map(len, body))


@dataclass
class Batch:
    """Entries read as contiguous ``ranges`` (new entries) or as explicit ``ids`` (recovered ones).

    ``bodies`` is dropped once the batch is decoded: acknowledging needs only ``entry_ids``, and a
    batch that fails after that is rebuilt from its manifest on the next start.
    """

    entry_ids: list[bytes]
    bodies: list[Body]
    consumer: str
    ranges: list[Range] | None = None
    ids: list[str] | None = None
    created: float = field(default_factory=time.time)
    recovered: bool = False  # read again (after a crash, or from a Redis that forgot): the archive may hold some

    @classmethod
    def of_entries(cls, entries: list[list], consumer: str, **manifest) -> Batch:
        """A batch of raw entries (``[id, fields]``), as redis-py returns them."""
        return cls([e[0] for e in entries], bodies_of(entries), consumer, **manifest)

    @classmethod
    def of_ids(cls, entries: list[list], consumer: str) -> Batch:
        return cls.of_entries(entries, consumer, ids=[as_text(e[0]) for e in entries])

    def __len__(self) -> int:
        return len(self.entry_ids)

    def without(self, held: set) -> Batch:
        """The same batch (same identity, so its writes deduplicate alike) less the entries in ``held``."""
        kept = [i for i, entry_id in enumerate(self.entry_ids) if entry_id not in held]
        return Batch([self.entry_ids[i] for i in kept], [self.bodies[i] for i in kept], self.consumer,
                     ranges=self.ranges, ids=self.ids, created=self.created, recovered=self.recovered)

    @cached_property
    def batch_id(self) -> str:
        return batch_identity(self.ranges, self.ids)

    @property
    def last_id(self) -> str | None:
        return last_of(self.ranges, self.ids)

    def manifest(self) -> bytes:
        return orjson.dumps(
            {"consumer": self.consumer, "ranges": self.ranges, "ids": self.ids, "created": self.created}
        )


class BatchBuilder:
    """Collects what consecutive XREADGROUP calls return until the batch is big or old enough."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.entry_ids: list[bytes] = []
        self.bodies: list[Body] = []
        self.ranges: list[Range] = []
        self.nbytes = 0
        self.started = 0.0  # monotonic time of the first entry

    def __len__(self) -> int:
        return len(self.entry_ids)

    def add(self, entries: list[list]) -> None:
        if not self.entry_ids:
            self.started = time.monotonic()
        bodies = bodies_of(entries)
        self.entry_ids += [e[0] for e in entries]
        self.bodies += bodies
        self.nbytes += sum(map(body_size, bodies))
        self.ranges.append(read_range(entries))

    def take(self) -> Batch:
        batch = Batch(self.entry_ids, self.bodies, self.consumer, ranges=self.ranges)
        self.__init__(self.consumer)
        return batch


@dataclass
class Manifest:
    """A batch's boundaries as recorded in Redis before its writes began."""

    batch_id: str
    consumer: str
    ranges: list[Range] | None
    ids: list[str] | None
    created: float

    @classmethod
    def parse(cls, batch_id: str, raw: bytes) -> Manifest:
        data = orjson.loads(raw)
        ranges = [tuple(r) for r in data["ranges"]] if data.get("ranges") else None
        return cls(batch_id, data["consumer"], ranges, data.get("ids"), float(data["created"]))

    @property
    def first_id(self) -> str:
        return self.ranges[0][0] if self.ranges else (self.ids or [""])[0]

    @property
    def last_id(self) -> str | None:
        return last_of(self.ranges, self.ids)


class BatchOptimizer:
    """Steers the batch size toward a sink-latency target (the seed's BatchOptimizer).

    Above the target the size shrinks by 30%; under half the target it grows by 30%; in between it
    holds. The average of the last few latencies damps single slow writes.
    """

    def __init__(self, initial: int, minimum: int, maximum: int, target_latency: float,
                 dynamic: bool = True, window: int = 5) -> None:
        self.size = initial
        self.minimum, self.maximum = minimum, maximum
        self.target = target_latency
        self.dynamic = dynamic
        self.history: list[float] = []
        self.window = window

    def observe(self, latency: float) -> int:
        """Record one batch's write latency and return the next batch size."""
        if not self.dynamic:
            return self.size
        self.history = [*self.history[-(self.window - 1):], latency]
        average = sum(self.history) / len(self.history)
        if average > self.target:
            self.size = max(self.minimum, self.size * 7 // 10)
        elif average < self.target / 2:
            self.size = min(self.maximum, max(self.size + 1, self.size * 13 // 10))
        return self.size
