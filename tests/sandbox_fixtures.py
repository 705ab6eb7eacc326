"""A sandbox served over loopback with clients pointed at it, and orders set up in it and in our store."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
from sqlmodel import select

from sandbox.app import Sandbox, SandboxConfig, create_app
from tasks.clients.shopify import ShopifyClient
from tasks.clients.threepl import ThreePLClient
from tasks.db.engine import session
from tests.helpers import serve_app


@dataclass
class Served:
    sandbox: Sandbox
    url: str
    shopify: ShopifyClient
    threepl: ThreePLClient
    http: httpx.Client


@contextmanager
def served_sandbox(**config) -> Served:
    config.setdefault("access_token", "tok")
    config.setdefault("plan", "plus")
    sb = Sandbox(SandboxConfig(**config))
    sb.ops.cancel_delay = 0.02
    with serve_app(create_app(sb)) as url, httpx.Client(timeout=10) as http:
        shopify = ShopifyClient(http, f"{url}/admin/api/2026-10/graphql.json", "tok", backoff_base=0.01,
                                backoff_cap=0.5)
        yield Served(sb, url, shopify, ThreePLClient(http, url, backoff_base=0.01), http)


def place(sb: Sandbox, **over) -> int:
    data = {
        "customer": {"email": "dana@example.com", "locale": "en"},
        "shipping_address": {"name": "Dana Wu", "address1": "405 Lexington Ave", "address2": "", "city": "New York",
                             "province_code": "NY", "zip": "10174", "country_code": "US"},
        "line_items": [{"sku": "MUG", "quantity": 1, "price": "18.00"}, {"sku": "CAP", "quantity": 2, "price": "22.00"}],
    }
    data.update(over)
    return sb.world.create_order(data).id


# orders in the sandbox and in our store, as the SOP tests set them up


def pending_approval(url, oid, timeout=60):
    """The order's cancellation approval once its run is waiting (paused or suspended)."""
    from prefect.client.orchestration import get_client

    from tasks.db.models import Approval

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with session(url) as s:
            a = s.exec(select(Approval).where(Approval.order_id == oid, Approval.kind == "cancellation")).first()
        if a and a.flow_run_id and a.status == "pending":
            with get_client(sync_client=True) as c:
                state = c.read_flow_run(a.flow_run_id).state
            if state and state.is_paused():
                return a
        time.sleep(0.2)
    raise AssertionError("no approval waiting")


def stage_in_store(url, sb, oid, stage):
    """The order in our store at `stage`, as the drain would have recorded it."""
    from tasks.db.models import Order

    with session(url) as s:
        s.add(Order(id=oid, shop="sandbox.myshopify.com", name=sb.world.orders[oid].name, stage=stage,
                    shopify_updated_at=datetime.now(timezone.utc)))
        s.commit()


def at_the_warehouse(sb, url) -> int:
    """A new order the 3PL is picking (in its system and in our store)."""
    oid = place(sb)
    sb.threepl.receive({"order_id": oid, "lines": [{"sku": "MUG", "quantity": 1}], "address": {}, "flags": []})
    sb.threepl.advance(oid, "picking")
    stage_in_store(url, sb, oid, "picking")
    return oid


def templates_sent(sb, email):
    """The templates of the messages the sandbox mailbox holds for `email`, in order."""
    return [m.headers.get("X-Aftercart-Template") for m in sb.mailbox.find(to=email)]


def wait_cancelled(sb, oid, timeout: float = 10):
    """Whether the sandbox store cancels the order within `timeout` seconds (a cancel runs as a job)."""
    end = time.monotonic() + timeout
    while sb.world.orders[oid].cancelled_at is None and time.monotonic() < end:
        time.sleep(0.05)
    return sb.world.orders[oid].cancelled_at is not None
