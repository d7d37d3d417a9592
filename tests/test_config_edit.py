"""Editing the config file (exporter/config_edit.py) and putting the retention section into effect in a
running dashboard's background (Background.apply_config), on the real parts."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from exporter.config import Config, load_config
from exporter.config_edit import ConfigEditError, check, edited_text, save, settings
from exporter.errors import ConfigError
from exporter.maintenance.retention import RetentionRun
from exporter.maintenance.schedule import RetentionSchedule

SECRET, S3_SECRET = "hunter2-do-not-echo", "s3-secret-do-not-echo"
FILE = f"""# Archives, production
redis:
  url: redis://:{SECRET}@localhost:6379/0  # the job queue's Redis

clickhouse:
  password: {SECRET}
cold:
  url: s3://bucket/archive
  secret_access_key: {S3_SECRET}

pipeline:
  batch_size: 500  # records per batch
  min_batch_size: 100
  flush_interval: 10s

# how long each tier keeps what
retention:
  redis_ttl: 3d  # hot tier
  protect_groups:
    - billing
    - audit
  clickhouse_ttl: 1y  # warm tier
  payload_sampling_rate: 0.01  # share of samples kept

ui:
  theme: light
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "archives.yaml"
    path.write_text(FILE)
    path.chmod(0o644)
    return path


def test_a_valid_edit_changes_only_those_keys_keeps_the_comments_and_reloads(config_file: Path):
    before = load_config(str(config_file), env={})
    saved = save(before, {"retention.clickhouse_ttl": "30d", "retention.payload_sampling_rate": "0.05",
                          "retention.redis_ttl": "3d", "retention.dlq_max_length": "5000"}, env={})

    assert saved.changed == ("retention.clickhouse_ttl", "retention.payload_sampling_rate",
                             "retention.dlq_max_length")  # redis_ttl already was 3d: left as written
    text = config_file.read_text()
    old_lines, new_lines = FILE.splitlines(), text.splitlines()
    assert "  clickhouse_ttl: 30d  # warm tier" in new_lines
    assert "  payload_sampling_rate: 0.05  # share of samples kept" in new_lines
    assert [line for line in new_lines if "clickhouse_ttl" not in line and "payload_sampling_rate" not in line
            and "dlq_max_length" not in line] == [line for line in old_lines if "clickhouse_ttl" not in line
                                                  and "payload_sampling_rate" not in line]
    assert new_lines.index("  dlq_max_length: 5000") == new_lines.index("  payload_sampling_rate: 0.05  # share "
                                                                          "of samples kept") + 1  # in its section
    again = load_config(str(config_file), env={})
    assert again == saved.config and again.source == str(config_file)
    assert again.retention.clickhouse_ttl == 30 * 86400 and again.retention.payload_sampling_rate == 0.05
    assert again.retention.dlq_max_length == 5000
    assert again.retention.protect_groups == ("billing", "audit") and again.pipeline == before.pipeline
    assert again.redis == before.redis and again.cold == before.cold and again.ui.theme == "light"
    assert mode(config_file) == 0o600
    assert str(config_file) in saved.messages[0] and "retention.payload_sampling_rate = 0.05" in saved.messages[0]


def test_an_invalid_value_writes_nothing_and_names_the_key(config_file: Path):
    config = load_config(str(config_file), env={})
    with pytest.raises(ConfigEditError) as raised:
        save(config, {"retention.clickhouse_ttl": "30d", "retention.payload_sampling_rate": "1.5",
                      "retention.interval": "soon"}, env={})
    assert set(raised.value.problems) == {"retention.payload_sampling_rate", "retention.interval"}
    assert raised.value.problems["retention.payload_sampling_rate"] == (
        "retention.payload_sampling_rate: expected a number between 0 and 1, got 1.5")
    assert raised.value.problems["retention.interval"].startswith("retention.interval: expected a duration like")
    assert config_file.read_text() == FILE and mode(config_file) == 0o644  # not even the valid key
    assert list(config_file.parent.iterdir()) == [config_file]  # no temporary file left behind


def test_a_cross_key_rule_is_checked_before_writing(config_file: Path):
    config = load_config(str(config_file), env={})
    with pytest.raises(ConfigEditError, match=r"'pipeline.batch_size' \(50\) must lie between"):
        save(config, {"pipeline.batch_size": "50"}, env={})
    assert config_file.read_text() == FILE


def test_the_panel_accepts_what_the_file_would():
    assert check("retention.interval", "3600") == (3600.0, None)  # a bare number of seconds, as in YAML
    assert check("retention.protect_groups", "a, b") == (("a", "b"), None)
    assert check("retention.protect_groups", "[a, b]") == (("a", "b"), None)
    assert check("retention.job_key_pattern", "") == (None, None)
    assert check("retention.pii_redaction_enabled", "no") == (False, None)
    assert check("retention.interval", "0")[1] == "retention.interval: must be longer than zero, got 0"
    assert check("retention.warm_ttl", "30d")[1] == "retention.warm_ttl: not a setting that can be edited here"
    rows = {row.key: row for row in settings(Config(), env={"ARCHIVES_RETENTION_INTERVAL": "1m"})}
    assert rows["retention.redis_ttl"].text == "7d" and rows["retention.payload_max_size"].text == "1MiB"
    assert rows["retention.interval"].env == "ARCHIVES_RETENTION_INTERVAL" and rows["retention.dlq_ttl"].env is None
    assert len(rows) == len(Config().retention.__dataclass_fields__)


def test_embedded_defaults_write_a_new_archives_yaml_in_the_current_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = save(Config(), {"retention.payload_sampling_rate": "0.05", "retention.redis_ttl": "7d",
                            "retention.job_key_pattern": "job:*"}, env={})
    path = tmp_path / "archives.yaml"
    assert saved.path == path and str(path) in saved.messages[0] and saved.messages[0].startswith("Created ")
    assert mode(path) == 0o600
    import yaml

    assert yaml.safe_load(path.read_text()) == {"retention": {"payload_sampling_rate": 0.05,
                                                              "job_key_pattern": "job:*"}}  # only the changes
    loaded = load_config(None, env={})  # ./archives.yaml is what the next start finds
    assert loaded.retention.payload_sampling_rate == 0.05 and loaded.retention.job_key_pattern == "job:*"
    assert saved.config.source == str(path) and loaded.source == "archives.yaml"
    assert saved.config.retention == loaded.retention


def test_no_secret_reaches_a_message(config_file: Path):
    config = load_config(str(config_file), env={})
    said = []
    with pytest.raises(ConfigEditError) as raised:
        save(config, {"retention.payload_sampling_rate": "2", "redis.url": "redis://:other-secret@h:1/0x"}, env={})
    said.append(str(raised.value))
    with pytest.raises(ConfigEditError) as raised:
        save(config, {"redis.url": "http://:other-secret@h"}, env={})
    said.append(str(raised.value))
    assert "redis.url" in said[-1]
    saved = save(config, {"clickhouse.password": "other-secret", "retention.redis_ttl": "2d"}, env={})
    said += saved.messages
    assert "clickhouse.password = ***" in saved.messages[0]
    assert load_config(str(config_file), env={}).clickhouse.password == "other-secret"
    assert SECRET in config_file.read_text() and S3_SECRET in config_file.read_text()  # kept, owner-only
    for message in said:
        assert SECRET not in message and S3_SECRET not in message and "other-secret" not in message, message


def test_an_environment_override_is_said(config_file: Path):
    config = load_config(str(config_file), env={"ARCHIVES_RETENTION_PAYLOAD_SAMPLING_RATE": "0.2"})
    saved = save(config, {"retention.payload_sampling_rate": "0.05"},
                 env={"ARCHIVES_RETENTION_PAYLOAD_SAMPLING_RATE": "0.2"})
    assert load_config(str(config_file), env={}).retention.payload_sampling_rate == 0.05
    assert saved.config.retention.payload_sampling_rate == 0.2  # what is in effect
    assert any("ARCHIVES_RETENTION_PAYLOAD_SAMPLING_RATE" in m and "wins over the file" in m for m in saved.messages)


def test_a_file_that_would_not_load_is_put_back(config_file: Path, monkeypatch):
    import exporter.config_edit as config_edit

    config = load_config(str(config_file), env={})

    def broken(*args, **kwargs):
        raise ConfigError("simulated")

    monkeypatch.setattr(config_edit, "load_config", broken)
    with pytest.raises(ConfigError, match=r"would not load .*put back as it was"):
        save(config, {"retention.redis_ttl": "1d"}, env={})
    assert config_file.read_text() == FILE


@pytest.mark.parametrize(("text", "kept"), [
    ("retention: {redis_ttl: 3d}\n", False),  # flow style: dumped again, without comments
    ("# only a comment\n", True),
    ("retention:\n", True),
    ("retention:\n  job_key_pattern:\n  interval: 1h  # often\n", True),
    ("ui:\n  theme: dark", True),  # no final newline
])
def test_unusual_layouts_still_give_the_wanted_data(text: str, kept: bool):
    import yaml

    new, layout_kept = edited_text(text, {"retention.job_key_pattern": '"job:*"', "retention.redis_ttl": "2d"})
    data = yaml.safe_load(new)
    assert data["retention"]["job_key_pattern"] == "job:*" and data["retention"]["redis_ttl"] == "2d"
    assert layout_kept == kept
    if kept:
        assert all(line in new for line in text.splitlines() if "job_key_pattern" not in line)


# -- the live side -------------------------------------------------------------------------------


class CountingManager:
    def __init__(self) -> None:
        self.runs: list[float] = []

    def apply(self) -> RetentionRun:
        self.runs.append(time.monotonic())
        return RetentionRun(time.time(), False)


def test_a_shorter_interval_takes_effect_during_the_wait():
    manager = CountingManager()
    schedule = RetentionSchedule(manager, interval=3600, first_after=0.05)  # type: ignore[arg-type]
    schedule.start()
    try:
        deadline = time.monotonic() + 5
        while not manager.runs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(manager.runs) == 1
        time.sleep(0.3)
        assert len(manager.runs) == 1  # waiting out the hour
        schedule.set_interval(0.1)
        while len(manager.runs) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(manager.runs) >= 3
    finally:
        started = time.monotonic()
        schedule.stop()
        assert time.monotonic() - started < 2 and not schedule._thread.is_alive()


def test_apply_config_changes_the_sampling_of_the_next_batches_and_the_warm_window(config, redis_client):
    from archives_tui.background import Background
    from exporter.seed import seed_stream

    config = config.replace("retention", payload_sampling_rate=0.0)
    background = Background(config)
    warm = background.archive.warm
    try:
        background.start()
        seed_stream(redis_client, config.pipeline.stream_key, 300, days=0.1, failure_rate=0.0, seed=1)
        until(lambda: background.pipeline.metrics.archived >= 300)

        new = config.replace("retention", payload_sampling_rate=1.0, clickhouse_ttl=30 * 86400.0)
        said = background.apply_config(new.replace("pipeline", read_count=77))
        assert any("Payload sampling now keeps 1" in s and "next batch" in s for s in said), said
        assert any("warm window is now 30 days" in s for s in said), said
        assert said[-1] == "Needs a restart of the dashboard to take effect: pipeline.read_count."
        assert background.config.pipeline.read_count == config.pipeline.read_count  # not applied
        assert background.config.retention.payload_sampling_rate == 1.0
        assert background.manager.config.retention.clickhouse_ttl == 30 * 86400.0

        seed_stream(redis_client, config.pipeline.stream_key, 300, days=0.1, failure_rate=0.0, seed=2)
        until(lambda: background.pipeline.metrics.archived >= 600)
        kept = {row["batch"]: (row["kept"], row["n"]) for row in warm.backend.query_arrow(
            "SELECT substring(job_id, 5, 1) AS batch, countIf(payload_sample IS NOT NULL) AS kept, count() AS n "
            "FROM jobs_archive GROUP BY batch").to_pylist()}
        assert kept == {"1": (0, 300), "2": (300, 300)}

        def table_ttl() -> str:
            return warm.backend.query_arrow("SELECT engine_full FROM system.tables WHERE database = "
                                            "currentDatabase() AND name = 'jobs_archive'").column(0)[0].as_py()

        assert warm.ttl_days == 30 and "toIntervalDay(395)" in table_ttl()  # the DDL waits for a run
        background.manager.apply()
        assert "toIntervalDay(60)" in table_ttl() and not background.manager.warm_window_moved
        assert background.apply_config(background.config) == ["Nothing to apply: the running settings already match."]
    finally:
        background.stop()


def until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)
