"""What the customer pages share: a page handler run off the event loop, a capped form body."""

from __future__ import annotations

from typing import Callable
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse


def parse_form(body: bytes) -> dict[str, str]:
    """A urlencoded form as {field: first value}; undecodable bytes become U+FFFD, never an error."""
    return {k: (v[0] if v else "") for k, v in parse_qs(body.decode("utf-8", "replace"),
                                                        keep_blank_values=True).items()}


def get_page(handler: Callable[[Request], HTMLResponse]):
    async def endpoint(request: Request) -> HTMLResponse:
        return await run_in_threadpool(handler, request)
    return endpoint


def post_form(handler: Callable[[Request, dict[str, str]], HTMLResponse], max_bytes: int):
    """A POST endpoint that reads at most `max_bytes` of form (413 beyond) and hands it parsed."""
    async def endpoint(request: Request) -> HTMLResponse:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                return HTMLResponse("Form too large", status_code=413)
        return await run_in_threadpool(handler, request, parse_form(body))
    return endpoint
