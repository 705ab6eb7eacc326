"""What SOP 4 does with an address verdict, by policy (POLICY.md, address validation)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from domain.address import AddressVerdict
from domain.policy import Policy
from domain.vocab import STAGES


@dataclass(frozen=True)
class AddressOutcome:
    action: Literal["accept", "hold_and_ask_customer", "approval"]
    rule: str
    reasons: tuple[str, ...]


def address_outcome(verdict: AddressVerdict, policy: Policy, stage: str, carrier: str | None) -> AddressOutcome:
    """`valid` needs nothing; a PO box is fine for carriers that deliver there; otherwise hold and
    give the customer the correction window, except from `label_created` on, where nothing changes
    automatically and a person (the policy's role) decides."""
    rules = policy.address
    if verdict.verdict == "valid":
        return AddressOutcome("accept", "address.valid", ("no reason applies",))
    if (set(verdict.reasons) == {"po_box"} and carrier
            and carrier.lower() in {c.lower() for c in rules.po_box_carriers}):
        return AddressOutcome("accept", "address.po_box_carriers", (f"{carrier} delivers to PO boxes",))
    late = stage in STAGES and STAGES.index(stage) >= STAGES.index(rules.no_automatic_change_from_stage)
    if late or stage in ("cancelled", "returned"):
        return AddressOutcome("approval", "address.no_automatic_change_from_stage",
                              (f"{verdict.verdict}: {', '.join(verdict.reasons)}", f"order is {stage}",
                               f"approval ({rules.timeout_role})"))
    return AddressOutcome("hold_and_ask_customer", "address.review_or_invalid",
                          (f"{verdict.verdict}: {', '.join(verdict.reasons)}",
                           f"hold {rules.hold_handle}, customer window {rules.correction_window_hours:g} h"))


REVIEW_FIELDS = ("name", "address1", "address2", "city", "province_code", "zip", "country_code")


def review_key(address: dict | None) -> str:
    """A short key for the address under review: the same address gives the same key (a duplicate
    trigger finds the review it opened), an edited address a new one."""
    a = address if isinstance(address, dict) else {}
    text = "\x1f".join(" ".join(str(a.get(f) or "").split()).casefold() for f in REVIEW_FIELDS)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def carrier_of(shipping_line: dict | None, policy: Policy) -> str | None:
    """The carrier of the order's shipping line as the policy names carriers (`usps` in
    `usps_priority`, `USPS Ground Advantage` or a `usps` carrier identifier); None when unknown."""
    line = shipping_line or {}
    words = set(re.split(r"[^a-z0-9]+", " ".join(str(line.get(k) or "") for k in
                                                 ("carrier", "carrier_identifier", "carrierIdentifier", "source",
                                                  "code", "title")).lower()))
    return next((c for c in policy.address.po_box_carriers if c.lower() in words), None)


@dataclass(frozen=True)
class CorrectionCheck:
    accepted: bool
    reasons: tuple[str, ...]


def check_correction(verdict: AddressVerdict, policy: Policy, carrier: str | None,
                     country_code: str | None) -> CorrectionCheck:
    """A customer's correction is applied only when it would be accepted as a new order's address
    would (valid, or a PO box for a carrier that delivers there) and stays in the same country
    (another country is another market, another shipping rate: a person decides that)."""
    if country_code and (verdict.normalized.get("country_code") or "").upper() != country_code.upper():
        return CorrectionCheck(False, ("the country cannot be changed here",))
    out = address_outcome(verdict, policy, "unfulfilled", carrier)
    if out.action == "accept":
        return CorrectionCheck(True, out.reasons)
    return CorrectionCheck(False, verdict.reasons)



def with_verification(verdict: AddressVerdict, result: dict | None) -> AddressVerdict:
    """An offline verdict with the online verifier's delivery-point answer folded in: a building
    that needs a unit (`dpv` D) adds `missing_unit`; review-level codes of our vocabulary that the
    verifier names are added too (anything else it says is ignored). No answer (verifier off or
    failed) or an already invalid verdict: the verdict as it is."""
    from dataclasses import replace

    from domain.address import REVIEW

    if not isinstance(result, dict) or verdict.verdict == "invalid":
        return verdict
    extra = ["missing_unit"] if result.get("dpv") == "D" else []
    extra += [r for r in result.get("reasons") or [] if isinstance(r, str) and r in REVIEW]
    reasons = tuple(dict.fromkeys([*verdict.reasons, *extra]))
    if reasons == verdict.reasons:
        return verdict
    return replace(verdict, verdict="review", reasons=reasons)
