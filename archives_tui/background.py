"""The work the dashboard runs behind its screen: the exporter, the retention schedule and, with
``--demo``, a synthetic producer, each in a thread of its own; and the status snapshot the panels show.

Nothing here touches a widget: the app reads ``snapshot()`` from a worker thread and posts what it got.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from archives_tui.figures import read_figures
from exporter import runtime
from exporter.config import SECTIONS, Config
from exporter.query.layer import LocalQueries
from exporter.seed import synthetic_completions
from exporter.service import ExportService
from exporter.status import stream_status
from exporter.transforms import PayloadSampler, PIIRedactor
from exporter.units import format_duration

log = logging.getLogger(__name__)
HOUR = re.compile(r"year=(\d{4})/month=(\d\d)/day=(\d\d)/hour=(\d\d)/")  # the cold layout's directories
COLD_EVERY = 30.0  # seconds between reads of the cold tier's size: it lists every file
SAID_APART = {"payload_sampling_rate", "payload_max_size", "pii_redaction_enabled", "compression_codec", "interval",
              "clickhouse_ttl"}  # retention keys apply_config reports one by one; the rest as "the policy"


@dataclass
class Snapshot:
    """What the status panel shows, read at ``taken``; a part that could not be read says why."""

    taken: float
    exporter: dict
    stream: dict | None = None
    stream_down: str | None = None
    storage: dict = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)  # records/s of the last refreshes, oldest first
    last_retention: dict | None = None
    events: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)  # archives_tui.figures, by name
    breakers: dict = field(default_factory=dict)  # each sink's circuit breaker: closed, open or half-open


class EventLog(logging.Handler):
    """The exporter's and retention's log lines (INFO and up), the newest ``size`` kept for the status
    panel's event view: in a dashboard they would otherwise tear through the screen."""

    def __init__(self, size: int = 200) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def install(self) -> None:
        for name in ("exporter", "archives", "archives_tui"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.INFO)
            logger.addHandler(self)

    def remove(self) -> None:
        for name in ("exporter", "archives", "archives_tui"):
            logging.getLogger(name).removeHandler(self)


class DemoProducer:
    """Appends synthetic completions (realistic queues, failures, PII in some payloads) at ``rate`` a
    second, so a new user sees the archive fill within seconds."""

    def __init__(self, config: Config, rate: float = 200.0) -> None:
        self.config, self.rate = config, rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="archives-demo", daemon=True)
        self.appended = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        client = runtime.connect_redis(self.config)
        seed = int(time.time())
        try:
            while not self._stop.is_set():
                burst = max(1, int(self.rate / 5))
                pipe = client.pipeline(transaction=False)
                for value in synthetic_completions(burst, days=1 / 86400, failure_rate=0.08, pii_rate=0.1, seed=seed):
                    pipe.xadd(self.config.pipeline.stream_key, {"data": value})
                pipe.execute()
                seed += 1
                self.appended += burst
                self._stop.wait(0.2)
        except Exception as exc:  # Redis went away: the status panel says so; the demo stops
            log.warning("demo producer stopped: %s", runtime.describe(exc))
        finally:
            client.close()


class Background:
    """The exporter and the retention schedule of one dashboard, over the parts the config names."""

    def __init__(self, config: Config, demo: bool = False) -> None:
        self.config = config
        self.events = EventLog()
        self.events.install()
        self.service = ExportService(config)
        self.archive, self.pipeline = self.service.archive, self.service.pipeline
        self.manager, self.schedule = self.service.manager, self.service.schedule
        self.demo = DemoProducer(config) if demo else None
        self._exporter = threading.Thread(target=self._export, name="archives-exporter", daemon=True)
        self._rates: deque[float] = deque(maxlen=60)
        self._last: tuple[float, int] | None = None
        self._cold: dict = {}
        self._cold_at = 0.0
        self.exporter_error: str | None = None
        self._applying = threading.Lock()  # one apply_config at a time
        self._stopped = False

    def start(self) -> None:
        self._exporter.start()
        if self.demo is not None:
            self.demo.start()

    def _export(self) -> None:
        try:
            self.service.run()
        except Exception as exc:  # shown on the status panel; the dashboard stays up
            self.exporter_error = runtime.describe(exc)
            log.error("the exporter stopped: %s", self.exporter_error)

    @property
    def backend(self):
        """The warm store's engine (this process owns the store): catalog and schema versions."""
        return self.archive.warm.backend

    @functools.cached_property
    def queries(self) -> LocalQueries:
        """The query layer the dashboard's queries go through: judged, routed and limited as the socket's."""
        return runtime.local_queries(self.config, self.backend)

    def snapshot(self) -> Snapshot:
        """The status figures now (called from a worker thread, every refresh)."""
        now = time.time()
        metrics = self.pipeline.metrics.snapshot()
        metrics["running"] = self._exporter.is_alive()
        metrics["stopped_by"] = self.exporter_error
        if self._last is not None and now > self._last[0]:
            self._rates.append(max(0.0, (metrics["archived"] - self._last[1]) / (now - self._last[0])))
        self._last = (now, metrics["archived"])
        shot = Snapshot(now, metrics, rates=list(self._rates), events=list(self.events.lines)[-30:],
                        breakers={name: breaker.state for name, breaker in self.pipeline.breakers.items()})
        try:
            shot.stream = stream_status(self.archive.redis, self.config)
        except Exception as exc:
            shot.stream_down = runtime.describe(exc)
        shot.storage["warm"] = self._read_warm()  # one look at system.parts: every refresh
        if now - self._cold_at > COLD_EVERY:
            self._cold, self._cold_at = self._read_cold(), now
        shot.storage["cold"] = {**self._cold, "age": now - self._cold_at}
        shot.figures = read_figures(self.queries)
        try:
            shot.last_retention = self.manager.last_run()
        except Exception:  # Redis down: said above
            shot.last_retention = None
        return shot

    def _read_warm(self) -> dict:
        try:
            days = self.archive.warm.days()
        except Exception as exc:
            return {"down": runtime.describe(exc)}
        return {"records": sum(d[1] for d in days), "bytes": sum(d[2] for d in days),
                "oldest": days[0][0] if days else None, "newest": days[-1][0] if days else None}

    def _read_cold(self) -> dict:
        try:
            files = self.archive.cold.files()
        except Exception as exc:
            return {"down": runtime.describe(exc)}
        hours = sorted("{}-{}-{} {}h".format(*found.groups()) for f in files if (found := HOUR.search(f["name"])))
        span = {"oldest": hours[0], "newest": hours[-1]} if hours else {}
        return {"files": len(files), "bytes": sum(int(f.get("size") or 0) for f in files), **span}

    def apply_config(self, new: Config) -> list[str]:
        """Put what is safe to change while running into effect, and say what did and what needs a restart.

        The whole retention section is live: the exporter's workers read ``pipeline.sampler`` and
        ``pipeline.redactor`` once per batch, so replacing them (one atomic assignment each) takes effect
        from the next batch, never within one; the retention manager reads its config at each run; the
        schedule's wait is measured again. Every other section was read when the parts were opened.
        """
        with self._applying:
            old = self.config
            live = dataclasses.replace(old, retention=new.retention, source=new.source)
            before, after = old.retention, new.retention
            changed = [f.name for f in dataclasses.fields(after) if getattr(before, f.name) != getattr(after, f.name)]
            said = []
            if {"payload_sampling_rate", "payload_max_size"} & set(changed):
                self.pipeline.sampler = PayloadSampler(after.payload_sampling_rate, after.payload_max_size)
                said.append(f"Payload sampling now keeps {after.payload_sampling_rate:g} of the samples (up to "
                            f"{after.payload_max_size:,} bytes each), from the exporter's next batch.")
            if "pii_redaction_enabled" in changed:
                self.pipeline.redactor = PIIRedactor() if after.pii_redaction_enabled else None
                said.append("PII redaction of samples is now " + ("on" if after.pii_redaction_enabled else "off")
                            + ", from the exporter's next batch.")
            if "compression_codec" in changed:
                self.archive.cold.codec = None if after.compression_codec == "NONE" else after.compression_codec.lower()
                said.append(f"New Parquet files are written with {after.compression_codec}.")
            days = max(1, int(after.clickhouse_ttl // 86400))
            if days != self.archive.warm.ttl_days:
                self.archive.warm.ttl_days = days
                self.manager.warm_window_moved = True
                said.append(f"The warm window is now {days} days for new rows and retention; the ClickHouse table's "
                            "TTL and the federated views move at the next retention run (R, then a applies it now).")
            elif "clickhouse_ttl" in changed:
                said.append(f"The warm window stays {days} days: it counts whole days.")
            self.manager.config = live
            self.config = live
            if "interval" in changed:
                self.schedule.set_interval(after.interval)
                said.append(f"Retention now runs every {format_duration(after.interval)}.")
            policy = [name for name in changed if name not in SAID_APART]
            if policy:
                said.append(f"The retention policy ({', '.join(policy)}) applies from the next retention run.")
            restart = [f"{section}.{f.name}" for section in SECTIONS if section != "retention"
                       for f in dataclasses.fields(getattr(new, section))
                       if getattr(getattr(old, section), f.name) != getattr(getattr(new, section), f.name)]
            if restart:
                said.append(f"Needs a restart of the dashboard to take effect: {', '.join(restart)}.")
            return said or ["Nothing to apply: the running settings already match."]

    def stop(self) -> None:
        """Stop producing, finish the batches in hand (or leave them pending), close every part; once, however
        the dashboard ends (Ctrl+Q, or an error that ended the app with the exporter's threads running)."""
        with self._applying:
            if self._stopped:
                return
            self._stopped = True
        if self.demo is not None:
            self.demo.stop()
        self.service.stop()
        self._exporter.join(timeout=30)
        if self._exporter.is_alive():
            self.service.stop(abort=True)
            self._exporter.join(timeout=10)
        self.service.close()
        self.events.remove()
