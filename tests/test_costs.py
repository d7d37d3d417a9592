"""The cost view: each tier's bytes, bytes per record and monthly cost at the configured prices, and the
archive's cost against keeping the same records in Redis."""

from __future__ import annotations

import json

import pytest

from archives_tui.cli import main
from exporter.config import CostConfig
from exporter.maintenance.costs import GB, cost_view
from exporter.seed import seed_stream
from tests.test_outages import write_config


def test_prices_apply_per_tier_and_the_redis_comparison_uses_the_streams_bytes_per_entry():
    view = cost_view(CostConfig(), redis_bytes=GB, redis_entries=1_000_000, warm_bytes=GB // 10,
                     warm_records=500_000, cold_bytes=GB // 4, cold_records=2_000_000)
    tiers = view["tiers"]
    assert tiers["redis"]["usd_per_month"] == pytest.approx(0.50) and tiers["redis"]["bytes_per_record"] == 1073.7
    assert view["archive_usd_per_month"] == pytest.approx(0.01 + 0.023 / 4)
    assert view["in_redis_usd_per_month"] == pytest.approx(1.00)  # 2M records at the stream's 1,074 B each
    assert view["share_of_redis"] == pytest.approx(0.01575)
    empty = cost_view(CostConfig(), 0, 0, 0, 0, 0, 0)
    assert empty["in_redis_usd_per_month"] is None and empty["share_of_redis"] is None


def test_retention_show_prints_the_cost_view(config, redis_client, tmp_path, capsys):
    seed_stream(redis_client, "completed_jobs", 500, days=3, seed=37)
    config_file = write_config(tmp_path / "archives.yaml", config, costs={"cold": 0.01})
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config_file), "retention", "show", "--format", "json"]) == 0
    costs = json.loads(capsys.readouterr().out)["costs"]
    cold = costs["tiers"]["cold"]
    assert cold["records"] == 500 and cold["usd_per_month"] == pytest.approx(cold["bytes"] / GB * 0.01)
    assert 0 < costs["share_of_redis"] < 1
    assert main(["--config", str(config_file), "retention", "show"]) == 0
    assert "of keeping its 500 records in Redis" in capsys.readouterr().out
