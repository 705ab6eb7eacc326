"""Benchmark: the webhook intake under a fixed rate of signed deliveries.

    python bench/intake.py [--rate 500] [--seconds 60] [--duplicates 0.1] [--no-prefect]

Starts a Prefect server (SQLite, temporary directory) and the intake service as `aftercart up`
runs it (`python -m aftercart.services intake`: SQLite store, a Prefect event per delivery), then a
load generator on loopback sends Shopify-shaped `orders/create` deliveries, HMAC-signed, at a fixed
rate, a share of them repeated with the same webhook id (Shopify's retries). It prints accepted/s,
p50/p99 acknowledgement time, the 5xx count, inbox rows against distinct webhook ids, the Prefect
server's "queue is full" warnings (dropped events), and the machine's core count.
Goals (issue 11): >= 500 deliveries/s, p99 < 100 ms, zero 5xx, inbox rows = distinct ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-webhook-secret"


def delivery(i: int) -> tuple[str, bytes]:
    """A realistic orders/create body (the sandbox's REST shape), unique per i."""
    oid = 7_000_000_000 + i
    body = {
        "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": f"#{100000 + i}",
        "email": f"c{i}@example.com", "created_at": "2026-11-27T09:00:00-05:00",
        "updated_at": f"2026-11-27T09:{i // 60 % 60:02d}:{i % 60:02d}-05:00", "customer_locale": "en",
        "tags": "", "currency": "USD", "total_price": "40.00", "financial_status": "paid", "fulfillment_status": None,
        "shipping_address": {"name": "Dana Wu", "address1": "405 Lexington Ave", "address2": "", "city": "New York",
                             "province_code": "NY", "zip": "10174", "country_code": "US"},
        "line_items": [{"id": oid + 1, "sku": "MUG", "title": "Mug", "quantity": 2, "price": "18.00"}],
        "shipping_lines": [{"code": "standard", "title": "Standard", "price": "4.00"}],
        "note_attributes": [{"name": "order_type", "value": "standard"}],
    }
    return f"bench-{i}", json.dumps(body).encode()


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> int:
    """One HTTP/1.1 request on a kept-alive connection; returns the status (the body is read and dropped)."""
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def load(url: str, rate: float, seconds: float, dup_share: float, seed: int = 7,
               connections: int = 64) -> dict:
    """Open-loop load: delivery n is due at start + n / rate, whether or not earlier ones were
    answered. A small HTTP/1.1 client on `connections` kept-alive sockets (httpx's pool spends
    time quadratic in its waiting requests and became the bottleneck near 300/s). Latency runs
    from the moment a delivery was due, so a client that falls behind shows in the figures."""
    from urllib.parse import urlsplit

    from intake.hmac_sign import sign

    rnd = random.Random(seed)
    total = int(rate * seconds)
    plan, sent = [], []
    for n in range(total):
        if sent and rnd.random() < dup_share:
            plan.append(rnd.choice(sent))  # a retry: the same webhook id and body
        else:
            plan.append(delivery(n))
            sent.append(plan[-1])
    u = urlsplit(url)
    requests = []
    for webhook_id, body in plan:
        head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nX-Shopify-Topic: orders/create\r\n"
                f"X-Shopify-Shop-Domain: bench.myshopify.com\r\nX-Shopify-Webhook-Id: {webhook_id}\r\n"
                f"X-Shopify-Hmac-Sha256: {sign(SECRET, body)}\r\nX-Shopify-Api-Version: 2026-10\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        requests.append((head, body))
    latencies: list[float] = []
    statuses: list[int] = []
    queue: asyncio.Queue = asyncio.Queue()
    start = time.perf_counter() + 0.2

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        try:
            while True:
                n = await queue.get()
                if n is None:
                    return
                due = start + n / rate
                head, body = requests[n]
                try:
                    statuses.append(await asyncio.wait_for(_post(reader, writer, head, body), 10))
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                    statuses.append(0)
                    writer.close()
                    reader, writer = await asyncio.open_connection(u.hostname, u.port)
                latencies.append(time.perf_counter() - due)
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(n)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed, "distinct": len(sent),
            "sent": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500.0, help="deliveries per second")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--duplicates", type=float, default=0.10, help="share of deliveries repeated (same webhook id)")
    ap.add_argument("--no-prefect", action="store_true", help="intake without Prefect events (isolates the store)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from bench import start_prefect
    from tests.helpers import free_port, wait_for as wait

    tmp = Path(tempfile.mkdtemp(prefix="aftercart-bench-intake-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
    procs: list[subprocess.Popen] = []
    server = server_log = None
    try:
        env = dict(base, PREFECT_SERVER_ANALYTICS_ENABLED="false", AFTERCART_DATA_DIR=str(tmp),
                   AFTERCART_WEBHOOK_SECRET=SECRET)
        if not args.no_prefect:  # as the other benchmarks and `aftercart up` start it (SQLite)
            server, api, server_log, _ = start_prefect(tmp, dict(base, PREFECT_SERVER_ANALYTICS_ENABLED="false"),
                                                       postgres=False)
            env["PREFECT_API_URL"] = api
        intake_port = free_port()
        env["AFTERCART_INTAKE_PORT"] = str(intake_port)
        if args.no_prefect:  # the same app, events off
            code = ("import uvicorn; from config.settings import load_settings; from intake.app import create_app; "
                    "from tasks.db.engine import migrate; s = load_settings(); u = s.resolved_database_url(); "
                    "migrate(u); uvicorn.run(create_app(u, s.webhook_secret.get_secret_value(), None), "
                    f"host='127.0.0.1', port={intake_port}, log_level='warning')")
            cmd = [sys.executable, "-c", code]
        else:
            cmd = [sys.executable, "-m", "aftercart.services", "intake"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp / "intake.log", "w"),
                                      stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{intake_port}"
        wait(lambda: httpx.get(f"{url}/health").status_code == 200, 60, "the intake service")
        print(f"cores: {os.cpu_count()}; intake on SQLite ({tmp / 'aftercart.db'}); Prefect events "
              f"{'off' if args.no_prefect else 'on'}; {args.rate:g} deliveries/s for {args.seconds:g} s, "
              f"{args.duplicates:.0%} repeated", flush=True)
        r = asyncio.run(load(f"{url}/webhooks/shopify", args.rate, args.seconds, args.duplicates))
        lat = sorted(r["latencies"])
        ok = sum(1 for s in r["statuses"] if s == 200)
        five = sum(1 for s in r["statuses"] if s >= 500 or s == 0)
        with sqlite3.connect(tmp / "aftercart.db") as c:
            rows = c.execute("select count(*), count(distinct webhook_id) from webhook_inbox").fetchone()
        drops = server_log.read_text(errors="replace").lower().count("queue is full") if server_log else 0
        print(f"sent            {r['sent']} in {r['elapsed']:.1f} s ({r['sent'] / r['elapsed']:.0f}/s offered)")
        print(f"accepted/s      {ok / r['elapsed']:.0f}  ({ok} answered 200)")
        print(f"ack p50 / p99   {statistics.median(lat) * 1000:.1f} ms / {lat[int(0.99 * (len(lat) - 1))] * 1000:.1f} ms"
              f"  (max {lat[-1] * 1000:.0f} ms)")
        print(f"5xx or no reply {five}")
        print(f"inbox rows      {rows[0]} for {r['distinct']} distinct webhook ids ({rows[1]} distinct stored)")
        print(f"Prefect 'queue is full' warnings: {drops}")
    finally:
        from bench import stop_prefect, stop_process

        for p in reversed(procs):
            stop_process(p)
        if server is not None:
            stop_prefect(server, None)


if __name__ == "__main__":
    main()
