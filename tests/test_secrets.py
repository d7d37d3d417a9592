"""Credentials never reach an error message, a log line or the CLI's output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from archives_tui.cli import main
from exporter.config import load_config, parse_config
from exporter.engine.registry import open_backend
from exporter.errors import ConfigError
from exporter.redact import RedactingFilter, redact

SECRET = "S3cretPw"


@pytest.mark.parametrize("text", [
    f"cannot reach Redis at redis://:{SECRET}@redis.internal:6379/0: Connection refused",
    f"clickhouse://archiver:{SECRET}@ch:9000/archive",
    f"unix://:{SECRET}@/run/redis.sock?db=0",
    f"redis://user:{SECRET}@host?password={SECRET}",
    f"redis://:p/{SECRET}@host:6379",  # an unencoded '/' in the password
    f"redis://:p@{SECRET}@host:6379",  # an unencoded '@' in the password
    f"s3://bucket/prefix?aws_secret_access_key={SECRET}&region=eu",
    f"https://s3.example/obj?X-Amz-Credential={SECRET}&X-Amz-Signature={SECRET}",
    f"http://h/p?access_key_id={SECRET}",
    f"http://h/p?api_key={SECRET}",
    f"login failed: host=db password={SECRET} user=x",
    f"{{'host': 'h', 'password': '{SECRET}'}}",
])
def test_redact_masks_every_form_of_secret(text):
    masked = redact(text)
    assert SECRET not in masked
    assert "***" in masked


@pytest.mark.parametrize("text", [
    "redis://redis.internal:6379/0",
    "clickhouse://archiver@ch:9000/archive",
    "x.yaml: unknown key 'pipeline.batchsize' (known: stream_key, consumer_group)",
    "x.yaml: 'clickhouse.password': expected a non-empty string",
])
def test_redact_leaves_text_without_secrets_alone(text):
    assert redact(text) == text


def test_logging_filter_masks_messages_arguments_and_tracebacks():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("archives.test_secrets")
    logger.addHandler(handler)
    try:
        logger.error("connecting to %s", f"redis://:{SECRET}@h:6379")
        try:
            raise OSError(f"refused by clickhouse://u:{SECRET}@h:9000")
        except OSError:
            logger.exception("insert failed")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 2
    assert all(SECRET not in text for text in records)
    assert "OSError" in records[1]


@pytest.mark.parametrize(("data", "key"), [
    ({"clickhouse": {"url": f"mysql://u:{SECRET}@h/db"}}, "clickhouse.url"),
    ({"clickhouse": {"url": f"chdb://u:{SECRET}@relhost/warm"}}, "clickhouse.url"),
    ({"redis": {"url": f"http://:{SECRET}@h:6379"}}, "redis.url"),
    ({"cold": {"url": f"file://u:{SECRET}@relhost/x"}}, "cold.url"),
    ({"cold": {"endpoint_url": f"ftp://k:{SECRET}@h"}}, "cold.endpoint_url"),
    ({"clickhouse": {"password": [SECRET]}}, "clickhouse.password"),
    ({"cold": {"secret_access_key": {SECRET: 1}}}, "cold.secret_access_key"),
    ({"cold": {"access_key_id": [SECRET]}}, "cold.access_key_id"),
])
def test_config_errors_name_the_key_but_never_echo_a_secret(data, key):
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "x.yaml", env={})
    assert key in str(caught.value)
    assert SECRET not in str(caught.value)


def test_config_error_from_the_environment_does_not_echo_the_secret():
    with pytest.raises(ConfigError) as caught:
        parse_config({}, "x.yaml", env={"ARCHIVES_CLICKHOUSE_URL": f"mysql://u:{SECRET}@h/db"})
    assert "ARCHIVES_CLICKHOUSE_URL" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_duplicate_secret_key_is_named_without_its_value(tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text(f"clickhouse:\n  password: {SECRET}\n  password: other{SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env={})
    assert "password" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("url", [
    f"clickhouse://u:{SECRET}@127.0.0.1:notaport/db",
    f"clickhouse://u:{SECRET}@127.0.0.1:9000/db?nosuchoption=1",
    f"chdb://u:{SECRET}@relhost/warm",
    f"mysql://u:{SECRET}@h/db",
])
def test_backend_errors_do_not_echo_the_password(url):
    with pytest.raises(ConfigError) as caught:
        open_backend(url)
    assert "clickhouse.url" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_cli_config_error_does_not_echo_the_password(tmp_path: Path, capsys):
    path = tmp_path / "archives.yaml"
    path.write_text(f"clickhouse:\n  url: mysql://archiver:{SECRET}@ch.internal:9000/archive\n")
    assert main(["--config", str(path), "status"]) == 2
    out, err = capsys.readouterr()
    assert "clickhouse.url" in err
    assert SECRET not in out + err


def test_cli_status_with_a_bad_server_url_does_not_echo_the_password(tmp_path: Path, redis_url: str, capsys):
    path = tmp_path / "archives.yaml"
    path.write_text(f"redis:\n  url: {redis_url}\ncold:\n  url: file://{tmp_path / 'cold'}\n"
                    f"clickhouse:\n  url: clickhouse://archiver:{SECRET}@127.0.0.1:notaport/archive\n")
    main(["--config", str(path), "status"])  # the warm tier is reported down; the exit code says so too
    out, err = capsys.readouterr()
    assert "invalid port" in out + err
    assert SECRET not in out + err


def test_the_server_backend_names_a_bad_url_without_its_password():
    from exporter.engine.server import NativeBackend

    with pytest.raises(ConfigError) as refused:
        NativeBackend.from_url(f"clickhouse://archiver:{SECRET}@ch:9000/archive?bogus=1")
    assert SECRET not in str(refused.value) and "unknown option 'bogus'" in str(refused.value)
