"""Retry pacing and a circuit breaker per sink, so a failing store is probed, not hammered."""

from __future__ import annotations

import random
import threading
import time


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2**attempt``, capped."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return random.uniform(ceiling / 2, ceiling)


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` lets one probe through."""

    def __init__(self, name: str, threshold: int, cooldown: float) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self.opened_at is None:
                return "closed"
            return "half-open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def wait_time(self) -> float:
        """Seconds until a call may be attempted (0 when closed or ready for a probe)."""
        with self._lock:
            if self.opened_at is None:
                return 0.0
            return max(0.0, self.opened_at + self.cooldown - time.monotonic())

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            if self.failures >= self.threshold:
                self.opened_at = time.monotonic()
