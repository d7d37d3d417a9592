"""Templates over warm-only, cold-only and spanning ranges agree with the Parquet files read by pyarrow."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from archives_tui.cli import main
from exporter import runtime
from exporter.config import TemplateSpec
from exporter.pipeline import ExportPipeline
from exporter.query import templates
from exporter.query.layer import LocalQueries
from exporter.query.run import run, run_query
from exporter.seed import seed_stream
from tests.helpers import cold_table
from tests.test_federation import archive  # noqa: F401 - 60 days exported with a 30-day warm window
from tests.test_outages import write_config

RANGES = {"warm only": ("10d", "0s"), "cold only": ("55d", "35d"), "spanning": ("61d", "0s")}


def oracle(cold, since: str, until: str) -> Counter:
    table = cold_table(cold)
    now = datetime.now(UTC)
    low = now - timedelta(days=int(since[:-1])) if since != "0s" else now
    high = now - timedelta(days=int(until[:-1])) if until != "0s" else now
    return Counter((q, o) for q, o, t in zip(table.column("queue").to_pylist(), table.column("outcome").to_pylist(),
                                             table.column("enqueue_time").to_pylist(), strict=True)
                   if low <= t < high)


@pytest.mark.parametrize("span", list(RANGES))
def test_queue_health_counts_match_the_files_on_every_range(archive, span):  # noqa: F811
    warm, cold = archive
    since, until = RANGES[span]
    result = run_query(LocalQueries(warm.backend), templates.render("queue-health", {"since": since, "until": until}))
    counts = Counter({(r["queue"], r["outcome"]): r["jobs"] for r in result.to_pylist()})
    assert counts == oracle(cold, since, until) and sum(counts.values()) > 100


@pytest.mark.parametrize("span", list(RANGES))
def test_every_template_runs_on_every_range(archive, span):  # noqa: F811
    warm, _ = archive
    since, until = RANGES[span]
    for name in templates.TEMPLATES:
        params = {"since": since, "until": until, **({"min_jobs": "1"} if name == "worker-performance" else {})}
        result = run_query(LocalQueries(warm.backend), templates.render(name, params))
        assert result.num_rows > 0, name


def test_retention_status_shows_what_each_tier_holds(archive):  # noqa: F811
    warm, _ = archive
    found = run_query(LocalQueries(warm.backend), templates.render("retention-status"))
    rows = {r["tier"]: r["jobs"] for r in found.to_pylist()}
    assert rows["cold"] == rows["archive (jobs)"] == 6000 and 0 < rows["warm"] < 6000


@pytest.mark.parametrize(("params", "message"), [
    ({"since": "soon"}, "since: expected a duration"),
    ({"since": "1d", "until": "2d"}, "until (2d) must be more recent than since (1d)"),
    ({"colour": "red"}, "unknown parameter 'colour'"),
    ({"queue": "x'; DROP TABLE jobs_archive --"}, None),
])
def test_parameters_are_checked_and_quoted(params, message):
    if message is None:  # a hostile value stays inside its string literal
        assert "queue = 'x\\'; DROP TABLE jobs_archive --'" in templates.render("queue-health", params)
        return
    with pytest.raises(templates.TemplateError) as refused:
        templates.render("queue-health", params)
    assert message in str(refused.value)


def test_the_cli_lists_and_runs_templates(config, redis_client, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "templates", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in listed][:5] == ["queue-health", "error-investigation", "capacity-planning",
                                               "performance-trends", "retention-status"]
    assert main(["--config", str(config_file), "query", "--template", "queue-health", "--param", "since=3d",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith('"queue","outcome","jobs"')
    assert main(["--config", str(config_file), "query", "--template", "nope"]) == 2
    assert "no template 'nope'" in capsys.readouterr().err


def test_a_users_own_template_from_the_config_file_lists_and_runs(archive, config, tmp_path, capsys):  # noqa: F811
    warm, cold = archive
    own = {"failures-by-tenant": {
        "title": "Failures by tenant", "description": "failed jobs per tenant",
        "sql": "SELECT tenant_id, count() AS failed FROM jobs WHERE {where} AND outcome = 'failed' "
               "GROUP BY tenant_id ORDER BY tenant_id",
        "defaults": {"since": "61d"}}}
    config_file = write_config(tmp_path / "archives.yaml", config, query={"templates": own},
                               retention={"clickhouse_ttl": "30d"})
    warm.close()  # the CLI opens the store itself
    assert main(["--config", str(config_file), "templates", "--format", "json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["failures-by-tenant"]["title"] == "Failures by tenant" and "queue-health" in listed
    assert main(["--config", str(config_file), "query", "--template", "failures-by-tenant", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    table = cold_table(cold)
    expected = Counter(t for t, o in zip(table.column("tenant_id").to_pylist(), table.column("outcome").to_pylist(),
                                         strict=True) if o == "failed")
    assert {r["tenant_id"]: r["failed"] for r in rows} == dict(expected)


@pytest.mark.parametrize(("own", "message"), [
    ({"queue-health": {"sql": "SELECT 1"}}, "'queue-health' is the name of a built-in template"),
    ({"Bad Name": {"sql": "SELECT 1"}}, "template name 'Bad Name'"),
    ({"x": {"sql": "SELECT {colour}"}}, "may use {where} and {min_jobs}, not {colour}"),
    ({"x": {"sql": "SELECT 1", "defaults": {"colour": "red"}}}, "defaults may set since, until"),
    ({"x": {"title": "no sql"}}, "expected a mapping with a non-empty 'sql'"),
])
def test_a_bad_own_template_is_one_sentence(config, tmp_path, capsys, own, message):
    config_file = write_config(tmp_path / "archives.yaml", config, query={"templates": own})
    assert main(["--config", str(config_file), "templates"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_one_catalog_call_gives_tables_columns_functions_and_templates(archive):  # noqa: F811
    warm, _ = archive
    own = (TemplateSpec("mine", "SELECT 1", "Mine", "", ()),)
    found = templates.catalog(warm.backend, own)
    assert found.templates[:2] == ("queue-health", "error-investigation") and found.templates[-1] == "mine"
    jobs = found.table("jobs")
    assert jobs is not None and ("enqueue_time", "DateTime64(3, 'UTC')") in [(c.name, c.type) for c in jobs.columns]
    assert {"jobs_archive", "jobs_cold", "jobs_cutoff"} <= {t.name for t in found.tables}
    assert "quantile" in found.aggregate_functions and "SELECT" in found.keywords


@pytest.fixture
def s3_archive(config, redis_client, s3_endpoint, s3_bucket):
    """6 days with a 3-day warm window, the cold tier on S3 (moto's server): one batch, so there are no
    more objects than hours (moto serves each in milliseconds: 60 days of them take seconds a query)."""
    config = config.replace("retention", clickhouse_ttl=3 * 86400.0)
    config = config.replace("cold", url=f"s3://{s3_bucket}/archive", endpoint_url=s3_endpoint)
    config = config.replace("pipeline", batch_size=5000)
    seed_stream(redis_client, "completed_jobs", 1500, days=6, failure_rate=0.2, seed=33)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        yield warm, cold


def test_templates_on_an_s3_cold_tier_match_the_files_on_every_range(s3_archive):
    warm, cold = s3_archive
    for (since, until), tiers in {("2d", "0s"): ("warm",), ("5d", "4d"): ("cold",), ("7d", "0s"): ("warm", "cold")
                                  }.items():
        result = run(LocalQueries(warm.backend), templates.render("queue-health", {"since": since, "until": until}))
        counts = Counter({(r["queue"], r["outcome"]): r["jobs"] for r in result.table.to_pylist()})
        assert counts == oracle(cold, since, until) and sum(counts.values()) > 50, (since, until)
        assert result.tiers == tiers
    for name in templates.TEMPLATES:
        params = {"since": "7d", **({"min_jobs": "1"} if name == "worker-performance" else {})}
        assert run(LocalQueries(warm.backend), templates.render(name, params)).rows > 0, name
