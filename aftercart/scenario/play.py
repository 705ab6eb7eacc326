"""Play one scenario: place its orders and carry out its steps at their simulated times through
the real flows, then compare each `expect` with what the store, the sandbox and the mailbox show.

What each step does (../shared/scenarios/README.md):
- an order: placed in the sandbox store; its `orders/create` webhook reaches the intake, the
  drain judges it (address verdict, confirmation message) and starts any exception run;
- `customer_request`: a cancellation starts `cancellation-review`; an address fix while the order's
  address review waits for the customer is posted to the signed correction form (as the customer
  would); every other change starts `order-edit`; all through the channel the step names;
- `warehouse`: the 3PL takes the order (if it does not have it) and moves it forward, pushing
  each status to the intake; a held order cannot move (the step fails, as the 3PL answers 409);
- `carrier`: every parcel of the order still with the carrier gets the status;
- `ticket`: the ticket is recorded on its order (triage, SOP 6, is not built yet);
- `approve` / `reject`: the oldest pending approval of the order is answered through the same
  check as the Resume form and the CLI, and its waiting run resumed;
- `stock`: the store's available quantity of the SKU;
- `tick`: the scheduled flows as they run by that time: deadline sweep, fulfillment sync,
  customer messages (follow-ups), reconciliation.
After every step the world settles (see world.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timezone
from decimal import Decimal
from typing import Any

from aftercart.scenario.format import OrderSpec, Scenario, Step
from aftercart.scenario.world import StepError, World

_CHANNEL = {"self_service": "self_serve"}  # the flows' word for the customer's own pages
_APPROVE = ("approve", "ship_as_is")
_REJECT = ("reject", "keep_hold")


@dataclass
class Failure:
    key: str
    expected: Any
    seen: Any


@dataclass
class StepResult:
    where: str
    at: str
    action: str
    subject: str
    failures: list[Failure] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.error is None


@dataclass
class ScenarioResult:
    path: str
    name: str
    story: str
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None  # the world could not be built or a step could not be carried out
    seconds: float = 0.0
    decision_log: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # order ref -> its decisions

    @property
    def ok(self) -> bool:
        return self.error is None and all(s.ok for s in self.steps)


def play(sc: Scenario, policy_file) -> ScenarioResult:
    started = time.monotonic()
    result = ScenarioResult(sc.path, sc.name, sc.story)
    try:
        with World(sc.start, policy_file) as world:
            Player(sc, world, result).run()
    except StepError as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug of ours, not of the scenario: reported with where it happened
        import traceback

        result.error = f"internal error: {type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
    result.seconds = time.monotonic() - started
    return result


class Player:
    def __init__(self, sc: Scenario, world: World, result: ScenarioResult):
        self.sc, self.world, self.result = sc, world, result
        self.ids: dict[str, int] = {}

    @property
    def sb(self):
        return self.world.sandbox

    def run(self) -> None:
        for event in self.sc.timeline:
            self.world.clock.set(event.at)
            if isinstance(event, OrderSpec):
                self.place(event)
                self.world.settle()
                continue
            step = StepResult(event.where, event.at.isoformat(), event.action,
                              event.fields.get("order") or event.fields.get("ticket") or event.fields.get("sku") or "")
            self.result.steps.append(step)
            try:
                if event.action == "expect":
                    step.failures = self.expect(event)
                else:
                    getattr(self, event.action)(event)
                    self.world.settle()
            except StepError as exc:
                step.error = str(exc)
            if not step.ok:
                self.note_decisions(event)
            if step.error:
                return  # the world is not what later steps assume; they are not played

    def note_decisions(self, step: Step) -> None:
        from sqlmodel import select

        from tasks.db.engine import session
        from tasks.db.models import Decision

        ref = step.fields.get("order")
        if ref is None or ref not in self.ids or ref in self.result.decision_log:
            return
        with session(self.world.database_url) as s:
            rows = s.exec(select(Decision).where(Decision.subject == f"order:{self.ids[ref]}")
                          .order_by(Decision.id)).all()
        self.result.decision_log[ref] = [{"at": f"{r.decided_at:%Y-%m-%d %H:%M}", "sop": r.sop, "outcome": r.outcome,
                                          "rule": r.rule or "-", "reasons": "; ".join(r.reasons or [])} for r in rows]

    # ------------------------------------------------------------------ the world acts

    def place(self, o: OrderSpec) -> None:
        try:
            self.ids[o.ref] = self.sb.world.create_order(o.data).id
        except (ValueError, KeyError) as exc:
            raise StepError(f"order {o.ref!r} could not be placed: {exc}") from None

    def order(self, step: Step):
        return self.sb.world.orders[self.ids[step.fields["order"]]]

    def customer_request(self, step: Step) -> None:
        from tasks.db import address_store

        f, o = step.fields, self.order(step)
        channel = _CHANNEL.get(f["channel"], f["channel"])
        if f["kind"] == "cancel":
            from flows.cancellation_review import cancellation_review

            self.world.runs.start(f"cancellation-review {o.name}", cancellation_review, o.id, channel,
                                  f.get("reason", ""), order_name=o.name)
            return
        review = address_store.active_review(self.world.database_url, o.id)
        if f["kind"] == "address_change" and review is not None and review.status == "waiting":
            return self.correct_address(review, f["address"])
        from flows.order_edit import order_edit

        new_sku = {"add_item": f.get("sku"), "variant_swap": f.get("to_sku")}.get(f["kind"])
        if new_sku:  # a SKU the catalogue lacks is created with 100 available (the format's rule)
            self.sb.world.ensure_sku(new_sku, str(f.get("price", "10.00")))
        self.world.runs.start(f"order-edit {o.name}", order_edit, o.id, edit_request(f), channel, order_name=o.name)

    def correct_address(self, review, change: dict[str, Any]) -> None:
        import httpx

        from intake.corrections import FORM_FIELDS
        from intake.links import correction_link
        from aftercart.scenario.world import LINK_SECRET

        key = review.id.split(":", 2)[2]
        address = {**review.address, **change}
        form = {k: str(address.get(k) or "") for k in FORM_FIELDS}
        r = httpx.post(correction_link(self.world.intake_url, LINK_SECRET, review.order_id, key), data=form,
                       timeout=30)
        if r.status_code not in (200, 422):  # 422: the form refused the correction (the run keeps waiting)
            raise StepError(f"the correction form answered {r.status_code}: {r.text[:200]}")

    def warehouse(self, step: Step) -> None:
        from sandbox.threepl import FLOW, ThreePLError

        o, target = self.order(step), step.fields["status"]
        target = "received" if target == "released" else target
        tpl = self.sb.threepl
        try:
            w = tpl.orders.get(o.id)
            if w is None:
                ready = {i for fo in o.fulfillment_orders if fo.status != "SCHEDULED" for i in fo.line_item_ids}
                tpl.receive({"order_id": o.id, "address": o.shipping_address,  # what a release sends: not preorders
                             "lines": [{"sku": li.sku, "quantity": li.quantity} for li in o.line_items
                                       if li.quantity and li.id in ready],
                             "flags": sorted(t for t in o.tags if t.startswith("ac:hold:"))})
                w = tpl.orders[o.id]
            if w.status == target:
                return
            if w.status not in FLOW or FLOW.index(target) < FLOW.index(w.status):
                raise StepError(f"the warehouse has order {step.fields['order']} at {w.status}; it cannot go to "
                                f"{step.fields['status']}")
            for status in FLOW[FLOW.index(w.status) + 1: FLOW.index(target) + 1]:
                tpl.advance(o.id, status)
        except ThreePLError as exc:
            raise StepError(f"the warehouse refused: {exc.message}") from None

    def carrier(self, step: Step) -> None:
        o = self.order(step)
        parcels = [f for f in self.sb.ops.fulfillments.get(o.id, []) if f.shipment_status != "delivered"]
        if not parcels:
            raise StepError(f"order {step.fields['order']} has no parcel with the carrier (ship it with a "
                            "`warehouse` step first)")
        with self.sb.world.lock:
            for p in parcels:
                self.sb.ops.tracking_event(p.tracking_number, step.fields["status"])

    def ticket(self, step: Step) -> None:
        from tasks.db import comms_store
        from tasks.db.models import Ticket

        f = step.fields
        o = self.order(step) if f.get("order") else None
        comms_store.add_ticket(self.world.database_url, Ticket(
            external_id=f"scenario:{f['ref']}", channel=f["channel"], order_id=o.id if o else None,
            customer_email=f.get("customer") or (o.email if o else None), text=f["text"]))

    def approve(self, step: Step, choices: tuple[str, ...] = _APPROVE) -> None:
        from tasks.approvals_io import DecisionRefused, submit_decision
        from tasks.db import approval_store

        f, o = step.fields, self.order(step)
        pending = sorted((a for a in approval_store.list_approvals(self.world.database_url, status="pending")
                          if a.order_id == o.id), key=lambda a: (a.requested_at, a.id))
        if not pending:
            raise StepError(f"order {f['order']} has no pending approval to {step.action}")
        a = pending[0]
        decision = f.get("decision") or next((c for c in choices if c in a.allowed_decisions), None)
        if decision is None:
            raise StepError(f"{a.id} ({a.kind}) has no plain {step.action}; give `decision`, one of "
                            f"{', '.join(a.allowed_decisions)}")
        try:
            submit_decision(self.world.database_url, self.world.policy, a.id, f["approver"], decision, f.get("note"),
                            f.get("address"), channel="scenario")
        except (DecisionRefused, LookupError) as exc:
            raise StepError(f"{decision} on {a.id} refused: {exc}") from None

    def reject(self, step: Step) -> None:
        self.approve(step, _REJECT)

    def stock(self, step: Step) -> None:
        _, v = self.sb.world.ensure_sku(step.fields["sku"])
        with self.sb.world.lock:
            v.available = step.fields["available"]

    def tick(self, step: Step) -> None:
        from flows.approval_sweep import sweep_approval_deadlines
        from flows.customer_messages import customer_messages
        from flows.fulfillment_sync import fulfillment_sync
        from flows.reconciliation import reconcile_orders

        now = step.at.astimezone(timezone.utc)  # the world has settled after the previous step
        sweep_approval_deadlines(now=now)
        self.world.settle()  # the runs the sweep woke reach their next wait before the sync reads holds
        fulfillment_sync(now=now)
        customer_messages(now=now)
        reconcile_orders()

    # ------------------------------------------------------------------ what the world shows

    def expect(self, step: Step) -> list[Failure]:
        seen = self.observe(self.order(step))
        out = []
        for key, want in step.fields.items():
            if key == "order":
                continue
            got = seen[key]
            if not _matches(key, want, got):
                out.append(Failure(key, want, _shown(key, want, got)))
        return out

    def observe(self, o) -> dict[str, Any]:
        from tasks.db import approval_store, store

        url = self.world.database_url
        mails = [m for m in self.sb.mailbox.find(to=o.email) if m.headers.get("X-Aftercart-Order") == o.name]
        templates = [m.headers.get("X-Aftercart-Template") for m in mails]
        pending = [a for a in approval_store.list_approvals(url, status="pending") if a.order_id == o.id]
        holds = {t for t in o.tags if t.startswith("ac:hold:")}
        holds |= {h.handle for fo in o.fulfillment_orders for h in fo.holds if str(h.handle).startswith("ac:hold:")}
        tags = set(o.tags)
        return {
            "stage": store.stages_of(url, [o.id]).get(o.id) or "unfulfilled",
            "holds": sorted(holds), "tags_include": tags, "tags_exclude": tags,
            "messages_include": templates, "messages_exclude": templates,
            "messages_language": sorted({(m.headers.get("Content-Language") or "?").split("-")[0] for m in mails}),
            "pending_approvals": len(pending), "pending_approval_roles": sorted(a.role for a in pending),
            "cancelled": o.cancelled_at is not None, "refunded": f"{Decimal(o.refunded):.2f}",
            "shipping_address": dict(o.shipping_address),
            "line_items": sorted(({"sku": li.sku, "quantity": li.quantity} for li in o.line_items if li.quantity),
                                 key=lambda li: li["sku"]),
        }


def edit_request(f: dict[str, Any]) -> dict[str, Any]:
    """A scenario's request in order-edit's words (`line` names the order's line by SKU)."""
    kind = f["kind"]
    if kind == "address_change":
        return {"kind": kind, "address": dict(f["address"])}
    if kind == "contact_change":
        return {"kind": kind, **{k: f[k] for k in ("email", "phone") if k in f}}
    if kind == "shipping_method_change":
        return {"kind": kind, "shipping": f["shipping"]}
    if kind == "quantity_change":
        return {"kind": kind, "line": f["sku"], "quantity": f["quantity"]}
    if kind == "variant_swap":
        return {"kind": kind, "line": f["sku"], "sku": f["to_sku"]}
    if kind == "add_item":
        return {"kind": kind, "sku": f["sku"], "quantity": f["quantity"]}
    return {"kind": kind, "line": f["sku"]}  # remove_item


def _matches(key: str, want: Any, got: Any) -> bool:
    if key == "tags_include" or key == "messages_include":
        return all(w in got for w in want)
    if key == "tags_exclude" or key == "messages_exclude":
        return not any(w in got for w in want)
    if key == "holds" or key == "pending_approval_roles":
        return sorted(want) == got
    if key == "messages_language":
        return got == [want.split("-")[0]]
    if key == "shipping_address":
        return all(str(got.get(k) or "") == str(v) for k, v in want.items())
    if key == "line_items":
        return sorted(want, key=lambda li: li["sku"]) == got
    if key == "refunded":
        return Decimal(str(want)) == Decimal(got)
    return want == got


def _shown(key: str, want: Any, got: Any) -> Any:
    """What to print as seen: the relevant part, not the whole order."""
    if key in ("tags_include", "tags_exclude"):
        return sorted(got)
    if key == "shipping_address":
        return {k: got.get(k) for k in want}
    if key == "messages_language" and not got:
        return "(no messages)"
    return got
