"""The one clock aftercart reads: real UTC time, or a simulated clock the scenario runner installs.

Flows, tasks and the store take "now" from here (never from `datetime.now` directly), so a
scenario played on a simulated clock sees windows, deadlines and follow-ups open and close at
the scenario's times. Nothing is installed at import: `now()` is the real time until `use()`.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator

_source: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current time in UTC (simulated while a scenario runs)."""
    return _source().astimezone(timezone.utc) if _source is not None else datetime.now(timezone.utc)


def simulated() -> bool:
    return _source is not None


@contextmanager
def use(source: Callable[[], datetime]) -> Iterator[None]:
    """Read time from `source` (a simulated clock's `now`) inside the block, for the whole process."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous


def utc(ts: datetime | None = None) -> datetime:
    """`ts` in UTC (a flow's `now` parameter may carry any offset; the store compares UTC), or now."""
    return ts.astimezone(timezone.utc) if ts is not None else now()
