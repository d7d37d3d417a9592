"""S3 lifecycle rules written from the retention policy: cold objects move to an archive storage class
(``retention.archive_class``, Glacier by default) after ``archive_after`` and expire at the cold tier's
limit (the shorter of ``s3_archive_ttl`` and ``data_retention_max_days``). S3 itself then moves and
deletes them; our own expiry pass stays as the safety net (and is all a ``file://`` tier has).

The rule is ours by its ID: other rules on the bucket are kept as they are.
"""

from __future__ import annotations

from exporter.config import RetentionConfig
from exporter.tiers.cold import ParquetStore

RULE_ID = "archives-cold-tier"


def wanted_rule(store: ParquetStore, policy: RetentionConfig) -> dict:
    prefix = store.jobs_root.split("/", 1)[1] + "/" if "/" in store.jobs_root else ""
    expire_days = int(min(policy.s3_archive_ttl / 86400, policy.data_retention_max_days))
    rule: dict = {"ID": RULE_ID, "Filter": {"Prefix": prefix}, "Status": "Enabled",
                  "Expiration": {"Days": max(1, expire_days)}}
    archive_days = int(policy.archive_after // 86400)
    if archive_days < expire_days:
        rule["Transitions"] = [{"Days": max(1, archive_days), "StorageClass": policy.archive_class}]
    return rule


def bucket_of(store: ParquetStore) -> str:
    return store.root.split("/", 1)[0]


def current_rules(store: ParquetStore) -> list[dict]:
    try:
        return store.fs.call_s3("get_bucket_lifecycle_configuration", Bucket=bucket_of(store)).get("Rules", [])
    except FileNotFoundError:  # how s3fs reports NoSuchLifecycleConfiguration: none set yet
        return []


def ensure_rules(store: ParquetStore, policy: RetentionConfig, dry_run: bool) -> dict:
    """Put our rule in place (others kept); returns the rule and whether it changed."""
    rules = current_rules(store)
    ours = wanted_rule(store, policy)
    existing = next((r for r in rules if r.get("ID") == RULE_ID), None)
    changed = not existing or any(existing.get(k) != v for k, v in ours.items())
    if changed and not dry_run:
        others = [r for r in rules if r.get("ID") != RULE_ID]
        store.fs.call_s3("put_bucket_lifecycle_configuration", Bucket=bucket_of(store),
                         LifecycleConfiguration={"Rules": [*others, ours]})
    return {"rule": ours, "changed": changed}
