"""What SOP 4 does with an address verdict, by policy (POLICY.md, address validation)."""

from __future__ import annotations

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
