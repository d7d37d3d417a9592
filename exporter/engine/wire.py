"""The wire between the process that owns the archive's store and the consoles querying it.

The owner answers on a Unix socket (owner-only, the peer's uid checked). One request per connection; a
second connection cancels a query running on the first. Frames are a 4-byte big-endian length and a
JSON object. The console sends one request frame::

    {"v": 2, "op": "ping"}                                 -> {"ok": true, "owner": "pid 12 (archives export)"}
    {"v": 2, "op": "catalog"}                              -> {"ok": true, "catalog": {...}}
    {"v": 2, "op": "cancel", "query_id": "..."}           -> {"ok": true, "cancelled": true}
    {"v": 2, "op": "explain" | "pretty", "sql": "..."}    -> {"ok": true, "text": "..."}
    {"v": 2, "op": "run", "sql": "...",                    -> {"ok": true, "tiers": [...], "sql": "..."},
     "limits": {...} | null, "query_id": "..." | null,        Arrow IPC stream, trailer
     "batch_rows": 65536}

"run" is "run this user statement": the owner judges the text (the guard), routes it, runs it with its
own limits (a request's ``limits`` may only lower them) and streams the result. A refusal or a failure
before the result starts is the answer frame itself: ``{"ok": false, "kind": "refused" | "query" |
"unavailable" | "error", "error": "one sentence"}``. Otherwise the result follows as one Arrow IPC
stream written batch by batch as the engine produces it, then a trailer frame: ``{"ok": true,
"rows_read": n, "bytes_read": n}``, or the failure frame above when the query failed mid-stream (the
IPC stream is ended first, so the client reads it to its end either way). No pickle: JSON and Arrow.

A request frame is bounded (``MAX_REQUEST``) before it is read; a console that hangs up makes the owner
abandon its query.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from exporter.engine.interface import Catalog, Column, Limits, Table

VERSION = 2
MAX_FRAME = 64 << 20  # an owner's answer (a catalog is about 200 KB); a bogus length must not allocate gigabytes
MAX_REQUEST = 4 << 20  # a console's request: a statement is at most query.max_statement_bytes, JSON-escaped
QUERY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_LENGTH = struct.Struct(">I")


class WireError(Exception):
    """The other side sent something that is not this protocol, or hung up mid-frame."""


def socket_path(warm_dir: Path) -> Path:
    """Where the owner of the embedded store at ``warm_dir`` answers: beside it, as its lock file is."""
    return warm_dir.with_name(warm_dir.name + ".sock")


def send(stream: BinaryIO, message: dict[str, Any], flush: bool = True) -> None:
    """Write one frame; ``flush=False`` when more follows at once (one wake-up of the reader, not two)."""
    body = orjson.dumps(message)
    stream.write(_LENGTH.pack(len(body)) + body)
    if flush:
        stream.flush()


def receive(stream: BinaryIO, limit: int = MAX_FRAME) -> dict[str, Any]:
    length = _LENGTH.unpack(_exactly(stream, _LENGTH.size))[0]
    if length > limit:
        raise WireError(f"a frame of {length:,} bytes is larger than the protocol allows")
    try:
        message = orjson.loads(_exactly(stream, length))
    except orjson.JSONDecodeError:
        raise WireError("a frame is not JSON") from None
    if not isinstance(message, dict):
        raise WireError("a frame is not a JSON object")
    return message


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) < size:
        raise WireError("the connection closed mid-frame")
    return data


def limits_to_wire(limits: Limits | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {"max_execution_time": limits.max_execution_time, "max_rows_to_read": limits.max_rows_to_read,
            "max_result_rows": limits.max_result_rows, "cut_results": limits.cut_results,
            "block_rows": limits.block_rows}


def limits_from_wire(data: object) -> Limits | None:
    """The limits a request asks for (the owner applies them only where lower than its own); anything but
    non-negative numbers is refused (they end up in SQL)."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise WireError("limits must be an object")

    def number(key: str, kind: type) -> Any:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise WireError(f"limits.{key} must be a non-negative number")
        return kind(value)

    return Limits(number("max_execution_time", float), number("max_rows_to_read", int),
                  number("max_result_rows", int), bool(data.get("cut_results", True)), number("block_rows", int))


def catalog_to_wire(catalog: Catalog) -> dict[str, Any]:
    return {
        "tables": [{"name": t.name, "engine": t.engine, "comment": t.comment,
                    "columns": [[c.name, c.type, c.comment] for c in t.columns]} for t in catalog.tables],
        "functions": sorted(catalog.functions),
        "aggregate_functions": sorted(catalog.aggregate_functions),
        "keywords": sorted(catalog.keywords),
        "types": sorted(catalog.types),
    }


def catalog_from_wire(data: dict[str, Any]) -> Catalog:
    return Catalog(
        tables=tuple(Table(t["name"], t["engine"], tuple(Column(*c) for c in t["columns"]), t["comment"])
                     for t in data["tables"]),
        functions=frozenset(data["functions"]),
        aggregate_functions=frozenset(data["aggregate_functions"]),
        keywords=frozenset(data["keywords"]),
        types=frozenset(data.get("types", [])),  # an owner from before types were on the wire sends none
    )
