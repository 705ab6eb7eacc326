"""Client of the 3PL's REST API (the sandbox's, or a real 3PL with the same shape)."""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import httpx


class ThreePLError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"3PL answered {status}: {message}")
        self.status, self.message = status, message


class ThreePLClient:
    def __init__(self, http: httpx.Client, base_url: str, max_attempts: int = 5, backoff_base: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep):
        self.http, self.base = http, base_url.rstrip("/")
        self.max_attempts, self.backoff_base, self.sleep = max_attempts, backoff_base, sleep

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
        last = ""
        for attempt in range(self.max_attempts):
            try:
                r = self.http.request(method, self.base + path, json=json, params=params)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code < 500:
                    body = r.json() if r.content else {}
                    if r.status_code >= 400:
                        raise ThreePLError(r.status_code, body.get("error", r.text) if isinstance(body, dict) else r.text)
                    return body
                last = f"HTTP {r.status_code}"
            self.sleep(min(5.0, self.backoff_base * 2 ** attempt) * (0.5 + random.random() / 2))
        raise ThreePLError(503, f"unavailable after {self.max_attempts} attempts ({last})")

    def send_order(self, order_id: int, lines: list[dict[str, Any]], address: dict[str, Any],
                   flags: list[str]) -> dict[str, Any]:
        """Create the order at the warehouse, or send its new version."""
        return self._call("POST", "/3pl/orders", {"order_id": order_id, "lines": lines, "address": address,
                                                  "flags": flags})

    def get(self, order_id: int) -> dict[str, Any]:
        return self._call("GET", f"/3pl/orders/{order_id}")

    def updated_since(self, since: str | None) -> list[dict[str, Any]]:
        return self._call("GET", "/3pl/orders", params={"updated_since": since} if since else None)["orders"]

    def set_flag(self, order_id: int, flag: str) -> dict[str, Any]:
        return self._call("POST", f"/3pl/orders/{order_id}/hold", {"flag": flag})

    def clear_flag(self, order_id: int, flag: str) -> dict[str, Any]:
        return self._call("POST", f"/3pl/orders/{order_id}/release", {"flag": flag})

    def request_cancel(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"/3pl/orders/{order_id}/cancel-request")
