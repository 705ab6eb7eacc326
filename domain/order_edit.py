"""SOP 2: what an order modification request gets, by policy (POLICY.md, order modification).

A request is checked first (bad input is refused with a clear error and changes nothing), then
classified (`address_change` touching only the unit line is `address_unit_change`, a quantity
change is a decrease or an increase, any edit of a bundle or kit line is `bundle_line_edit`),
tiered, and judged against the live stage and the edit window. `apply_if_valid` applies when the
result validates (address `valid`, stock available) and otherwise asks support. The always-approval
cases (regulated products, subscription renewals, risk `high`, payment review) turn an apply into
an approval by ops before `shipped`; a deny stays a deny.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from domain.policy import Policy
from domain.vocab import STAGES

KINDS = ("contact_change", "address_change", "shipping_method_change", "quantity_change", "variant_swap",
         "add_item", "remove_item")
BUNDLE_TAGS = {"bundle", "kit"}


@dataclass(frozen=True)
class Line:
    id: str  # Shopify line item gid
    sku: str
    quantity: int
    product_id: str | None = None
    product_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    id: str
    sku: str
    product_id: str
    product_tags: tuple[str, ...]
    available: int


@dataclass(frozen=True)
class EditFacts:
    stage: str
    placed_at: datetime
    lines: tuple[Line, ...]
    risk: str = "low"
    payment_review: bool = False
    order_type: str = "standard"
    cancelled: bool = False
    address: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)  # sku -> Variant for the skus the request names


@dataclass(frozen=True)
class EditDecision:
    outcome: Literal["apply", "approval", "deny", "refuse"]
    role: str | None
    hold: str | None
    rule: str
    edit_class: str | None
    tier: str | None
    reasons: tuple[str, ...]


def _refuse(error: str) -> EditDecision:
    return EditDecision("refuse", None, None, "bad_request", None, None, (error,))


def _line(facts: EditFacts, ref: Any) -> Line | None:
    return next((li for li in facts.lines if ref in (li.id, li.sku, li.id.rsplit("/", 1)[-1])), None)


def check_request(request: Any, facts: EditFacts) -> tuple[str | None, str | None]:
    """(edit class, None) for a request that can be judged, or (None, the error)."""
    if not isinstance(request, dict):
        return None, "a request is an object with a kind"
    kind = request.get("kind")
    if kind not in KINDS:
        return None, f"unknown request kind {kind!r}; known: {', '.join(KINDS)}"
    if facts.cancelled:
        return None, "the order is cancelled"
    if kind == "contact_change":
        if not (request.get("email") or request.get("phone")):
            return None, "a contact change needs an email or a phone"
        if request.get("email") and "@" not in str(request["email"]):
            return None, f"{request['email']!r} is not an email address"
        return "contact_change", None
    if kind == "address_change":
        new = request.get("address")
        if not isinstance(new, dict) or not new:
            return None, "an address change needs the new address"
        changed = {k for k, v in new.items() if str(v or "") != str(facts.address.get(k) or "")}
        if not changed:
            return None, "the new address is the same as the order's"
        return ("address_unit_change" if changed <= {"address2"} else "address_change"), None
    if kind == "shipping_method_change":
        if not str(request.get("shipping") or "").strip():
            return None, "a shipping method change needs the new method"
        return "shipping_method_change", None
    if kind == "add_item":
        v = facts.variants.get(request.get("sku"))
        qty = request.get("quantity", 1)
        if v is None:
            return None, f"unknown product variant {request.get('sku')!r}"
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            return None, f"quantity {qty!r} must be a whole number above 0"
        if qty > v.available:
            return None, f"only {v.available} of {v.sku} in stock, {qty} asked"
        return ("bundle_line_edit" if BUNDLE_TAGS & set(v.product_tags) else "add_item"), None
    line = _line(facts, request.get("line"))
    if line is None:
        return None, f"line item {request.get('line')!r} is not on the order"
    bundle = bool(BUNDLE_TAGS & set(line.product_tags))
    if kind == "remove_item":
        return ("bundle_line_edit" if bundle else "remove_item"), None
    if kind == "quantity_change":
        qty = request.get("quantity")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
            return None, f"quantity {qty!r} must be a whole number, 0 or more"
        if qty == line.quantity:
            return None, f"the line already has quantity {qty}"
        if qty > line.quantity:
            v = facts.variants.get(line.sku)
            if v is not None and qty - line.quantity > v.available:
                return None, f"only {v.available} more of {line.sku} in stock, {qty - line.quantity} asked"
        cls = "quantity_increase" if qty > line.quantity else ("remove_item" if qty == 0 else "quantity_decrease")
        return ("bundle_line_edit" if bundle else cls), None
    # variant_swap
    v = facts.variants.get(request.get("sku"))
    if v is None:
        return None, f"unknown product variant {request.get('sku')!r}"
    if line.product_id and v.product_id != line.product_id:
        return None, f"{v.sku} is a variant of another product than {line.sku}"
    if v.sku == line.sku:
        return None, f"the line is already {v.sku}"
    return ("bundle_line_edit" if bundle else "variant_swap"), None


def window_open(facts: EditFacts, policy: Policy, now: datetime) -> bool:
    rules = policy.order_edit
    before_close = facts.stage in STAGES and STAGES.index(facts.stage) < STAGES.index(rules.window_closes_at_stage)
    return before_close and now - facts.placed_at < timedelta(minutes=rules.window_minutes)


def _always_approval(request: dict, facts: EditFacts, policy: Policy) -> list[str]:
    a = policy.order_edit.always_approval
    if facts.stage not in STAGES or STAGES.index(facts.stage) >= STAGES.index(a.before_stage):
        return []
    why = []
    touched = [li for li in facts.lines if request.get("line") in (li.id, li.sku, li.id.rsplit("/", 1)[-1])]
    added = [facts.variants[request["sku"]]] if request.get("sku") in facts.variants else []
    tags = {t for li in touched for t in li.product_tags} | {t for v in added for t in v.product_tags}
    if set(a.product_tags) & tags:
        why.append(f"product tagged {', '.join(sorted(set(a.product_tags) & tags))}")
    if facts.order_type in a.order_types:
        why.append(f"{facts.order_type} order")
    if facts.risk in a.risk_levels:
        why.append(f"risk {facts.risk}")
    if a.payment_review and facts.payment_review:
        why.append("payment under review")
    return why


def decide_edit(request: Any, facts: EditFacts, policy: Policy, now: datetime,
                address_verdict: str | None = None) -> EditDecision:
    """apply / approval (role, hold) / deny / refuse, with the rule that decided and why."""
    edit_class, error = check_request(request, facts)
    if error:
        return _refuse(error)
    if address_verdict == "invalid":
        return _refuse("the new address fails validation")
    rules = policy.order_edit
    tier = rules.tier_of(edit_class)
    is_open = window_open(facts, policy, now)
    rule = next((r for r in rules.stage_rules if facts.stage in r.stages
                 and r.window in ("any", "open" if is_open else "closed")), None)
    if rule is None:
        return EditDecision("deny", None, None, "no_stage_rule", edit_class, tier,
                            (f"no edit is possible at stage {facts.stage}",))
    o = rule.by_class.get(edit_class) or rule.tiers[tier]
    reasons = [f"{edit_class} is {tier}", f"order is {facts.stage}, window {'open' if is_open else 'closed'}"]
    outcome, role, hold, name = o.outcome, o.role, o.hold, rule.name
    if outcome == "apply_if_valid":
        problems = []
        if edit_class in ("address_change", "address_unit_change") and address_verdict not in (None, "valid"):
            problems.append(f"the new address is {address_verdict}")
        if edit_class == "variant_swap":
            line, v = _line(facts, request.get("line")), facts.variants[request["sku"]]
            if v.available < line.quantity:
                problems.append(f"only {v.available} of {v.sku} in stock, {line.quantity} needed")
        if problems:
            outcome = "approval"
            reasons += problems
        else:
            outcome, role = "apply", None
            reasons.append("the result validates")
    always = _always_approval(request, facts, policy) if outcome != "deny" else []
    if always:
        a = policy.order_edit.always_approval
        rank = policy.approvals.rank
        if outcome == "apply" or rank.index(a.role) > rank.index(role):
            outcome, role, name = "approval", a.role, "always_approval"
            hold = hold or ("ac:hold:approval" if facts.stage in STAGES and STAGES.index(facts.stage)
                            >= STAGES.index(rules.window_closes_at_stage) else None)
        reasons += always
    reasons.append(f"{outcome}" + (f" ({role})" if outcome == "approval" else "") + f" by rule {name}")
    return EditDecision(outcome, role if outcome == "approval" else None, hold if outcome == "approval" else None,
                        name, edit_class, tier, tuple(reasons))
