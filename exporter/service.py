"""The export service: the parts a config names, the pipeline over them and the retention schedule, built
in one place for every process that exports (`archives export`, the dashboard's exporter).

It owns the store while it is open (the embedded warm store answers other processes' queries through
its socket, see ``runtime.Archive``); ``run`` blocks until the pipeline stops; ``close`` releases it all.
"""

from __future__ import annotations

import logging

from exporter import runtime
from exporter.config import Config
from exporter.maintenance.retention import TIERS, RetentionManager, RetentionRun
from exporter.maintenance.schedule import RetentionSchedule
from exporter.memory import tuned_for_export
from exporter.metrics import ExportMetrics
from exporter.pipeline import ExportPipeline
from exporter.tiers import federation

log = logging.getLogger("archives.service")


class LiveRetentionManager(RetentionManager):
    """A retention manager whose policy may change while the service runs (the dashboard's Config panel).

    A changed warm window is used at once (by inserts and by the next run's drops); the table's TTL
    backstop and the federated views (DDL) are moved by the next run that applies the policy, from the
    thread that runs it, so a save never waits on the engine.
    """

    warm_window_moved = False  # set when the config's warm window changed; the next applying run does the DDL

    def apply(self, tiers: tuple[str, ...] = TIERS, dry_run: bool = False) -> RetentionRun:
        if self.warm_window_moved and not dry_run and self.warm is not None:
            self.warm_window_moved = False
            try:
                self.warm.keep_the_ttl_a_backstop()
                if runtime.serves_federation(self.config):
                    url = self.cold.url if self.cold is not None else runtime.cold_url(self.config)
                    federation.install(self.warm.backend, federation.cold_source(self.config.cold, url),
                                       self.warm.ttl_days)
                log.info("the warm window is now %d days: table TTL and federated views moved", self.warm.ttl_days)
            except Exception as exc:  # the warm tier down: the next run tries again
                self.warm_window_moved = True
                log.warning("cannot move the warm window's table TTL yet: %s", runtime.describe(exc))
        return super().apply(tiers, dry_run)


class ExportService:
    """The exporter of one process: open parts, a pipeline and a retention schedule (see the module doc)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.archive = runtime.Archive.open(config)
        try:
            self.pipeline = ExportPipeline(config, self.archive.redis, self.archive.warm, self.archive.cold,
                                           runtime.consumer_name(config))
            self.manager = LiveRetentionManager(config, self.archive.redis, warm=self.archive.warm,
                                                cold=self.archive.cold)
            self.schedule = RetentionSchedule(self.manager, config.retention.interval)
        except Exception:
            self.archive.close()
            raise

    def run(self, once: bool = False) -> ExportMetrics:
        """Export until stopped (with ``once``, until nothing is new or pending, and without the retention
        schedule); blocks."""
        log.info("exporting %s as %s", self.config.pipeline.stream_key, runtime.consumer_name(self.config))
        if not once:
            self.schedule.start()
        try:
            with tuned_for_export():
                return self.pipeline.run(once=once)
        finally:
            self.schedule.stop()

    def stop(self, abort: bool = False) -> None:
        """Finish the batches in hand and stop (``abort``: stop now, leaving them pending for the next start)."""
        self.pipeline.stop(abort)

    def close(self) -> None:
        self.schedule.stop()
        self.archive.close()
