"""The cost view: what each tier holds and costs a month at the configured prices, and what keeping the
same records in Redis would cost instead (the seed's business target: the archive under 50% of that).

Redis's bytes per record are measured on the stream as it is (its memory over its entries); with an
empty stream there is nothing to measure and the comparison is left out rather than guessed.
"""

from __future__ import annotations

from exporter.config import CostConfig

GB = 1024**3


def tier_cost(size: int | None, records: int | None, price: float) -> dict:
    """A tier's bytes and cost a month; ``size`` None (the tier is down) is unknown, never zero."""
    if size is None or records is None:
        return {"bytes": None, "records": None, "bytes_per_record": None, "usd_per_month": None}
    return {"bytes": size, "records": records, "bytes_per_record": round(size / records, 1) if records else None,
            "usd_per_month": size / GB * price}


def cost_view(prices: CostConfig, redis_bytes: int, redis_entries: int, warm_bytes: int | None,
              warm_records: int | None, cold_bytes: int | None, cold_records: int | None) -> dict:
    """Per tier and in total; ``in_redis`` is every archived record kept in Redis at the stream's measured
    bytes per entry, and ``share_of_redis`` the archive's cost as a fraction of that. A tier that could
    not be read (None) leaves the total and the comparison out rather than counting it as empty."""
    tiers = {"redis": tier_cost(redis_bytes, redis_entries, prices.redis),
             "warm": tier_cost(warm_bytes, warm_records, prices.warm),
             "cold": tier_cost(cold_bytes, cold_records, prices.cold)}
    known = tiers["warm"]["bytes"] is not None and tiers["cold"]["bytes"] is not None
    archive = tiers["warm"]["usd_per_month"] + tiers["cold"]["usd_per_month"] if known else None
    per_entry = redis_bytes / redis_entries if redis_entries else None
    in_redis = per_entry * cold_records / GB * prices.redis if per_entry is not None and known else None
    return {"tiers": tiers, "archive_usd_per_month": archive, "in_redis_usd_per_month": in_redis,
            "share_of_redis": archive / in_redis if in_redis else None}
