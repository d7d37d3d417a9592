"""The dashboard as a person meets it: `archives tui` driven in tmux while its exporter drains a backlog,
against Harlequin with its chDB adapter on the same machine and data.

    python bench/tui.py [--backlog 1000000] [--keys 150] [--queries 3] [--ref REF]
                        [--no-harlequin] [--no-lite] [--keep]

One stream of ``--backlog`` synthetic completions is seeded once into a private redis-server; every run
drains the same entries through a consumer group of its own into stores of its own, so the figures are
on identical data: the dashboard, headless `archives export --once`, and the dashboard again on
`chdb-core-lite` (a separate venv, ``--no-lite`` skips it). Harlequin then opens the dashboard's warm
store (it is free once the dashboard has quit). Both apps run in a 200x50 tmux pane; the screen is read
with `capture-pane` through one tmux control-mode client (a pipe, no process per look), every
``--poll-ms``. Prints a table and whether the issue's targets are met; it asserts nothing.

``--ref`` runs the app (and this script's imports) from a `git archive` of that commit instead of the
working tree, for when the tree is mid-edit. Harlequin and the lite engine are installed by the script
into venvs under ``~/.cache/archives-bench`` when missing.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

if __package__ in (None, ""):  # run as a script: the repository's bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cleanup import Cleanup

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "archives-bench"
STREAM = "bench:tui"
WIDTH, HEIGHT = 200, 50
ARCHIVE_QUERY = "SELECT * FROM jobs_archive"  # the main figure: the archive's own 22-column table
NUMBERS_QUERY = "SELECT number, toString(number) AS s FROM numbers({rows})"  # run k asks 1,000,000 - k rows
RESET_QUERY = "SELECT 'bench-reset' AS bench"  # one row, run before each timed query so no earlier result
#                                                can pass for it
# Stable markers: border titles, the run bar, the text typed (see the module docstring).
PANELS = (re.compile(r"─ Archive Status ─"), re.compile(r"─ Query ─"))
FIGURES = re.compile(r"records today\s+(-|\d[\d,.]*%?|unavailable)|archived [\d,]+ in")
# The dashboard's run bar (archives_tui/panels.py QueryPanel.show): "first 10,000 rows · more not fetched
# (Ctrl+E exports all) in 0.12s · ..." when the engine was stopped after the first page, "N rows in 0.12s"
# when the result ended sooner. The reset query's "1 row in" does not match it.
RUNBAR = r"(?:first ([\d,]+) rows · more not fetched \(Ctrl\+E exports all\)|(\d[\d,]+|[2-9]) rows) in ([\d.]+)s"
RESET_BAR = r"\b1 row in [\d.]+s"
HQ_PANELS = (re.compile(r"Query Editor"), re.compile(r"Data Catalog"))
HQ_CATALOG = re.compile(r"jobs_archive|default")
HQ_RESULT = r"Query Results \((?:Showing [\d,]+ of )?\d{1,3}(?:,\d{3})+ Records?\)"  # 1,000 rows or more
HQ_RESET = r"Query Results \(1 Records?\)"


class Failed(Exception):
    """A step of a run did not happen in time: the run is reported as failed, the rest goes on."""


# -- parts -------------------------------------------------------------------------------------------


class Tmux:
    """One app in a tmux server of its own, read and typed into through a control-mode client.

    A control-mode command is a line on a pipe, so a look at the screen costs tens of microseconds
    instead of a tmux process (about 2.5 ms idle, more under load, and CPU taken from the app)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.socket = f"archives-bench-{os.getpid()}-{name}"
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        line = "exec " + " ".join(_quote(part) for part in command)
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "bench",
                        "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(cwd), *env_args, line], check=True)
        self.pid = int(self._tmux("display", "-p", "-t", "bench", "#{pane_pid}"))
        self.socket_path = Path(self._tmux("display", "-p", "#{socket_path}"))
        self.client = subprocess.Popen(["tmux", "-L", self.socket, "-C", "attach", "-t", "bench",
                                        "-f", "no-output,ignore-size"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._lock = threading.Lock()
        self.screen = ""
        self.looks, self.looking = 0, 0.0  # captures made in wait(), and the time they took with the pauses
        self._send("display -p archives-bench-sync")
        while "archives-bench-sync" not in self._block():  # the attach's own reply comes first
            pass

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True).stdout.strip()

    def _send(self, line: str) -> None:
        assert self.client.stdin is not None
        self.client.stdin.write(line.encode() + b"\n")
        self.client.stdin.flush()

    def _block(self) -> str:
        """The next reply: the lines between %begin and %end (notifications between replies are skipped)."""
        assert self.client.stdout is not None
        out: list[bytes] | None = None
        while True:
            got = self.client.stdout.readline()
            if not got:
                raise Failed("the app's tmux session ended")
            if out is None:
                if got.startswith(b"%begin"):
                    out = []
            elif got.startswith((b"%end", b"%error")):
                return b"".join(out).decode(errors="replace")
            else:
                out.append(got)

    def command(self, line: str) -> str:
        """One tmux command, and its output."""
        with self._lock:
            self._send(line)
            return self._block()

    def capture(self) -> str:
        self.screen = self.command("capture-pane -p -t bench")
        return self.screen

    def keys(self, *names: str) -> None:
        self.command("send-keys -t bench " + " ".join(names))

    def literal(self, text: str) -> None:
        self.command("send-keys -t bench -l -- " + _quote(text))

    def paste(self, text: str) -> None:
        """As a person pastes: bracketed paste, so no editor auto-closes a bracket."""
        self.command("set-buffer -b bench -- " + _quote(text))
        self.command("paste-buffer -p -d -b bench -t bench")

    def wait(self, found: Callable[[str], bool], timeout: float, poll: float, what: str) -> float:
        """Look at the screen every ``poll`` seconds until ``found``; the moment it was first seen."""
        began = time.perf_counter()
        deadline = began + timeout
        while True:
            screen = self.capture()
            now = time.perf_counter()
            self.looks += 1
            if found(screen):
                self.looking += now - began
                return now
            if now > deadline:
                raise Failed(f"{what} not on screen after {timeout:.0f} s; the screen was:\n{screen}")
            time.sleep(poll)

    def close(self) -> None:
        self.client.kill()
        self._tmux("kill-server")
        self.socket_path.unlink(missing_ok=True)


def _quote(text: str) -> str:
    """Quoted for tmux's command parser (and the shell tmux runs the pane's command with)."""
    return "'" + text.replace("'", "'\\''") + "'"


class RssSampler(threading.Thread):
    """Resident memory of a process and all its children, summed, every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = psutil.Process(pid), interval
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for proc in procs:
                    with contextlib.suppress(psutil.Error):  # a child that just ended
                        total += proc.memory_info().rss
            except psutil.Error:
                return
            self.samples.append((time.perf_counter(), total))
            self.stopped.wait(self.interval)

    def now(self) -> float:
        """The tree's RSS now, MB."""
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 1e6

    def peak(self, start: float = 0.0, end: float = float("inf")) -> float:
        """Peak MB between ``start`` and ``end`` (perf_counter times)."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=0) / 1e6


class Drain(threading.Thread):
    """Watches one consumer group drain the seeded entries (ids ``<base>-1`` .. ``<base>-N``).

    Start: the first look at which the group has delivered anything. Busy until the archived mark (the
    highest entry id of a completed batch) passes 90% of the entries; the rate is over that span, since
    a running exporter (the dashboard's) holds the last partial batch up to ``pipeline.flush_interval``
    (30 s) once the stream is quiet, which `export --once` does not. End: the mark is the last entry and
    nothing is pending. Looks every 50 ms, so each time is known to 50 ms."""

    def __init__(self, client: redis.Redis, group: str, total: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.client, self.group, self.total, self.interval = client, group, total, interval
        self.started: float | None = None
        self.busy_until: float | None = None  # 90% archived
        self.ended: float | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        from exporter.stream import mark_key

        while not self.stopped.is_set() and self.ended is None:
            now = time.perf_counter()
            groups = {_text(g["name"]): g for g in self.client.xinfo_groups(STREAM)}
            found = groups.get(self.group)
            if found is not None and self.started is None and _text(found["last-delivered-id"]) != "0-0":
                self.started = now
            mark = self.client.get(mark_key(STREAM, self.group))
            archived = int(_text(mark).split("-")[1]) if mark else 0
            if self.busy_until is None and archived >= 0.9 * self.total:
                self.busy_until = now
            if found is not None and archived >= self.total and not found["pending"]:
                self.ended = now
            self.stopped.wait(self.interval)

    @property
    def draining(self) -> bool:
        return self.started is not None and self.busy_until is None

    @property
    def rate(self) -> float | None:
        """Records/s from the first delivery to 90% archived."""
        if self.started is None or self.busy_until is None:
            return None
        return 0.9 * self.total / (self.busy_until - self.started)

    @property
    def span(self) -> float | None:
        """Seconds from the first delivery to the last entry archived."""
        return None if self.started is None or self.ended is None else self.ended - self.started


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def seed(client: redis.Redis, events: int) -> float:
    """``events`` synthetic completions with ids ``<now ms>-1`` .. ``-N``, so an id says how far a drain is."""
    from exporter.seed import synthetic_completions

    started = time.perf_counter()
    base = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for i, value in enumerate(synthetic_completions(events, seed=1), start=1):
        pipe.xadd(STREAM, {"data": value}, id=f"{base}-{i}")
        if i % 2000 == 0:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - started


def write_config(root: Path, name: str, redis_url: str) -> tuple[Path, Path]:
    """A config on the bench's Redis with stores and a consumer group of its own; (file, warm dir)."""
    warm, cold = root / name / "warm", root / name / "cold"
    cold.mkdir(parents=True)
    path = root / f"{name}.yaml"
    path.write_text(f"redis:\n  url: {redis_url}\nclickhouse:\n  url: chdb://{warm}\ncold:\n  url: file://{cold}\n"
                    f"pipeline:\n  stream_key: {STREAM}\n  consumer_group: bench-{name}\n"
                    f"  consumer_name: bench-{name}\n")
    return path, warm


# -- measurements ------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one app run measured; None where a step was not measured or failed."""

    label: str
    panels: float | None = None  # s from launch to both panels painted
    first_figures: float | None = None  # s from launch to the first data on screen
    keys_busy: list[float] = field(default_factory=list)  # ms, while the exporter drained
    keys_idle: list[float] = field(default_factory=list)  # ms, nothing else running
    query_total: list[float] = field(default_factory=list)  # ms, run key -> first row of jobs_archive shown
    query_engine: list[float] = field(default_factory=list)  # ms the app reports as that query's time
    query_rss: list[float] = field(default_factory=list)  # MB, peak through that query minus RSS before it
    rss_before: list[float] = field(default_factory=list)  # MB, RSS just before that query
    numbers_total: list[float] = field(default_factory=list)  # ms, the same for the numbers() query
    numbers_engine: list[float] = field(default_factory=list)
    rss_peak: float | None = None  # MB, whole run
    rss_export: float | None = None  # MB, while the exporter drained
    rate: float | None = None  # records/s, first delivery to 90% archived
    drained: float | None = None  # s, first delivery to the last entry archived
    wall: float | None = None  # s, headless: process start to exit
    poll: float | None = None  # ms between looks at the screen while typing, on average
    notes: list[str] = field(default_factory=list)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def clear(tmux: Tmux, focus: str) -> None:
    """Focus the editor and empty it: select all (Ctrl+A in both apps), delete. Paced: sent in one
    burst, Harlequin kept the deleted selection and the next key replaced what was typed after it."""
    tmux.keys(focus)
    time.sleep(0.2)
    tmux.keys("C-a")
    time.sleep(0.2)
    tmux.keys("BSpace")
    time.sleep(0.2)


def type_keys(tmux: Tmux, count: int, tag: str, poll: float, gap: float, focus: str,
              busy: Callable[[], bool] = lambda: False) -> tuple[list[float], list[float]]:
    """Type ``count`` random digits into a comment line; each one's ms from the key to the screen
    showing it. Returns (while ``busy()`` held before and after the key, the others). Every 30 digits
    the line is started anew (select all, delete, a new prefix), untimed."""
    rng = random.Random(tag)
    during: list[float] = []
    other: list[float] = []
    line = ""
    for i in range(count):
        if i % 30 == 0:
            clear(tmux, focus)
            line = f"-- {tag}{i // 30:02d} "
            tmux.literal(line)
            tmux.wait(lambda s, want=line: want in s, 30, poll, f"the typed prefix {line!r}")
            time.sleep(gap)
        char = rng.choice("0123456789")  # digits: no completion list opens (it swallowed keys in Harlequin)
        line += char
        was_busy = busy()
        sent = time.perf_counter()
        tmux.literal(char)
        seen = tmux.wait(lambda s, want=line: want in s, 30, poll, f"keystroke {i}")
        (during if was_busy and busy() else other).append((seen - sent) * 1000)
        time.sleep(gap * rng.uniform(0.5, 1.5))
    return during, other


def run_query(tmux: Tmux, run_key: str, sql: str, marker: str, poll: float, focus: str,
              rss: RssSampler | None = None) -> tuple[float, str, float | None, float | None]:
    """Paste ``sql`` over the editor's text, press ``run_key``; ms until ``marker`` (a regex) shows, the
    screen then, and (with ``rss``) the app's RSS just before the key and its peak through the query
    (to half a second after the result showed), MB. The caller first runs RESET_QUERY, so no earlier
    result (nor a torn frame of one) can pass for this one."""
    done = re.compile(marker)
    head = sql.split(" FROM ")[0]
    for attempt in range(3):  # in Harlequin the focus key after a run was sometimes not in time for Ctrl+A
        clear(tmux, focus)
        tmux.paste(sql)
        try:  # Harlequin, just after a result, sometimes dropped the paste: paste again
            tmux.wait(lambda s: sql in s, 10, poll, "the pasted query")
        except Failed:
            if attempt == 2:
                raise
            time.sleep(0.5)
            continue
        time.sleep(0.2)
        if tmux.capture().count(head) == 1 and sql in tmux.screen:
            break
        if attempt == 2:
            raise Failed(f"the editor did not hold the query alone; the screen was:\n{tmux.screen}")
    time.sleep(0.3)
    before = rss.now() if rss is not None else None
    sent = time.perf_counter()
    tmux.keys(run_key)
    seen = tmux.wait(lambda s: bool(done.search(s)), 60, poll, f"the result of {sql!r}")
    screen = tmux.screen
    peak = None
    if rss is not None:
        time.sleep(0.5)
        peak = rss.peak(sent, time.perf_counter())
    return (seen - sent) * 1000, screen, before, peak


def reset(tmux: Tmux, run_key: str, marker: str, poll: float, focus: str) -> None:
    """Run the one-row RESET_QUERY and wait for its result, so the next timed result is a new one."""
    run_query(tmux, run_key, RESET_QUERY, marker, poll, focus)
    time.sleep(0.3)


def quit_app(tmux: Tmux, keys: tuple[str, ...] = ("C-q",), timeout: float = 90) -> None:
    """Quit with the app's key and wait for its process to end (killed after ``timeout``)."""
    try:
        proc = psutil.Process(tmux.pid)
    except psutil.NoSuchProcess:
        return
    try:
        tmux.keys(*keys)
    except Failed:
        return
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise Failed(f"the app did not quit within {timeout:.0f} s of {'+'.join(keys)}; killed") from None


def bench_app(label: str, python: str, env: dict[str, str], config: Path, client: redis.Redis, args,
              cleanup: Cleanup) -> Run:
    """`archives tui` on a backlog: first paint, keystrokes while it exports and idle, SELECT * FROM
    jobs_archive on the store it drained into (F5 -> first row, RSS through it) and the numbers() query,
    peak RSS, and its exporter's drain rate."""
    run = Run(label)
    poll, gap = args.poll_ms / 1000, args.gap_ms / 1000
    drain = Drain(client, f"bench-{config.stem}", args.backlog)
    drain.start()
    cleanup.closers.append(drain.stopped.set)
    launched = time.perf_counter()
    tmux = Tmux(config.stem, [python, "-m", "archives_tui", "--config", str(config), "tui"], env, config.parent)
    cleanup.closers.append(tmux.close)
    rss = RssSampler(tmux.pid)
    rss.start()
    try:
        run.panels = tmux.wait(lambda s: all(p.search(s) for p in PANELS), 60, poll, "both panels") - launched
        run.first_figures = tmux.wait(lambda s: bool(FIGURES.search(s)), 120, poll, "the first figures") - launched
        deadline = time.perf_counter() + 120
        while not drain.draining and drain.ended is None:
            if time.perf_counter() > deadline:
                raise Failed("the exporter did not start draining within 120 s")
            time.sleep(0.05)
        busy, idle = type_keys(tmux, args.keys, "k", poll, gap, "F3", lambda: drain.draining)
        run.keys_busy, run.keys_idle = busy, idle
        run.poll = 1000 * tmux.looking / max(tmux.looks, 1)
        if len(busy) < args.keys:
            run.notes.append(f"{label}: only {len(busy)} of {args.keys} keystrokes while the exporter drained "
                             "(a larger --backlog keeps it busy longer)")
        drain.join(args.drain_timeout)
        if drain.ended is None:
            raise Failed(f"the exporter had not drained {args.backlog:,} entries after {args.drain_timeout:.0f} s")
        run.rate, run.drained = drain.rate, drain.span
        run.rss_export = rss.peak(drain.started or 0, drain.ended)
        _, idle = type_keys(tmux, args.keys, "i", poll, gap, "F3")
        run.keys_idle += idle
        for k in range(args.queries):
            reset(tmux, "F5", RESET_BAR, poll, "F3")
            total, screen, before, peak = run_query(tmux, "F5", ARCHIVE_QUERY, RUNBAR, poll, "F3", rss)
            run.query_total.append(total)
            run.query_engine.append(float(re.search(RUNBAR, screen).group(3)) * 1000)
            run.rss_before.append(before)
            run.query_rss.append(peak - before)
            reset(tmux, "F5", RESET_BAR, poll, "F3")
            total, screen, _, _ = run_query(tmux, "F5", NUMBERS_QUERY.format(rows=1_000_000 - k), RUNBAR, poll, "F3")
            run.numbers_total.append(total)
            run.numbers_engine.append(float(re.search(RUNBAR, screen).group(3)) * 1000)
        quit_app(tmux)
    except Failed as exc:
        run.notes.append(f"{label} failed: {exc}")
    finally:
        rss.stopped.set()
        rss.join(5)
        run.rss_peak = rss.peak()
        drain.stopped.set()
        tmux.close()
    if drain.rate is not None:
        run.rate = drain.rate
    return run


def bench_headless(python: str, env: dict[str, str], config: Path, client: redis.Redis, args) -> Run:
    """`archives export --once` on the same backlog, watched the same way, with its peak RSS."""
    run = Run("headless export --once")
    drain = Drain(client, f"bench-{config.stem}", args.backlog)
    drain.start()
    started = time.perf_counter()
    proc = subprocess.Popen([python, "-m", "archives_tui", "--config", str(config), "export", "--once"],
                            cwd=config.parent, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    rss = RssSampler(proc.pid)
    rss.start()
    try:
        _, err = proc.communicate(timeout=args.drain_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        run.notes.append(f"headless export did not finish in {args.drain_timeout:.0f} s; killed")
    run.wall = time.perf_counter() - started
    rss.stopped.set()
    drain.join(10)
    drain.stopped.set()
    if proc.returncode != 0:
        run.notes.append(f"headless export exited {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}")
    run.rate, run.drained, run.rss_peak = drain.rate, drain.span, rss.peak()
    run.rss_export = rss.peak(drain.started or 0, drain.ended or float("inf"))
    return run


def bench_harlequin(python_dir: Path, warm: Path, root: Path, args, cleanup: Cleanup) -> Run:
    """Harlequin (chDB adapter) on the dashboard's warm store, idle: first paint, keystrokes, the same
    queries (Ctrl+J runs them; its default viewer holds 100,000 rows), peak RSS."""
    run = Run("Harlequin + chDB")
    poll, gap = args.poll_ms / 1000, args.gap_ms / 1000
    home = root / "harlequin"
    env = {f"XDG_{kind}_HOME": str(home / kind.lower()) for kind in ("CONFIG", "DATA", "CACHE", "STATE")}
    launched = time.perf_counter()
    tmux = Tmux("harlequin", [str(python_dir / "harlequin"), "-a", "chdb", "--path", str(warm),
                              "--no-write-history"], env, root)
    cleanup.closers.append(tmux.close)
    rss = RssSampler(tmux.pid)
    rss.start()
    try:
        run.panels = tmux.wait(lambda s: all(p.search(s) for p in HQ_PANELS), 60, poll, "Harlequin's panels") - launched
        run.first_figures = tmux.wait(lambda s: bool(HQ_CATALOG.search(s)), 120, poll, "the catalog") - launched
        time.sleep(1)
        _, run.keys_idle = type_keys(tmux, args.keys, "h", poll, gap, "F2")  # F2: Harlequin's editor
        run.poll = 1000 * tmux.looking / max(tmux.looks, 1)
        for k in range(args.queries):
            reset(tmux, "C-j", HQ_RESET, poll, "F2")
            total, _, before, peak = run_query(tmux, "C-j", ARCHIVE_QUERY, HQ_RESULT, poll, "F2", rss)
            run.query_total.append(total)
            run.rss_before.append(before)
            run.query_rss.append(peak - before)
            reset(tmux, "C-j", HQ_RESET, poll, "F2")
            total, _, _, _ = run_query(tmux, "C-j", NUMBERS_QUERY.format(rows=1_000_000 - k), HQ_RESULT, poll, "F2")
            run.numbers_total.append(total)
        quit_app(tmux)
    except Failed as exc:
        run.notes.append(f"Harlequin failed: {exc}")
    finally:
        rss.stopped.set()
        rss.join(5)
        run.rss_peak = rss.peak()
        tmux.close()
    return run


# -- venvs -------------------------------------------------------------------------------------------


def venv(name: str, packages: list[str]) -> Path | None:
    """``~/.cache/archives-bench/<name>`` with ``packages``, made once; its bin directory, or None."""
    home = CACHE / name
    stamp = home / "archives-bench.txt"
    wanted = "\n".join(sorted(packages))
    if stamp.exists() and stamp.read_text() == wanted:
        return home / "bin"
    print(f"  installing {name} ({', '.join(packages)}) ...", flush=True)
    try:
        if not (home / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, capture_output=True)
        subprocess.run([str(home / "bin" / "pip"), "install", "-q", *packages], check=True, capture_output=True,
                       timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"  could not install {name}: {detail.decode(errors='replace').strip()[-300:]}", file=sys.stderr)
        return None
    stamp.write_text(wanted)
    return home / "bin"


def lite_packages(source: Path) -> list[str]:
    """The app's dependencies with chdb-core-lite in place of chdb (which requires chdb-core)."""
    deps = tomllib.loads((source / "pyproject.toml").read_text())["project"]["dependencies"]
    return sorted([d for d in deps if not re.match(r"chdb\b", d)] + ["chdb-core-lite"])


# -- report ------------------------------------------------------------------------------------------


def _ms(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{statistics.median(samples):.1f} / {percentile(samples, 0.95):.1f} ({len(samples)})"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def report(runs: list[Run]) -> None:
    rows = [
        ("launch -> panels painted, s", lambda r: _num(r.panels, ".2f")),
        ("launch -> first status figures (Harlequin: catalog), s", lambda r: _num(r.first_figures, ".2f")),
        ("keystroke -> screen while exporting, ms median / P95 (n)", lambda r: _ms(r.keys_busy)),
        ("keystroke -> screen idle, ms median / P95 (n)", lambda r: _ms(r.keys_idle)),
        ("run -> first row of SELECT * FROM jobs_archive, ms median (each)", lambda r: _each(r.query_total)),
        ("  of which the query (as the app's run bar reports it), ms", lambda r: _each(r.query_engine)),
        ("  after that, to the screen, ms median (each)", lambda r: _each(_after(r))),
        ("  RSS before the query, MB (each)", lambda r: _each(r.rss_before)),
        ("  peak RSS through the query - before, MB (each)", lambda r: _each(r.query_rss)),
        ("run -> first row of numbers(1M), ms median (each)", lambda r: _each(r.numbers_total)),
        ("  of which the query (run bar), ms", lambda r: _each(r.numbers_engine)),
        ("peak RSS while exporting, MB", lambda r: _num(r.rss_export, ".0f")),
        ("peak RSS whole run, MB", lambda r: _num(r.rss_peak, ".0f")),
        ("exporter, records/s (first delivery to 90% archived)", lambda r: _num(r.rate, ",.0f")),
        ("exporter, s from first delivery to last entry archived", lambda r: _num(r.drained, ".1f")),
        ("headless: process start to exit, s", lambda r: _num(r.wall, ".1f")),
        ("screen looked at every, ms (while typing)", lambda r: _num(r.poll, ".2f")),
    ]
    width = max(len(name) for name, _ in rows)
    cells = [[show(r) for r in runs] for _, show in rows]
    widths = [max(len(r.label), *(len(c[i]) for c in cells)) for i, r in enumerate(runs)]
    print("\n" + " " * width + "  " + "  ".join(r.label.rjust(w) for r, w in zip(runs, widths, strict=True)))
    for (name, _), row in zip(rows, cells, strict=True):
        print(name.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _each(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{statistics.median(samples):.0f} ({', '.join(f'{t:.0f}' for t in samples)})"


def _after(run: Run) -> list[float]:
    if len(run.query_engine) != len(run.query_total):  # Harlequin reports no engine time
        return []
    return [t - e for t, e in zip(run.query_total, run.query_engine, strict=True)]


def targets(app: Run, headless: Run | None, harlequin: Run | None) -> None:
    """The issue's targets, met or not, from the dashboard's (chdb-core) run."""
    def line(name: str, value: float | None, ok: Callable[[float], bool], shown: str) -> None:
        verdict = "not measured" if value is None else "met" if ok(value) else "NOT MET"
        print(f"  {name:<58} {shown if value is not None else '-':>22}  {verdict}")

    print("\ntargets (dashboard on chdb-core):")
    p95 = percentile(app.keys_busy, 0.95) if app.keys_busy else None
    first_row = statistics.median(app.query_total) if app.query_total else None
    grown = max(app.query_rss) if app.query_rss else None
    line("first paint (the panels drawn) < 1 s", app.panels, lambda v: v < 1, f"{app.panels or 0:.2f} s")
    line("keystroke P95 while exporting < 50 ms", p95, lambda v: v < 50, f"{p95 or 0:.1f} ms")
    line("F5 -> first row of SELECT * FROM jobs_archive < 300 ms", first_row, lambda v: v < 300,
         f"{first_row or 0:.0f} ms")
    line("peak RSS through that query <= 100 MB above before", grown, lambda v: v <= 100, f"+{grown or 0:.0f} MB")
    line("peak RSS while exporting < 600 MB", app.rss_export, lambda v: v < 600, f"{app.rss_export or 0:.0f} MB")
    ratio = app.rate / headless.rate if headless and headless.rate and app.rate else None
    line("in-app exporter throughput >= 0.8x headless", ratio, lambda v: v >= 0.8, f"{ratio or 0:.2f}x")
    if harlequin is None:
        print("  no worse than Harlequin: not measured")
        return
    pairs = [
        ("first paint (the panels drawn), s", app.panels, harlequin.panels),
        ("first data (our status figures, Harlequin's catalog), s", app.first_figures, harlequin.first_figures),
        ("keystroke P95, ms (ours while exporting, Harlequin idle)",
         p95, percentile(harlequin.keys_idle, 0.95) if harlequin.keys_idle else None),
        ("keystroke P95 idle, ms", percentile(app.keys_idle, 0.95) if app.keys_idle else None,
         percentile(harlequin.keys_idle, 0.95) if harlequin.keys_idle else None),
        ("run -> first row of SELECT * FROM jobs_archive, ms", first_row,
         statistics.median(harlequin.query_total) if harlequin.query_total else None),
        ("peak RSS through that query - before, MB", grown, max(harlequin.query_rss) if harlequin.query_rss else None),
        ("peak RSS, MB (ours while exporting, Harlequin whole run)", app.rss_export, harlequin.rss_peak),
    ]
    for name, ours, theirs in pairs:
        both = None if ours is None or theirs is None else ours - theirs
        line(f"no worse than Harlequin: {name}", both, lambda v: v <= 0,
             f"{ours or 0:.1f} vs {theirs or 0:.1f}")


# -- main --------------------------------------------------------------------------------------------


def source_tree(ref: str | None, root: Path) -> Path:
    """The app's source: the working tree, or ``git archive REF`` unpacked under ``root``."""
    if ref is None:
        return ROOT
    target = root / "src"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=1_000_000, help="entries seeded before launch (1,000,000)")
    parser.add_argument("--keys", type=int, default=150, help="keystrokes timed while exporting, then idle (150)")
    parser.add_argument("--queries", type=int, default=3,
                        help="runs of SELECT * FROM jobs_archive (and of the numbers() query) per app (3)")
    parser.add_argument("--gap-ms", type=float, default=40, help="mean pause between keystrokes (40 ms)")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="pause between looks at the screen (1 ms)")
    parser.add_argument("--drain-timeout", type=float, default=600, help="longest wait for a drain, s (600)")
    parser.add_argument("--ref", help="run the app from this git commit (git archive) instead of the working tree")
    parser.add_argument("--no-harlequin", action="store_true", help="skip Harlequin")
    parser.add_argument("--no-lite", action="store_true", help="skip the chdb-core-lite run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    if args.backlog < 10_000 or args.keys < 10 or args.queries < 1:
        parser.error("--backlog must be >= 10,000, --keys >= 10, --queries >= 1")
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed: apt-get install tmux")

    cleanup = Cleanup(Path(tempfile.mkdtemp(prefix="archives-bench-tui-")), args.keep)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        source = source_tree(args.ref, cleanup.root)
        sys.path.insert(0, str(source))  # this script's imports of the product come from the same source
        from exporter.embedded import PrivateRedis

        root = cleanup.root
        env = {"PYTHONPATH": str(source), "XDG_DATA_HOME": str(root / "xdg")}
        server = PrivateRedis(root / "redis")
        cleanup.closers.append(server.stop)
        client = redis.Redis.from_url(server.url)
        cleanup.closers.append(client.close)
        print(f"{os.cpu_count()} cores; app from {args.ref or 'the working tree'}; "
              f"seeding {args.backlog:,} entries ...", flush=True)
        print(f"  seeded in {seed(client, args.backlog):.1f} s; the stream uses "
              f"{client.info('memory').get('used_memory_human', '?')}", flush=True)

        runs: list[Run] = []
        config, warm = write_config(root, "app", server.url)
        print("dashboard (chdb-core) ...", flush=True)
        app = bench_app("archives tui", sys.executable, env, config, client, args, cleanup)
        runs.append(app)
        print("headless export --once ...", flush=True)
        headless_config, _ = write_config(root, "headless", server.url)
        headless = bench_headless(sys.executable, env, headless_config, client, args)
        runs.append(headless)
        if not args.no_lite:
            bin_dir = venv("lite-venv", lite_packages(source))
            if bin_dir is None:
                app.notes.append("chdb-core-lite: skipped, its venv could not be installed")
            else:
                print("dashboard (chdb-core-lite) ...", flush=True)
                lite_config, _ = write_config(root, "lite", server.url)
                runs.append(bench_app("tui on chdb-core-lite", str(bin_dir / "python"), env, lite_config, client,
                                      args, cleanup))
        harlequin = None
        if not args.no_harlequin:
            bin_dir = venv("harlequin-venv", ["harlequin", "harlequin-chdb"])
            if bin_dir is None:
                app.notes.append("Harlequin: skipped, its venv could not be installed")
            else:
                print("Harlequin (chDB adapter, idle) on the dashboard's warm store ...", flush=True)
                harlequin = bench_harlequin(bin_dir, warm, root, args, cleanup)
                runs.append(harlequin)
        report(runs)
        targets(app, headless, harlequin)
        notes = [note for r in runs for note in r.notes]
        if notes:
            print("\nnotes:\n" + "\n".join(f"- {n}" for n in notes))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
