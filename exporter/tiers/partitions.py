"""Cutting a batch by time: the warm tier inserts per day (its partition), the cold tier writes per hour."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1000, "us": 1}


def split_by_time(records: pa.Table, width_us: int) -> list[tuple[int, pa.Table]]:
    """``(bucket, rows)`` for each ``enqueue_time // width_us`` present, buckets ascending, rows in batch
    order. A batch within one bucket (the usual case: the stream is in time order) is returned as is."""
    column = records.column("enqueue_time").combine_chunks()
    micros = column.cast(pa.int64()).to_numpy() * _MICROS_PER_UNIT[column.type.unit]
    buckets = micros // width_us
    if buckets.min() == buckets.max():
        return [(int(buckets[0]), records)]
    order = np.argsort(buckets, kind="stable")
    ordered = buckets[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(order)]
    rows = records.take(pa.array(order))
    return [(int(ordered[start]), rows.slice(start, end - start)) for start, end in zip(starts, ends, strict=True)]
