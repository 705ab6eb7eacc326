"""The sandbox's online address verifier: delivery-point answers for a few known buildings.

High-rises in its table need a unit (`dpv` D when address2 has none); every other address with
a house number is a confirmed delivery point (Y). It stands in for a commercial verifier so the
optional online check can be tried and tested without sending addresses anywhere.
"""

from __future__ import annotations

import re
from typing import Any

# (street line in upper case without punctuation, ZIP): buildings that need a unit number
HIGH_RISES = {
    ("405 LEXINGTON AVE", "10174"),   # Chrysler Building, New York
    ("350 5TH AVE", "10118"),         # Empire State Building, New York
    ("875 N MICHIGAN AVE", "60611"),  # 875 North Michigan Avenue, Chicago
    ("1 WORLD TRADE CTR", "10007"),
}
_UNIT = re.compile(r"\d")
_ABBREV = {"AVENUE": "AVE", "STREET": "ST", "NORTH": "N", "CENTER": "CTR", "FIFTH": "5TH"}


def _street(line: str) -> str:
    words = re.sub(r"[^A-Z0-9 ]", " ", line.upper()).split()
    return " ".join(_ABBREV.get(w, w) for w in words)


def verify_one(a: Any) -> dict[str, Any]:
    if not isinstance(a, dict):
        return {"deliverable": False, "dpv": "N", "reasons": []}
    street = _street(str(a.get("address1") or ""))
    zip5 = str(a.get("zip") or "")[:5]
    if (street, zip5) in HIGH_RISES and not _UNIT.search(str(a.get("address2") or "")):
        return {"deliverable": False, "dpv": "D", "reasons": ["missing_unit"]}
    return {"deliverable": True, "dpv": "Y", "reasons": []}


def verify(body: dict[str, Any]) -> dict[str, Any]:
    addresses = body.get("addresses")
    if not isinstance(addresses, list) or len(addresses) > 1000:
        raise ValueError("addresses must be a list of at most 1000 addresses")
    return {"results": [verify_one(a) for a in addresses]}
