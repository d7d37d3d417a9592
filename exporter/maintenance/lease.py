"""A lease in Redis, so that two exporters never apply retention at the same moment.

``SET key owner NX PX ttl`` takes it; only the holder may give it back (a compare-and-delete script), and
it lapses by itself if the holder dies, so a crashed manager never blocks the next one for longer than
the lease's time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseHeld(Exception):
    """Another manager holds the lease; its holder is in the message."""


@contextlib.contextmanager
def lease(client: redis.Redis, key: str, seconds: float) -> Iterator[str]:
    """Hold ``key`` for the block (at most ``seconds``); LeaseHeld when another holder has it."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not client.set(key, owner, nx=True, px=max(1, int(seconds * 1000))):
        holder = client.get(key)
        holder = holder.decode() if isinstance(holder, bytes) else holder
        raise LeaseHeld(f"another retention run holds the lease ({holder or 'expiring'})")
    try:
        yield owner
    finally:
        with contextlib.suppress(redis.RedisError):
            client.eval(_RELEASE, 1, key, owner)
