"""The sandbox's clock: real time by default, a simulated clock for scenarios and tests."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    def __init__(self, start: datetime | None = None):
        self._lock = threading.Lock()
        self._now = start.astimezone(timezone.utc) if start else None

    @property
    def simulated(self) -> bool:
        return self._now is not None

    def now(self) -> datetime:
        with self._lock:
            return self._now if self._now is not None else datetime.now(timezone.utc)

    def set(self, when: datetime) -> None:
        with self._lock:
            if self._now is None:
                raise RuntimeError("the real clock cannot be set; start the sandbox with a simulated clock")
            when = when.astimezone(timezone.utc)
            if when < self._now:
                raise ValueError(f"time cannot go backwards ({when.isoformat()} < {self._now.isoformat()})")
            self._now = when

    def advance(self, delta: timedelta) -> datetime:
        self.set(self.now() + delta)
        return self.now()


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
