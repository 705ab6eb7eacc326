"""Offline reference data, built once per process on first use (pycountry's lookups are slow)."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

import pycountry


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@lru_cache(maxsize=1)
def currency_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


@lru_cache(maxsize=1)
def timezone_names() -> frozenset[str]:
    """IANA zone names (zoneinfo walks the tz database's directory on every call)."""
    return frozenset(available_timezones())
