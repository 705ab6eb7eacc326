"""Clients built from settings at call time (never at import)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import httpx

from config.settings import Settings
from tasks.clients.shopify import ShopifyClient


@contextmanager
def shopify_client(settings: Settings) -> Iterator[ShopifyClient]:
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        yield ShopifyClient(http, settings.graphql_url(), settings.shopify_access_token.get_secret_value())
