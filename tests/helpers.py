"""Test helpers: serve an ASGI app over real loopback HTTP in a thread."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(app, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
