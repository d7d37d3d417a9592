"""Every key is checked for range when the config is loaded: a value that passes there works later.
Values that once passed and then broke (an infinite window, a row cap past any integer the engine holds,
malformed YAML in an environment variable) are each refused with one sentence naming the key."""

from __future__ import annotations

import pytest
import yaml

from exporter.config import parse_config
from exporter.errors import ConfigError

REFUSED = [
    ("retention", "clickhouse_ttl", float("inf"), "retention.clickhouse_ttl"),
    ("retention", "clickhouse_ttl", float("nan"), "retention.clickhouse_ttl"),
    ("retention", "redis_ttl", "1000000000y", "retention.redis_ttl"),
    ("pipeline", "flush_interval", float("-inf"), "pipeline.flush_interval"),
    ("query", "max_execution_time", float("inf"), "query.max_execution_time"),
    ("query", "max_result_rows", 10**23, "query.max_result_rows"),
    ("query", "max_rows_to_read", 2**64, "query.max_rows_to_read"),
    ("query", "max_result_rows", "1e23", "query.max_result_rows"),
    ("query", "max_statement_bytes", 10**30, "query.max_statement_bytes"),
]


def test_sizes_and_prices_past_any_number_are_refused():
    from exporter.units import parse_size

    for size in ("9" * 400 + "KiB", 2**64, "99999999999TiB"):
        with pytest.raises(ValueError, match="size"):
            parse_size(size)
    for price in (float("inf"), float("nan"), -1):
        with pytest.raises(ConfigError, match=r"costs\.warm"):
            parse_config({"costs": {"warm": price}}, "x.yaml", env={})


@pytest.mark.parametrize(("section", "key", "value", "named"), REFUSED)
def test_out_of_range_values_are_one_sentence_naming_the_key(section, key, value, named):
    with pytest.raises(ConfigError) as refused:
        parse_config({section: {key: value}}, "x.yaml", env={})
    assert named in str(refused.value) and "\n" not in str(refused.value)


def test_yaml_spellings_of_infinity_are_refused_too():
    data = yaml.safe_load("retention:\n  clickhouse_ttl: .inf\n")
    with pytest.raises(ConfigError, match=r"retention\.clickhouse_ttl"):
        parse_config(data, "x.yaml", env={})


@pytest.mark.parametrize("text", ["{sql: [", "a: b: c", "- just\n- a list", "'unclosed"])
def test_malformed_templates_in_the_environment_name_the_variable(text):
    with pytest.raises(ConfigError) as refused:
        parse_config({}, "x.yaml", env={"ARCHIVES_QUERY_TEMPLATES": text})
    assert "ARCHIVES_QUERY_TEMPLATES" in str(refused.value) and "\n" not in str(refused.value)


def test_values_at_the_edges_still_load():
    config = parse_config({"retention": {"clickhouse_ttl": "100y"}, "query": {"max_result_rows": 2**63 - 1}},
                          "x.yaml", env={})
    assert config.query.max_result_rows == 2**63 - 1 and config.retention.clickhouse_ttl == 100 * 365 * 86400
