"""Clients built from settings at call time (never at import)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import httpx

from config.settings import Settings
from tasks.clients.helpdesk import HelpdeskClient
from tasks.clients.mailer import Mailer
from tasks.clients.shopify import ShopifyClient
from tasks.clients.threepl import ThreePLClient
from tasks.clients.verifier import AddressVerifier


@contextmanager
def shopify_client(settings: Settings) -> Iterator[ShopifyClient]:
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        yield ShopifyClient(http, settings.graphql_url(), settings.shopify_access_token.get_secret_value(),
                            max_attempts=settings.shopify_max_attempts)


@contextmanager
def threepl_client(settings: Settings) -> Iterator[ThreePLClient]:
    with httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        yield ThreePLClient(http, settings.threepl_base_url(), max_attempts=settings.threepl_max_attempts)


@contextmanager
def verifier_client(settings: Settings) -> Iterator[AddressVerifier | None]:
    """The online address verifier, or None when none is configured (the default)."""
    if not settings.address_verifier_url:
        yield None
        return
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
        yield AddressVerifier(http, settings.address_verifier_url)


def mailer(settings: Settings) -> Mailer:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from, settings.smtp_username, password,
                  settings.smtp_starttls)


@contextmanager
def helpdesk_client(settings: Settings) -> Iterator[HelpdeskClient]:
    with httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        yield HelpdeskClient(http, settings.helpdesk_base_url(), max_attempts=settings.threepl_max_attempts)
