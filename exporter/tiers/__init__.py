"""The archive's tiers: warm (jobs_archive and its views in ClickHouse) and cold (Parquet files)."""
