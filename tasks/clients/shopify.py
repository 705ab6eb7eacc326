"""Shopify Admin GraphQL client over httpx: paces itself, retries, maps userErrors to errors.

No Prefect here: tasks wrap it. The same client talks to the sandbox and to a real store;
only the endpoint URL and the access token differ.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

import httpx

from tasks.clients.documents import document

log = logging.getLogger("aftercart.shopify")


class ShopifyError(Exception):
    """The API refused the request (GraphQL errors, 4xx other than 429)."""


class ShopifyUnavailable(ShopifyError):
    """Retries ran out on THROTTLED, 429 or 5xx."""


@dataclass
class UserError(ShopifyError):
    mutation: str
    errors: list[dict[str, Any]]

    def __str__(self) -> str:
        return f"{self.mutation}: " + "; ".join(
            f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')} ({e.get('code', '')})" for e in self.errors)

    @property
    def codes(self) -> list[str]:
        return [e.get("code") for e in self.errors if e.get("code")]


@dataclass
class CallStats:
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    cost_points: float = 0.0


class ShopifyClient:
    def __init__(self, http: httpx.Client, endpoint: str, access_token: str, max_attempts: int = 8,
                 backoff_base: float = 0.25, backoff_cap: float = 8.0, sleep: Callable[[float], None] = time.sleep,
                 rnd: random.Random | None = None):
        self.http, self.endpoint, self.token = http, endpoint, access_token
        self.max_attempts, self.backoff_base, self.backoff_cap = max_attempts, backoff_base, backoff_cap
        self.sleep = sleep
        self.rnd = rnd or random.Random()
        self.stats = CallStats()
        self._available: float | None = None
        self._restore: float | None = None
        self._seen_at = 0.0

    # ------------------------------------------------------------- transport

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_cap, self.backoff_base * (2 ** attempt)) * (0.5 + self.rnd.random() / 2)

    def _pace(self, expected_cost: float) -> None:
        """Wait until the bucket (as last reported) has room for the next call."""
        if self._available is None or not self._restore:
            return
        available = self._available + (time.monotonic() - self._seen_at) * self._restore
        if available < expected_cost:
            self.sleep(min(self.backoff_cap, (expected_cost - available) / self._restore))

    def _note_cost(self, body: dict[str, Any]) -> float | None:
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        if "currentlyAvailable" in status:
            self._available = float(status["currentlyAvailable"])
            self._restore = float(status.get("restoreRate") or 0) or None
            self._seen_at = time.monotonic()
        actual = cost.get("actualQueryCost")
        if actual is not None:
            self.stats.cost_points += float(actual)
        return cost.get("requestedQueryCost")

    def execute(self, name: str, variables: dict[str, Any] | None = None, expected_cost: float = 10) -> dict[str, Any]:
        """Run the named document; return `data`. Retries THROTTLED, 429 (Retry-After) and 5xx."""
        payload = {"query": document(name), "variables": variables or {}, "operationName": name}
        last = ""
        for attempt in range(self.max_attempts):
            self._pace(expected_cost)
            self.stats.calls += 1
            if attempt:
                self.stats.retries += 1
            try:
                r = self.http.post(self.endpoint, json=payload,
                                   headers={"X-Shopify-Access-Token": self.token, "Content-Type": "application/json"})
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                self.sleep(self._backoff(attempt))
                continue
            if r.status_code == 429:
                self.stats.throttled += 1
                last = "HTTP 429"
                try:
                    self._note_cost(r.json())
                except ValueError:
                    pass
                retry_after = r.headers.get("retry-after")
                self.sleep(float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit()
                           else self._backoff(attempt))
                continue
            if r.status_code >= 500:
                self.stats.server_errors += 1
                last = f"HTTP {r.status_code}"
                self.sleep(self._backoff(attempt))
                continue
            try:
                body = r.json()
            except ValueError:
                raise ShopifyError(f"{name}: HTTP {r.status_code}, body is not JSON") from None
            if r.status_code >= 400:
                raise ShopifyError(f"{name}: HTTP {r.status_code}: {body.get('errors')}")
            requested = self._note_cost(body)
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                self.stats.throttled += 1
                last = "THROTTLED"
                if requested and self._restore:
                    self.sleep(min(self.backoff_cap, max(0.0, (requested - (self._available or 0)) / self._restore)))
                else:
                    self.sleep(self._backoff(attempt))
                continue
            if errors:
                raise ShopifyError(f"{name}: " + "; ".join(str(e.get("message")) for e in errors))
            return body.get("data") or {}
        raise ShopifyUnavailable(f"{name}: gave up after {self.max_attempts} attempts (last: {last})")

    def mutate(self, name: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
        """Run a mutation document; raise UserError when Shopify answers with userErrors."""
        data = self.execute(name, variables, expected_cost=10)
        result = data.get(field) or {}
        errs = result.get("userErrors") or []
        if errs:
            raise UserError(field, errs)
        return result

    # ------------------------------------------------------------- queries

    def orders_updated_since(self, since: datetime | None, page_size: int = 15) -> Iterator[dict[str, Any]]:
        query = f"updated_at:>'{since.isoformat()}'" if since else "updated_at:>'1970-01-01T00:00:00Z'"
        after = None
        while True:
            data = self.execute("OrdersUpdatedSince", {"first": page_size, "after": after, "query": query},
                                expected_cost=2 + page_size * 56)
            conn = data["orders"]
            yield from conn["nodes"]
            if not conn["pageInfo"]["hasNextPage"]:
                return
            after = conn["pageInfo"]["endCursor"]

    def order(self, order_id: int) -> dict[str, Any] | None:
        return self.execute("OrderById", {"id": f"gid://shopify/Order/{order_id}"})["order"]
