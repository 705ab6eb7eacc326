"""SOP 4's decision: an address's verdict, reason codes, normalised form and safe suggestions.

The contract is ADDRESS-REASONS.md. Pure: offline reference data only, no IO beyond reading the
data the libraries ship. Nothing in any input string can raise out of `check_address`.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from domain.address_reference import CountryRules, city_key, country_rules, us_zip_table

FIELDS = ("name", "address1", "address2", "city", "province_code", "zip", "country_code")
INVALID = {"missing_field", "bad_country", "postal_code_format", "zip_not_found", "zip_state_mismatch",
           "bad_subdivision", "invalid_characters", "line_too_long", "unparseable_address"}
REVIEW = {"city_zip_mismatch", "subdivision_typo", "missing_unit", "po_box", "military"}
MILITARY_STATES = {"AA", "AE", "AP"}
_PO_BOX = re.compile(r"\b(?:p\s*\.?\s*o\s*\.?\s*box|post\s+office\s+box|pob)\b", re.IGNORECASE)
_UNIT_WORDS = r"(?:apt|apartment|suite|ste|unit|room|rm|fl|floor|bldg|building|#)"
_BARE_UNIT = re.compile(rf"^\s*{_UNIT_WORDS}\.?\s*#?\s*$", re.IGNORECASE)
_TRAILING_UNIT = re.compile(rf"(?:^|\s){_UNIT_WORDS}\.?\s*#?\s*$", re.IGNORECASE)
_SQL = re.compile(r"(?:\b(?:drop|delete|insert|update|select|union|alter|truncate)\b.*\b(?:table|from|into|set|"
                  r"select|database)\b|--|;\s*$|'\s*or\s*'?\d|\bor\s+1\s*=\s*1)", re.IGNORECASE)
_HTML = re.compile(r"<\s*/?\s*[a-z!][^>]*>|javascript:|&#\d+;", re.IGNORECASE)
_MILITARY_CITY = {"APO", "FPO", "DPO"}


@dataclass(frozen=True)
class AddressVerdict:
    verdict: str  # valid | review | invalid
    reasons: tuple[str, ...]
    normalized: dict[str, str]
    suggestions: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "\x00"  # any other type is not an address field: judged as invalid characters


def _bad_char(ch: str) -> bool:
    cp = ord(ch)
    cat = unicodedata.category(ch)
    if cat in ("Cc", "Cf", "Cs", "Co", "Cn") or cp == 0xFFFD:
        return True
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or cp in (0xFE0F, 0x200D, 0x20E3) or 0xE0000 <= cp <= 0xE007F:
        return True
    return False


_ASCII_BAD = re.compile(r"[\x00-\x1f\x7f]")


def _has_bad_char(s: str) -> bool:
    if s.isascii():  # the common case, one regex pass
        return bool(_ASCII_BAD.search(s))
    return any(_bad_char(ch) for ch in s)


def _looks_like_code(s: str) -> bool:
    return bool(_SQL.search(s) or _HTML.search(s))


_SPACES = re.compile(r"\s+")
_WORDLIKE = re.compile(r"[^\W_]")
_WORDLIKE_OR_HASH = re.compile(r"[^\W_#]")
_STARTS_WITH_NUMBER = re.compile(r"^\s*\d")


def _clean(s: str) -> str:
    return _SPACES.sub(" ", s).strip()


def check_address(address: Any) -> AddressVerdict:
    """Judge one Shopify-shaped shipping address (fields of ADDRESS-REASONS.md)."""
    try:
        return _check(address)
    except Exception as exc:  # the contract: nothing escapes; an unforeseen input is not deliverable
        return AddressVerdict("invalid", ("unparseable_address",), {}, {"error": type(exc).__name__})


def _check(address: Any) -> AddressVerdict:
    reasons: list[tuple[str, str]] = []  # (code, level)
    suggestions: dict[str, Any] = {}
    raw = address if isinstance(address, dict) else {}
    a = {f: _text(raw.get(f)) for f in FIELDS}

    def add(code: str, level: str | None = None) -> None:
        lvl = level or ("invalid" if code in INVALID else "review")
        if (code, lvl) not in reasons:
            reasons.append((code, lvl))

    for f in FIELDS:
        if _has_bad_char(a[f]):
            add("invalid_characters")
        if len(a[f]) > 255:
            add("line_too_long")
    a = {f: _clean(v) for f, v in a.items()}
    cc = a["country_code"].upper()
    for f in ("name", "address1", "country_code"):
        if not a[f]:
            add("missing_field")
    rules: CountryRules | None = None
    if cc:
        rules = country_rules(cc)
        if rules is None:
            add("bad_country")
    normalized = {f: a[f] for f in FIELDS}
    normalized["country_code"] = cc
    if rules is not None:
        if "C" in rules.require and not a["city"]:
            add("missing_field")
        if "Z" in rules.require and not a["zip"]:
            add("missing_field")
        if "S" in rules.require and rules.subdivisions and not a["province_code"]:
            add("missing_field")
        postal = a["zip"].upper()
        postal_ok = True
        if postal:
            if rules.zip is not None and not rules.zip.match(postal):
                add("postal_code_format")
                postal_ok = False
            normalized["zip"] = postal
        sub = None
        if a["province_code"] and rules.subdivisions:
            sub = rules.subdivision(a["province_code"])
            if sub is None:
                guess = _typo(rules, a["province_code"])
                if guess is not None:
                    add("subdivision_typo")
                    suggestions["province_code"] = guess.code
                    sub = guess
                else:
                    add("bad_subdivision")
            if sub is not None:
                normalized["province_code"] = sub.code
        if cc == "US":
            _us_rules(a, postal if postal_ok else "", sub, add, suggestions, normalized)
        elif sub is not None and postal and postal_ok and sub.zip_prefix is not None and cc in ("CA", "AU", "BR", "IN", "JP"):
            if not sub.zip_prefix.match(postal):
                add("zip_state_mismatch")
    _street_rules(a, add)
    levels = {lvl for _, lvl in reasons}
    verdict = "invalid" if "invalid" in levels else "review" if reasons else "valid"
    return AddressVerdict(verdict, tuple(dict.fromkeys(code for code, _ in reasons)), normalized, suggestions)


def _typo(rules: CountryRules, value: str):
    labels = _typo_labels(rules.code)
    hits = difflib.get_close_matches(value.strip().lower(), list(labels), n=3, cutoff=0.8)
    found = {labels[h].code: labels[h] for h in hits}
    return next(iter(found.values())) if len(found) == 1 else None


@lru_cache(maxsize=None)
def _typo_labels(cc: str) -> dict:
    """The subdivision names long enough to be misspelled, built once per country."""
    return {n: s for s in country_rules(cc).subdivisions for n in s.names if len(n) > 3}


def _us_rules(a, postal, sub, add, suggestions, normalized) -> None:
    state = sub.code if sub is not None else None
    if state in MILITARY_STATES or a["city"].upper() in _MILITARY_CITY:
        add("military")
    if not postal:
        return
    z = us_zip_table().get(postal[:5])
    if z is None:
        add("zip_not_found")
        return
    if state is not None and z["state"] != state:
        if state in MILITARY_STATES or z["state"] in MILITARY_STATES or (state and z["state"]):
            add("zip_state_mismatch")
        return
    if a["city"] and city_key(a["city"]) not in z["cities"]:
        add("city_zip_mismatch")
        suggestions["city"] = [z["city"], *z["acceptable"]]
    if state is not None:
        _pub28(a, normalized)


def _pub28(a, normalized) -> None:
    """USPS Pub 28 form for US addresses (usaddress-scourgify); left as given when it cannot.

    Calls scourgify's string normaliser with the fields we already checked, skipping its dict
    front door, which re-validates and re-formats them (a fifth of the time of a verdict)."""
    try:
        from scourgify.normalize import normalize_addr_str

        out = normalize_addr_str(", ".join(x for x in (a["address1"], a["address2"]) if x), city=a["city"] or None,
                                 state=normalized["province_code"] or None, zipcode=normalized["zip"] or None)
    except Exception:  # scourgify refuses what it cannot parse; the street rules judge that
        return
    normalized.update({"address1": out.get("address_line_1") or a["address1"],
                       "address2": out.get("address_line_2") or "", "city": out.get("city") or a["city"]})


def _street_rules(a, add) -> None:
    line1, line2 = a["address1"], a["address2"]
    if line1 and (_looks_like_code(line1) or not _WORDLIKE.search(line1)):
        add("unparseable_address", "invalid")
    if line2 and (_looks_like_code(line2) or not _WORDLIKE_OR_HASH.search(line2) and not _BARE_UNIT.match(line2)):
        add("unparseable_address", "review")
    if _PO_BOX.search(line1) or _PO_BOX.search(line2):
        add("po_box")
    if (line2 and _BARE_UNIT.match(line2)) or (line1 and _TRAILING_UNIT.search(line1) and not _PO_BOX.search(line1)):
        add("missing_unit")
    if a["country_code"].upper() == "US" and line1 and not _PO_BOX.search(line1) and not _STARTS_WITH_NUMBER.match(line1):
        try:  # a US street line without a house number: does usaddress make sense of it?
            import usaddress

            usaddress.tag(line1)
        except Exception:  # usaddress refuses ambiguous input: a reason, never a crash
            add("unparseable_address", "invalid")
