"""Keep the exporter's resident memory near what it actually holds.

Batches are a few large buffers (joined JSON, Arrow columns, ClickHouse blocks) that live for one
batch. glibc's malloc raises its mmap threshold after the first large free, so from then on such
buffers come from per-thread heaps that it rarely gives back, and the process keeps its peak for
good. A fixed threshold returns them to the system at free; Arrow allocating through malloc as well
(instead of its own pool, which holds freed pages) lets the same rule cover its columns. Where the
C library is not glibc these calls are skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

import pyarrow as pa

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
MMAP_THRESHOLD = 1024 * 1024

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _mallopt, _malloc_trim = _libc.mallopt, _libc.malloc_trim
    _malloc_trim.argtypes = [ctypes.c_size_t]
except (OSError, AttributeError):
    _mallopt = _malloc_trim = None

_lock = threading.Lock()
_last_trim = 0.0


def configure_allocator() -> None:
    """Return large freed buffers to the system at once; idempotent, process-wide."""
    if _mallopt is not None:
        _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    pa.set_memory_pool(pa.system_memory_pool())


def release_free_memory(min_interval: float = 0.5) -> bool:
    """Give free heap pages back to the system, at most once per ``min_interval`` seconds."""
    global _last_trim
    if _malloc_trim is None:
        return False
    with _lock:
        now = time.monotonic()
        if now - _last_trim < min_interval:
            return False
        _last_trim = now
    _malloc_trim(0)
    return True
