"""The exporter's retention schedule: the policy applied every ``retention.interval`` from a thread of
the process that runs the exporter (`archives export`, later the dashboard's exporter child).

The first run waits a little after start, so an exporter restarted in a loop does not trim on every
start; a failed run is logged and the next one comes on time. Runs of several exporters are kept apart
by the manager's lease.
"""

from __future__ import annotations

import logging
import threading
import time

from exporter.maintenance.retention import RetentionManager

log = logging.getLogger(__name__)


class RetentionSchedule:
    def __init__(self, manager: RetentionManager, interval: float, first_after: float = 60.0) -> None:
        self.manager, self.interval, self.first_after = manager, interval, first_after
        self._stop = threading.Event()
        self._changed = threading.Event()  # the interval changed: the wait in progress is measured again
        self._thread = threading.Thread(target=self._loop, name="archives-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the schedule (idempotent; a schedule never started just stays so)."""
        self._stop.set()
        self._changed.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def set_interval(self, interval: float) -> None:
        """Use ``interval`` from now on, also for the wait in progress (counted from the last run), so a
        shorter interval does not first sit out the old one (called from another thread)."""
        self.interval = interval
        self._changed.set()

    def _loop(self) -> None:
        since, first = time.monotonic(), True
        while not self._stop.is_set():
            remaining = since + (self.first_after if first else self.interval) - time.monotonic()
            if remaining > 0:
                self._changed.wait(remaining)
                self._changed.clear()
                continue
            first = False
            try:
                run = self.manager.apply()
            except Exception as exc:  # a part down: the next run comes on time
                log.warning("retention run failed: %s", exc)
                continue
            finally:
                since = time.monotonic()
            if run.skipped:
                log.info("retention run skipped: %s", run.skipped)
            for report in run.tiers:
                log.info("retention %s: removed %d in %.2fs%s", report.tier, report.removed, report.seconds,
                         "".join(f"; refused: {reason}" for reason in report.refused))
