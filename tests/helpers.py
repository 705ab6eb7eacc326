"""Test helpers: wait for a condition, run a flow in a thread; serving apps is sandbox.serving's."""

from __future__ import annotations

import threading
import time

from sandbox.serving import free_port, reserve_port, serve_app

__all__ = ["free_port", "reserve_port", "serve_app", "wait_for", "start_in_thread"]


def wait_for(pred, timeout: float, what: str, interval: float = 0.3):
    """Poll `pred` until it returns something truthy (returned); fail after `timeout` seconds.
    A predicate that raises httpx.HTTPError (a server still starting) counts as not yet."""
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = pred()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def start_in_thread(fn, *args, **kw):
    """Run `fn` in a thread with the caller's context (a flow that pauses in-process); returns the
    thread and a dict that gets `value` (or `error`) when it ends."""
    import contextvars

    result: dict = {}
    ctx = contextvars.copy_context()

    def run():
        try:
            result["value"] = ctx.run(fn, *args, **kw)
        except BaseException as exc:  # surfaced by the test's assertion on the result
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result
