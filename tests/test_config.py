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
