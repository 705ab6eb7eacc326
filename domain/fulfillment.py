"""SOP 7: when an order goes to the warehouse (pure).

An order is released to the 3PL when nothing holds it, its edit window has closed, and it is not
routed to a person (ac:manual, wholesale and marketplace orders, per the policy). Only fulfillment
orders that are OPEN go: a preorder's SCHEDULED part waits for its date (a split shipment), a held
one waits for its hold to be released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from domain.policy import Policy


@dataclass(frozen=True)
class FulfillmentOrderFacts:
    id: str
    status: str  # Shopify's FulfillmentOrderStatus
    holds: tuple[str, ...] = ()  # hold handles
    lines: tuple[tuple[str, int], ...] = ()  # (sku, remaining quantity)


@dataclass(frozen=True)
class ReleaseFacts:
    order_id: int
    name: str
    created_at: datetime
    tags: tuple[str, ...]
    order_type: str
    cancelled: bool
    at_warehouse: bool
    fulfillment_orders: tuple[FulfillmentOrderFacts, ...]


@dataclass(frozen=True)
class ReleaseDecision:
    order_id: int
    action: Literal["release", "wait", "person", "skip"]
    reasons: tuple[str, ...]
    release: tuple[FulfillmentOrderFacts, ...] = field(default_factory=tuple)
    not_before: datetime | None = None

    @property
    def lines(self) -> list[dict]:
        """What the warehouse receives: the open fulfillment orders' lines, by sku."""
        qty: dict[str, int] = {}
        for fo in self.release:
            for sku, n in fo.lines:
                qty[sku] = qty.get(sku, 0) + n
        return [{"sku": s, "quantity": n} for s, n in sorted(qty.items()) if n > 0]


def decide_release(f: ReleaseFacts, policy: Policy, now: datetime) -> ReleaseDecision:
    rules = policy.fulfillment
    if f.cancelled:
        return ReleaseDecision(f.order_id, "skip", ("the order is cancelled",))
    if f.at_warehouse:
        return ReleaseDecision(f.order_id, "skip", ("the warehouse already has the order",))
    routed = [t for t in f.tags if t == "ac:manual"] + ([f"order type {f.order_type}"]
                                                         if f.order_type in rules.manual_order_types else [])
    if routed and rules.manual_routing != "release":
        return ReleaseDecision(f.order_id, "person", (f"{', '.join(routed)}: fulfillment.manual_routing = "
                                                      f"{rules.manual_routing}",))
    held = sorted({h for fo in f.fulfillment_orders for h in fo.holds}
                  | {t for t in f.tags if t.startswith("ac:hold:")})
    if held and rules.release_when_no_holds:
        return ReleaseDecision(f.order_id, "wait", (f"held: {', '.join(held)}",))
    if rules.release_after_edit_window:
        closes = f.created_at + timedelta(minutes=policy.order_edit.window_minutes)
        if now < closes:
            return ReleaseDecision(f.order_id, "wait", (f"the edit window is open until {closes.isoformat()}",),
                                   not_before=closes)
    ready = tuple(fo for fo in f.fulfillment_orders if fo.status == "OPEN" and any(n > 0 for _s, n in fo.lines))
    waiting = [fo.status.lower() for fo in f.fulfillment_orders if fo.status in ("SCHEDULED", "ON_HOLD")]
    if not ready:
        why = f"nothing open to fulfil ({', '.join(waiting) or 'no fulfillment order'})"
        return ReleaseDecision(f.order_id, "wait", (why,))
    reasons = ["no hold, edit window closed"] + ([f"split: {len(waiting)} fulfillment order(s) still {', '.join(waiting)}"]
                                                 if waiting else [])
    return ReleaseDecision(f.order_id, "release", tuple(reasons), ready)


# ------------------------------------------------------------------ one signal, three systems

@dataclass(frozen=True)
class SignalPlan:
    """What to change so the 3PL's flags and the helpdesk tickets carry the order's Shopify signals."""

    order_id: int
    signals: tuple[str, ...]
    flags_add: tuple[str, ...] = ()
    flags_remove: tuple[str, ...] = ()
    tickets: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = ()  # (ticket id, add, remove)

    @property
    def empty(self) -> bool:
        return not (self.flags_add or self.flags_remove or self.tickets)


def signals_of(tags) -> frozenset[str]:
    """The exception signals among tags or flags (DESIGN.md's vocabulary; anything else is left alone)."""
    from domain.vocab import SIGNALS

    return frozenset(t for t in tags or () if t in SIGNALS)


def mirror_signals(order_id: int, shopify_tags, warehouse_flags, tickets) -> SignalPlan:
    """Shopify's tags are the source: the 3PL order (when the warehouse has it) and every ticket of
    the order get exactly the same signals. `tickets`: [(ticket id, its tags)]."""
    target = signals_of(shopify_tags)
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    if warehouse_flags is not None:
        have = signals_of(warehouse_flags)
        add, remove = tuple(sorted(target - have)), tuple(sorted(have - target))
    fixes = []
    for tid, tags in tickets:
        have = signals_of(tags)
        if have != target:
            fixes.append((tid, tuple(sorted(target - have)), tuple(sorted(have - target))))
    return SignalPlan(order_id, tuple(sorted(target)), add, remove, tuple(fixes))


# ------------------------------------------------------------------ source of truth by stage

_WAREHOUSE_WORD = {"received": "released", "picking": "picking", "packed": "packed", "label_created": "label_created",
                   "shipped": "shipped"}


def owner_word(ours: str, warehouse_status: str | None, policy: Policy) -> tuple[str | None, str]:
    """Where the 3PL's word and ours disagree while the 3PL owns the order (policy
    `fulfillment.owner_by_stage`), the owner's word wins, even backwards (a new version sends a
    picking order back to `released`). Returns (the stage to record or None, why)."""
    theirs = _WAREHOUSE_WORD.get(str(warehouse_status or ""))
    if theirs is None or theirs == ours or ours in ("cancelled", "returned"):
        return None, "no disagreement"
    if ours == "unfulfilled":
        return None, "not a disagreement: the 3PL's event is on its way through the inbox"
    owners = policy.fulfillment.owner_by_stage
    if owners.get(ours) == "carrier" or ours == "shipped":
        return None, f"we hold {ours} (the carrier's word) over the 3PL's {warehouse_status}"
    if owners.get(theirs) != "3pl" and theirs != "shipped":
        return None, f"the 3PL's {warehouse_status} is not its to say"
    return theirs, f"{ours} -> {theirs}: the 3PL owns the order at {theirs} and says {warehouse_status}"
