"""Small helpers shared by the integration tests."""

from __future__ import annotations

import pyarrow.dataset as ds

from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore


def warm_counts(warm: WarmStore) -> tuple[int, int]:
    """(rows, distinct job ids) in jobs_archive."""
    row = warm.backend.query_arrow("SELECT count() AS n, uniqExact(job_id) AS u FROM jobs_archive").to_pylist()[0]
    return int(row["n"]), int(row["u"])


def cold_table(cold: ParquetStore):
    paths = [info["name"] for info in cold.files()]
    if not paths:
        return None
    return ds.dataset(paths, filesystem=cold.fs, format="parquet").to_table()


def cold_counts(cold: ParquetStore) -> tuple[int, int]:
    """(rows, distinct job ids) over every Parquet file of the cold tier."""
    table = cold_table(cold)
    if table is None:
        return 0, 0
    return table.num_rows, len(set(table.column("job_id").to_pylist()))
