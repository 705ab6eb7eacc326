"""Webhook deliveries as Shopify makes them: REST payloads, signed headers, retries with backoff.

A delivery that is not answered 2xx within 5 s is retried up to 8 times with growing gaps
(`retry_base` seconds doubled each time; scale it down for tests). Optional duplicate and
out-of-order rates make the intake prove its deduplication and stale-update guard.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from intake.hmac_sign import sign
from sandbox.clock import iso

log = logging.getLogger("aftercart.sandbox.webhooks")
TOPICS = (
    "orders/create", "orders/updated", "orders/edited", "orders/cancelled", "fulfillments/create",
    "fulfillments/update", "fulfillment_orders/placed_on_hold", "fulfillment_orders/hold_released",
)
MAX_RETRIES = 8


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    topic: str = field(compare=False)
    address: str = field(compare=False)
    body: bytes = field(compare=False)
    webhook_id: str = field(compare=False)
    event_id: str = field(compare=False)
    triggered_at: str = field(compare=False)
    attempt: int = field(default=0, compare=False)


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    duplicates_sent: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


class WebhookSender:
    def __init__(self, shop: str, secret: str, api_version: str = "2026-10", retry_base: float = 5.0,
                 duplicate_rate: float = 0.0, reorder_rate: float = 0.0, seed: int = 11, timeout: float = 5.0,
                 workers: int = 4):
        self.shop, self.secret, self.api_version = shop, secret, api_version
        self.retry_base, self.duplicate_rate, self.reorder_rate = retry_base, duplicate_rate, reorder_rate
        self.subscriptions: dict[str, set[str]] = {}
        self.stats = DeliveryStats()
        self._rnd = random.Random(seed)
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._inflight = 0
        self._client = httpx.Client(timeout=timeout)
        self._threads = [threading.Thread(target=self._run, name=f"webhooks-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def subscribe(self, topic: str, address: str) -> None:
        if topic not in TOPICS:
            raise ValueError(f"unknown webhook topic {topic!r}")
        self.subscriptions.setdefault(topic, set()).add(address)

    def publish(self, topic: str, payload: dict[str, Any], triggered_at) -> int:
        body = json.dumps(payload, separators=(",", ":")).encode()
        n = 0
        for address in sorted(self.subscriptions.get(topic, ())):
            job = _Job(due=time.monotonic(), seq=next(self._seq), topic=topic, address=address, body=body,
                       webhook_id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), triggered_at=iso(triggered_at))
            if self.reorder_rate and self._rnd.random() < self.reorder_rate:
                job.due += self._rnd.uniform(0.05, 0.5)  # arrives after later changes
            self._push(job)
            if self.duplicate_rate and self._rnd.random() < self.duplicate_rate:
                dup = _Job(due=job.due + 0.01, seq=next(self._seq), topic=topic, address=address, body=body,
                           webhook_id=job.webhook_id, event_id=job.event_id, triggered_at=job.triggered_at)
                self.stats.duplicates_sent += 1
                self._push(dup)
            n += 1
        return n

    def _push(self, job: _Job) -> None:
        with self._cv:
            heapq.heappush(self._heap, job)
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._heap) + self._inflight

    def wait_idle(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.pending() == 0:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=2)
        self._client.close()

    def headers(self, job: _Job) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": job.topic,
            "X-Shopify-Hmac-Sha256": sign(self.secret, job.body),
            "X-Shopify-Shop-Domain": self.shop,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": job.webhook_id,
            "X-Shopify-Event-Id": job.event_id,
            "X-Shopify-Triggered-At": job.triggered_at,
        }

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0].due > time.monotonic()):
                    wait = (self._heap[0].due - time.monotonic()) if self._heap else None
                    self._cv.wait(timeout=wait)
                if self._stop:
                    return
                job = heapq.heappop(self._heap)
                self._inflight += 1
            try:
                self._attempt(job)
            finally:
                with self._cv:
                    self._inflight -= 1

    def _attempt(self, job: _Job) -> None:
        self.stats.sent += 1
        status, error = None, None
        try:
            r = self._client.post(job.address, content=job.body, headers=self.headers(job))
            status = r.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self.stats.log.append({"topic": job.topic, "webhook_id": job.webhook_id, "attempt": job.attempt,
                               "status": status, "error": error})
        if len(self.stats.log) > 5000:
            del self.stats.log[:1000]
        if ok:
            self.stats.delivered += 1
            return
        self.stats.failed_attempts += 1
        if job.attempt >= MAX_RETRIES:
            self.stats.gave_up += 1
            log.warning("gave up on %s %s after %s retries", job.topic, job.webhook_id, MAX_RETRIES)
            return
        job.attempt += 1
        job.due = time.monotonic() + self.retry_base * (2 ** (job.attempt - 1))
        job.seq = next(self._seq)
        self._push(job)
