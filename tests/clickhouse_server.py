"""A ClickHouse server for the tests: ARCHIVES_TEST_CLICKHOUSE_URL when set, else the local
clickhouse-server (Debian's 18.16 in CI) started on a free loopback port with its data in a temporary
directory, so parallel runs and a shared CI instance never collide."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.engine.server import NativeBackend
from exporter.errors import BackendUnavailable

CONFIG = """<yandex>
  <logger><level>warning</level><log>{dir}/log</log><errorlog>{dir}/err</errorlog></logger>
  <tcp_port>{port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>Europe/Berlin</timezone>
  <mark_cache_size>536870912</mark_cache_size>
</yandex>
"""
USERS = """<yandex>
  <profiles><default></default><reader><readonly>2</readonly></reader></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <reader>
      <password>reader-secret</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>reader</profile>
      <quota>default</quota>
    </reader>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if pytest itself is killed, so no orphan holds the ports."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalServer:
    """A clickhouse-server subprocess this test module owns (and may kill and restart)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.dir, self.port = binary, directory, _free_port()
        (directory / "config.xml").write_text(CONFIG.format(dir=directory, port=self.port))
        (directory / "users.xml").write_text(USERS)
        self.url = f"clickhouse://default@127.0.0.1:{self.port}/default"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [self.binary, f"--config-file={self.dir / 'config.xml'}"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr", "ab"),  # noqa: SIM115
            preexec_fn=_die_with_parent,
        )
        probe = NativeBackend.from_url(self.url + "?connect_timeout=1")
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    probe.query_arrow("SELECT 1")
                    return
                except BackendUnavailable:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        log = (self.dir / "err").read_text() if (self.dir / "err").exists() else ""
                        pytest.fail(f"clickhouse-server did not answer on {self.port}: {log[-2000:]}")
                    time.sleep(0.2)
        finally:
            probe.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer | str]:
    """The server under test: a URL string (external) or a LocalServer we started."""
    external = os.environ.get("ARCHIVES_TEST_CLICKHOUSE_URL")
    if external:
        yield external
        return
    binary = next((b for b in ("/usr/sbin/clickhouse-server", shutil.which("clickhouse-server")) if b
                   and os.access(b, os.X_OK)), None)
    if binary is None:
        pytest.skip("no ClickHouse server: install clickhouse-server or set ARCHIVES_TEST_CLICKHOUSE_URL")
    local = LocalServer(binary, tmp_path_factory.mktemp("clickhouse"))
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def url(server: LocalServer | str) -> str:
    return server if isinstance(server, str) else server.url


