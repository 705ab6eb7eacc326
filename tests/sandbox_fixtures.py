"""A sandbox served over loopback with clients pointed at it."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from sandbox.app import Sandbox, SandboxConfig, create_app
from tasks.clients.shopify import ShopifyClient
from tasks.clients.threepl import ThreePLClient
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
