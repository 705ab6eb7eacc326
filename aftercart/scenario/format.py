"""Read and check a scenario file (../shared/scenarios/README.md) before anything runs.

Every problem is reported with the file, where in it (`orders[2]`, `steps[5]`, `policy`) and
why: an unknown action or key, a missing field, a value outside its vocabulary, time going
backwards, a step naming an order that is never placed (or not placed yet), a policy override
the policy model refuses. A scenario that loads is one the runner can play.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from domain.vocab import ALL_STAGES, CHANNELS, ORDER_TYPES, RISK_LEVELS, SIGNALS, TEMPLATES

REQUEST_KINDS = ("address_change", "contact_change", "shipping_method_change", "quantity_change", "variant_swap",
                 "add_item", "remove_item", "cancel")
WAREHOUSE_STATUSES = ("released", "picking", "packed", "label_created", "shipped")
CARRIER_STATUSES = ("in_transit", "out_for_delivery", "delivered", "attempted_delivery", "failure", "delayed")
ADDRESS_KEYS = {"name", "first_name", "last_name", "company", "address1", "address2", "city", "province",
                "province_code", "zip", "country_code", "country", "phone"}
ORDER_KEYS = {"ref", "at", "customer", "shipping_address", "line_items", "tags", "gateway", "risk", "order_type",
              "shipping", "shipping_price", "tax", "currency", "note", "ships_on", "next_renewal", "attributes"}
CUSTOMER_KEYS = {"email", "locale", "phone", "tags", "chargebacks"}
LINE_KEYS = {"sku", "quantity", "price", "tags", "preorder"}
ORDER_EXPECT = {"stage", "holds", "tags_include", "tags_exclude", "messages_include", "messages_exclude",
                "messages_language", "pending_approvals", "pending_approval_roles", "cancelled", "refunded",
                "shipping_address", "line_items"}
TICKET_EXPECT = {"intent", "route", "duplicate_of", "urgency"}
KIND_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "address_change": ({"address"}, set()),
    "contact_change": (set(), {"email", "phone"}),
    "shipping_method_change": ({"shipping"}, set()),
    "quantity_change": ({"sku", "quantity"}, set()),
    "variant_swap": ({"sku", "to_sku"}, set()),
    "add_item": ({"sku", "quantity"}, {"price"}),
    "remove_item": ({"sku"}, set()),
    "cancel": (set(), {"reason"}),
}
ACTIONS: dict[str, tuple[set[str], set[str]]] = {  # action -> (required, optional), besides at/action
    "customer_request": ({"order", "kind"}, {"channel"} | set().union(*(r | o for r, o in KIND_FIELDS.values()))),
    "warehouse": ({"order", "status"}, set()),
    "carrier": ({"order", "status"}, set()),
    "ticket": ({"ref", "channel", "text"}, {"order", "customer"}),
    "approve": ({"order", "approver"}, {"note", "decision", "address"}),
    "reject": ({"order", "approver"}, {"note", "decision"}),
    "stock": ({"sku", "available"}, set()),
    "tick": (set(), set()),
    "expect": (set(), {"order", "ticket"} | ORDER_EXPECT | TICKET_EXPECT),
}
_TIME = re.compile(r"^(?:\+(\d+)d\s+)?(\d{1,2}):(\d{2})$")


class ScenarioError(Exception):
    def __init__(self, path: str, where: str, reason: str):
        self.path, self.where, self.reason = path, where, reason
        super().__init__(f"{path}: {where}: {reason}" if where else f"{path}: {reason}")


@dataclass(frozen=True)
class OrderSpec:
    ref: str
    at: datetime
    data: dict[str, Any]  # the sandbox's order fields (customer, shipping_address, line_items...)


@dataclass(frozen=True)
class Step:
    where: str  # "steps[3]" (1-based, in file order)
    at: datetime
    action: str
    fields: dict[str, Any]


@dataclass
class Scenario:
    path: str
    name: str
    story: str
    start: datetime
    policy: dict[str, Any]
    orders: dict[str, OrderSpec]
    steps: list[Step]
    timeline: list[OrderSpec | Step] = field(default_factory=list)  # orders and steps by time


def parse_time(value: Any, start: datetime) -> datetime:
    """'HH:MM' on the start day, '+Nd HH:MM' N days on (in the start's offset), or a full timestamp."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no UTC offset")
        return value
    m = _TIME.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a time: write \"HH:MM\", \"+1d HH:MM\" or a timestamp with an offset")
    days, hh, mm = int(m.group(1) or 0), int(m.group(2)), int(m.group(3))
    if hh > 23 or mm > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return start.replace(hour=hh, minute=mm, second=0, microsecond=0) + timedelta(days=days)


def load(path: str | Path) -> Scenario:
    p = Path(path)
    src = str(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(src, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(src, "", f"cannot read the file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(src, "", f"not valid TOML: {exc}") from None
    return check(data, src)


def check(data: dict[str, Any], src: str = "<scenario>") -> Scenario:
    def bad(where: str, reason: str) -> ScenarioError:
        return ScenarioError(src, where, reason)

    _keys(data, {"name", "story", "start"}, {"policy", "orders", "steps"}, "", bad)
    if not isinstance(data["start"], datetime) or data["start"].tzinfo is None:
        raise bad("start", "must be a timestamp with a UTC offset, e.g. 2026-11-27T09:00:00-05:00")
    for k in ("name", "story"):
        if not isinstance(data[k], str) or not data[k].strip():
            raise bad(k, "must be a non-empty string")
    start = data["start"]
    policy = data.get("policy") or {}
    if not isinstance(policy, dict):
        raise bad("policy", "must be a table of policy keys")
    if policy:
        from config.policy_loader import PolicyError, load_policy

        try:
            load_policy(overrides=policy)
        except PolicyError as exc:
            raise bad("policy", "; ".join(f"policy.{p.path}: {p.reason}" for p in exc.problems)) from None
    orders: dict[str, OrderSpec] = {}
    for i, o in enumerate(_table_list(data.get("orders", []), "orders", bad), 1):
        where = f"orders[{i}]"
        _keys(o, {"ref", "at", "customer", "shipping_address", "line_items"}, ORDER_KEYS - {"ref", "at"}, where, bad)
        ref = str(o["ref"])
        if ref in orders:
            raise bad(where, f"order ref {ref!r} is used twice")
        orders[ref] = OrderSpec(ref, _at(o["at"], start, where, bad), _order_data(o, where, bad))
    steps: list[Step] = []
    last = start
    for i, s in enumerate(_table_list(data.get("steps", []), "steps", bad), 1):
        where = f"steps[{i}]"
        if not isinstance(s, dict) or "action" not in s or "at" not in s:
            raise bad(where, "a step needs `at` and `action`")
        action = s["action"]
        if action not in ACTIONS:
            raise bad(where, f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
        required, optional = ACTIONS[action]
        fields = {k: v for k, v in s.items() if k not in ("at", "action")}
        _keys(fields, required, optional, where, bad, what=f"a `{action}` step")
        at = _at(s["at"], start, where, bad)
        if at < last:
            raise bad(where, f"time goes backwards: {s['at']} ({at.isoformat()}) is before the previous step "
                             f"({last.isoformat()})")
        last = at
        _step_fields(action, fields, orders, at, where, bad)
        steps.append(Step(where, at, action, fields))
    if not steps:
        raise bad("steps", "a scenario needs at least one step (an `expect` is what makes it a test)")
    timeline: list[OrderSpec | Step] = sorted([*orders.values(), *steps],
                                               key=lambda e: (e.at, 0 if isinstance(e, OrderSpec) else 1))
    return Scenario(src, data["name"], data["story"], start, policy, orders, steps, timeline)


def _table_list(value: Any, name: str, bad) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise bad(name, f"must be an array of tables ([[{name}]])")
    return value


def _keys(d: Any, required: set[str], optional: set[str], where: str, bad, what: str = "") -> None:
    if not isinstance(d, dict):
        raise bad(where, "must be a table")
    missing = sorted(required - d.keys())
    if missing:
        raise bad(where, f"{what or 'this'} needs {', '.join(missing)}")
    unknown = sorted(d.keys() - required - optional)
    if unknown:
        raise bad(where, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                         f"{' for ' + what if what else ''}; known: {', '.join(sorted(required | optional))}")


def _at(value: Any, start: datetime, where: str, bad) -> datetime:
    try:
        at = parse_time(value, start)
    except ValueError as exc:
        raise bad(f"{where}.at", str(exc)) from None
    if at < start:
        raise bad(f"{where}.at", f"{value} is before the scenario's start ({start.isoformat()})")
    return at


def _order_data(o: dict[str, Any], where: str, bad) -> dict[str, Any]:
    _keys(o["customer"], {"email"}, CUSTOMER_KEYS - {"email"}, f"{where}.customer", bad)
    _keys(o["shipping_address"], set(), ADDRESS_KEYS, f"{where}.shipping_address", bad)
    lines = o["line_items"]
    if not isinstance(lines, list) or not lines:
        raise bad(f"{where}.line_items", "must list at least one line ({ sku, quantity, price })")
    for j, li in enumerate(lines, 1):
        _keys(li, {"sku"}, LINE_KEYS - {"sku"}, f"{where}.line_items[{j}]", bad)
        if not isinstance(li.get("quantity", 1), int) or li.get("quantity", 1) < 1:
            raise bad(f"{where}.line_items[{j}].quantity", "must be a whole number of at least 1")
        _money(li.get("price", "10.00"), f"{where}.line_items[{j}].price", bad)
    checks = {"risk": RISK_LEVELS, "order_type": ORDER_TYPES, "shipping": ("standard", "express")}
    for k, allowed in checks.items():
        if k in o and o[k] not in allowed:
            raise bad(f"{where}.{k}", f"{o[k]!r} is not one of {', '.join(sorted(allowed))}")
    for k in ("shipping_price", "tax"):
        if k in o:
            _money(o[k], f"{where}.{k}", bad)
    tags = o.get("tags", [])
    if not isinstance(tags, list):
        raise bad(f"{where}.tags", "must be a list of strings")
    return {k: v for k, v in o.items() if k not in ("ref", "at")}


def _money(v: Any, where: str, bad) -> None:
    if not re.fullmatch(r"\d+(\.\d{1,2})?", str(v)):
        raise bad(where, f"{v!r} is not an amount like \"18.00\"")


def _step_fields(action: str, f: dict[str, Any], orders: dict[str, OrderSpec], at: datetime, where: str,
                 bad) -> None:
    ref = f.get("order")
    if ref is not None:
        if ref not in orders:
            raise bad(where, f"order {ref!r} is never placed; the file's orders are {', '.join(orders) or 'none'}")
        if orders[ref].at > at:
            raise bad(where, f"order {ref!r} is placed at {orders[ref].at:%H:%M}, after this step")

    def one_of(key: str, allowed) -> None:
        if f.get(key) not in allowed:
            raise bad(f"{where}.{key}", f"{f.get(key)!r} is not one of {', '.join(sorted(allowed))}")

    if action == "customer_request":
        one_of("kind", REQUEST_KINDS)
        f.setdefault("channel", "self_service")
        one_of("channel", CHANNELS)
        required, optional = KIND_FIELDS[f["kind"]]
        _keys({k: v for k, v in f.items() if k not in ("order", "kind", "channel")}, required, optional, where, bad,
              what=f"a `{f['kind']}` request")
        if f["kind"] == "contact_change" and not ({"email", "phone"} & f.keys()):
            raise bad(where, "a `contact_change` request needs email or phone")
        if f["kind"] == "address_change":
            _keys(f["address"], set(), ADDRESS_KEYS, f"{where}.address", bad)
        if "quantity" in f and (not isinstance(f["quantity"], int) or f["quantity"] < 0):
            raise bad(f"{where}.quantity", "must be a whole number (0 removes the line)")
    elif action == "warehouse":
        one_of("status", WAREHOUSE_STATUSES)
    elif action == "carrier":
        one_of("status", CARRIER_STATUSES)
    elif action == "ticket":
        one_of("channel", CHANNELS)
    elif action in ("approve", "reject"):
        if "address" in f:
            _keys(f["address"], set(), ADDRESS_KEYS, f"{where}.address", bad)
    elif action == "stock":
        if not isinstance(f["available"], int) or f["available"] < 0:
            raise bad(f"{where}.available", "must be a whole number of at least 0")
    elif action == "expect":
        _expect_fields(f, where, bad)


def _expect_fields(f: dict[str, Any], where: str, bad) -> None:
    if ("order" in f) == ("ticket" in f):
        raise bad(where, "an `expect` step names either `order` or `ticket`")
    keys = set(f) - {"order", "ticket"}
    if not keys:
        raise bad(where, "an `expect` step needs at least one expectation key")
    if "ticket" in f:
        raise bad(where, f"ticket expectations ({', '.join(sorted(keys))}) need ticket triage (SOP 6), which "
                         "aftercart does not have yet; the `ticket` step records the ticket on its order")
    wrong = sorted(keys & TICKET_EXPECT)
    if wrong:
        raise bad(where, f"{', '.join(wrong)} are expectations for a ticket, not an order")
    for k in ("holds", "tags_include", "tags_exclude"):
        if k in f:
            _str_list(f[k], f"{where}.{k}", bad)
            unknown = [t for t in f[k] if t.startswith("ac:") and t not in SIGNALS]
            if unknown:
                raise bad(f"{where}.{k}", f"{', '.join(unknown)} not in DESIGN.md's signals")
    for k in ("messages_include", "messages_exclude"):
        if k in f:
            _str_list(f[k], f"{where}.{k}", bad)
            unknown = [t for t in f[k] if t not in TEMPLATES]
            if unknown:
                raise bad(f"{where}.{k}", f"{', '.join(unknown)} not template ids of DESIGN.md")
    if "stage" in f and f["stage"] not in ALL_STAGES:
        raise bad(f"{where}.stage", f"{f['stage']!r} is not a stage of DESIGN.md")
    if "pending_approvals" in f and (not isinstance(f["pending_approvals"], int) or f["pending_approvals"] < 0):
        raise bad(f"{where}.pending_approvals", "must be a count")
    if "pending_approval_roles" in f:
        _str_list(f["pending_approval_roles"], f"{where}.pending_approval_roles", bad)
    if "cancelled" in f and not isinstance(f["cancelled"], bool):
        raise bad(f"{where}.cancelled", "must be true or false")
    if "refunded" in f:
        _money(f["refunded"], f"{where}.refunded", bad)
    if "shipping_address" in f:
        _keys(f["shipping_address"], set(), ADDRESS_KEYS, f"{where}.shipping_address", bad)
    if "line_items" in f:
        items = f["line_items"]
        if not isinstance(items, list) or not all(isinstance(li, dict) and set(li) == {"sku", "quantity"}
                                                  for li in items):
            raise bad(f"{where}.line_items", "must be a list of { sku, quantity }")
    if "messages_language" in f and not isinstance(f["messages_language"], str):
        raise bad(f"{where}.messages_language", "must be a language code such as \"fr\"")


def _str_list(v: Any, where: str, bad) -> None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise bad(where, "must be a list of strings")
