"""Keep the exporter's resident memory near what it actually holds, and its collector out of the way.

Batches are a few large buffers (joined JSON, Arrow columns, ClickHouse blocks) that live for one
batch. glibc's malloc raises its mmap threshold after the first large free, so from then on such
buffers come from per-thread heaps that it rarely gives back, and the process keeps its peak for
good. A fixed threshold returns them to the system at free; Arrow allocating through malloc as well
(instead of its own pool, which holds freed pages) lets the same rule cover its columns. Where the
C library is not glibc these calls are skipped.

These are process-wide choices: a process whose job is exporting (``archives export``, the dashboard's
exporter child) makes them with ``tuned_for_export()``; a library user or the dashboard does not
inherit them from the pipeline.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import threading
import time
from collections.abc import Iterator

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


@contextlib.contextmanager
def tuned_for_export(young_threshold: int = 20_000) -> Iterator[None]:
    """Run an export-only process with the allocator settings above and fewer, smaller collections.

    Each XREADGROUP reply is thousands of short-lived lists; at Python's default threshold (700) they
    trigger collections that rescan every long-lived object, which cost the reader a third of its
    time. Freezing what exists at start (modules, config) takes it out of those scans. The collector
    is restored on exit; the allocator settings stay (they only return memory sooner).
    """
    configure_allocator()
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(previous[0], young_threshold), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


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
