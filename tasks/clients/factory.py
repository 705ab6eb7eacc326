"""Clients built from settings at call time (never at import)."""

from __future__ import annotations

import ssl
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import httpx

from config.settings import Settings
from tasks.clients.helpdesk import HelpdeskClient
from tasks.clients.mailer import Mailer
from tasks.clients.shopify import ShopifyClient
from tasks.clients.threepl import ThreePLClient
from tasks.clients.verifier import AddressVerifier


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context for every client, built on first use: building one loads the CA bundle
    (about 10 ms of CPU), and a flow run opens a client per effect."""
    return httpx.create_ssl_context()


def _http(seconds: float) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(seconds, connect=5.0), verify=_tls())


@contextmanager
def shopify_client(settings: Settings) -> Iterator[ShopifyClient]:
    with _http(30.0) as http:
        yield ShopifyClient(http, settings.graphql_url(), settings.shopify_access_token.get_secret_value(),
                            max_attempts=settings.shopify_max_attempts)


@contextmanager
def threepl_client(settings: Settings) -> Iterator[ThreePLClient]:
    with _http(15.0) as http:
        yield ThreePLClient(http, settings.threepl_base_url(), max_attempts=settings.threepl_max_attempts)


@contextmanager
def verifier_client(settings: Settings) -> Iterator[AddressVerifier | None]:
    """The online address verifier, or None when none is configured (the default)."""
    if not settings.address_verifier_url:
        yield None
        return
    with _http(10.0) as http:
        yield AddressVerifier(http, settings.address_verifier_url)


def mailer(settings: Settings) -> Mailer:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from, settings.smtp_username, password,
                  settings.smtp_starttls)


@contextmanager
def helpdesk_client(settings: Settings) -> Iterator[HelpdeskClient]:
    with _http(15.0) as http:
        yield HelpdeskClient(http, settings.helpdesk_base_url(), max_attempts=settings.threepl_max_attempts)
