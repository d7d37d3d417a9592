from pathlib import Path

import pytest

from exporter.config import Config, load_config, parse_config, render_example, resolve_config_path
from exporter.errors import ConfigError
from exporter.units import format_duration, parse_duration, parse_size


def test_defaults_are_the_seeds():
    config = Config()
    assert config.retention.redis_ttl == 7 * 86400
    assert config.retention.clickhouse_ttl == 365 * 86400
    assert config.retention.s3_archive_ttl == 7 * 365 * 86400
    assert config.retention.payload_sampling_rate == 0.01
    assert config.retention.payload_max_size == 1024 * 1024
    assert config.retention.data_retention_max_days == 2555
    assert config.retention.deletion_request_ttl == 30 * 86400
    assert config.retention.compression_codec == "ZSTD"
    assert config.pipeline.batch_size == 1000
    assert config.pipeline.flush_interval == 30
    assert config.pipeline.stream_key == "completed_jobs"
    assert config.pipeline.consumer_group == "archive-exporter"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("500ms", 0.5), ("5m", 300), ("12h", 43200),
                                               ("7d", 604800), ("7y", 7 * 365 * 86400), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("1MiB", 1048576), ("512KiB", 524288), ("10MB", 10_000_000),
                                            ("2048", 2048), (77, 77)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_format_duration_round_trips():
    for text in ("30s", "7d", "7y", "12h"):
        assert format_duration(parse_duration(text)) == text


def test_yaml_values_are_parsed(tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text("pipeline:\n  batch_size: 5000\n  flush_interval: 10s\nretention:\n  payload_max_size: 64KiB\n")
    config = load_config(str(path), env={})
    assert config.pipeline.batch_size == 5000
    assert config.pipeline.flush_interval == 10
    assert config.retention.payload_max_size == 65536
    assert config.source == str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("pipeline:\n  batchsize: 5\n", r"a\.yaml: unknown key 'pipeline\.batchsize'"),
    ("pipeline:\n  batch_size: [1,\n", r"a\.yaml: not valid YAML at line"),
    ("pipeline:\n  batch_size: 10\n  flush_interval: 5s\n  batch_size: 20\n",
     r"a\.yaml: duplicate key 'batch_size' at line 4 \(first at line 2\)"),
    ("pipeline:\n  batch_size: 10\nredis: {}\npipeline:\n  flush_interval: 5s\n",
     r"a\.yaml: duplicate key 'pipeline' at line 4 \(first at line 1\)"),
])
def test_file_errors_name_the_file_and_the_fault(tmp_path: Path, text: str, message: str):
    path = tmp_path / "a.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env={})


def test_unknown_section(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown section 'pipelines'"):
        parse_config({"pipelines": {}}, "x.yaml", env={})


@pytest.mark.parametrize(("data", "message"), [
    ({"pipeline": {"batch_size": "lots"}}, r"'pipeline\.batch_size': expected an integer"),
    ({"pipeline": {"flush_interval": "soon"}}, r"'pipeline\.flush_interval': expected a duration"),
    ({"retention": {"payload_sampling_rate": 2}}, r"payload_sampling_rate': expected a number between 0 and 1"),
    ({"clickhouse": {"url": "mysql://x"}}, r"'clickhouse\.url': expected a URL starting with chdb://"),
    ({"pipeline": {"batch_size": 10, "min_batch_size": 100}}, r"must lie between"),
])
def test_bad_values_are_clear(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "x.yaml", env={})


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"), env={})


def test_environment_overrides_secrets_and_keys():
    config = parse_config({"clickhouse": {"password": "from-file"}}, "x.yaml",
                          env={"ARCHIVES_CLICKHOUSE_PASSWORD": "s3cret", "ARCHIVES_PIPELINE_WORKER_COUNT": "4"})
    assert config.clickhouse.password == "s3cret"
    assert config.pipeline.worker_count == 4


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="ARCHIVES_PIPELINE_WORKER_COUNT"):
        parse_config({}, "x.yaml", env={"ARCHIVES_PIPELINE_WORKER_COUNT": "many"})


def test_resolution_order(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path(None, env={}) is None
    (tmp_path / "archives.yaml").write_text("{}")
    assert resolve_config_path(None, env={}) == Path("archives.yaml")
    assert resolve_config_path(None, env={"ARCHIVES_CONFIG": "/etc/a.yaml"}) == Path("/etc/a.yaml")
    assert resolve_config_path("cli.yaml", env={"ARCHIVES_CONFIG": "/etc/a.yaml"}) == Path("cli.yaml")


def test_example_file_is_current_and_loads(tmp_path: Path):
    example = Path(__file__).parent.parent / "config.example.yaml"
    assert example.read_text() == render_example()
    assert load_config(str(example), env={}) == Config(source=str(example))


@pytest.mark.parametrize(("data", "message"), [
    ({"clickhouse": {"url": "chdb://relhost/warm"}}, r"'clickhouse\.url'.*host part 'relhost'.*chdb:///abs/dir"),
    ({"clickhouse": {"url": "chdb://localhost/warm"}}, r"'clickhouse\.url'.*host part 'localhost'.*chdb:///abs/dir"),
    ({"clickhouse": {"url": "chdb://"}}, r"'clickhouse\.url'.*needs an absolute directory.*chdb:///abs/dir"),
    ({"cold": {"url": "file://relhost/x"}}, r"'cold\.url'.*host part 'relhost'.*file:///abs/dir"),
    ({"cold": {"url": "file://"}}, r"'cold\.url'.*needs an absolute directory.*file:///abs/dir"),
])
def test_local_urls_take_no_host_part(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "x.yaml", env={})


def test_local_urls_with_an_absolute_directory_are_kept():
    config = parse_config({"clickhouse": {"url": "chdb:///var/lib/warm"}, "cold": {"url": "file:///srv/cold"}},
                          "x.yaml", env={})
    assert config.clickhouse.url == "chdb:///var/lib/warm"
    assert config.cold.url == "file:///srv/cold"


def test_file_url_on_localhost_means_the_local_absolute_path():
    config = parse_config({"cold": {"url": "file://localhost/srv/cold"}}, "x.yaml", env={})
    assert config.cold.url == "file:///srv/cold"


def test_a_host_part_fails_every_command_with_exit_2(tmp_path: Path, capsys):
    from archives_tui.cli import main

    path = tmp_path / "a.yaml"
    path.write_text("clickhouse:\n  url: chdb://relhost/warm\n")
    for command in (["status"], ["query", "SELECT 1"], ["export", "--once"], ["seed", "--jobs", "1"]):
        assert main(["--config", str(path), *command]) == 2
        assert "host part" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["target_latency", "flush_interval", "retry_backoff", "max_retry_backoff",
                                 "claim_idle"])
def test_zero_pipeline_durations_are_refused(key):
    with pytest.raises(ConfigError, match=rf"'pipeline\.{key}': .*must be longer than zero"):
        parse_config({"pipeline": {key: "0s"}}, "x.yaml", env={})


@pytest.mark.parametrize("key", ["redis_ttl", "clickhouse_ttl", "s3_archive_ttl", "deletion_request_ttl"])
def test_zero_retention_durations_are_refused(key):
    with pytest.raises(ConfigError, match=rf"'retention\.{key}': .*must be longer than zero"):
        parse_config({"retention": {key: 0}}, "x.yaml", env={})


@pytest.mark.parametrize("key", ["max_batch_bytes", "max_record_size"])
def test_zero_sizes_that_would_stop_the_export_are_refused(key):
    with pytest.raises(ConfigError, match=rf"'pipeline\.{key}': .*must be larger than zero"):
        parse_config({"pipeline": {key: "0B"}}, "x.yaml", env={})


def test_zero_payload_max_size_is_allowed_it_means_no_samples():
    assert parse_config({"retention": {"payload_max_size": 0}}, "x.yaml", env={}).retention.payload_max_size == 0


def test_merge_keys_may_still_be_overridden(tmp_path: Path):
    path = tmp_path / "a.yaml"
    text = "pipeline:\n  <<: {batch_size: 2000, flush_interval: 5s}\n  batch_size: 3000\n"
    path.write_text(text)
    assert load_config(str(path), env={}).pipeline.batch_size == 3000
