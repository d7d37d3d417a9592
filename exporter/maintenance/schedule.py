"""The exporter's retention schedule: the policy applied every ``retention.interval`` from a thread of
the process that runs the exporter (`archives export`, later the dashboard's exporter child).

The first run waits a little after start, so an exporter restarted in a loop does not trim on every
start; a failed run is logged and the next one comes on time. Runs of several exporters are kept apart
by the manager's lease.
"""

from __future__ import annotations

import logging
import threading

from exporter.maintenance.retention import RetentionManager

log = logging.getLogger(__name__)


class RetentionSchedule:
    def __init__(self, manager: RetentionManager, interval: float, first_after: float = 60.0) -> None:
        self.manager, self.interval, self.first_after = manager, interval, first_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="archives-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                run = self.manager.apply()
            except Exception as exc:  # a part down: the next run comes on time
                log.warning("retention run failed: %s", exc)
                continue
            if run.skipped:
                log.info("retention run skipped: %s", run.skipped)
            for report in run.tiers:
                log.info("retention %s: removed %d in %.2fs%s", report.tier, report.removed, report.seconds,
                         "".join(f"; refused: {reason}" for reason in report.refused))
