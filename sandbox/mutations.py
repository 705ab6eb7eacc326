"""Admin API mutations the sandbox simulates, answered with Shopify's payloads and userErrors."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, value_from_ast_untyped

from sandbox.operations import OpError, Operations
from sandbox.views import fulfillment_order_view, gid, hold_view, order_view, parse_gid
from sandbox.world import World


def _idempotency_key(info) -> str | None:
    for node in info.field_nodes:
        for d in node.directives or ():
            if d.name.value == "idempotent":
                for a in d.arguments:
                    if a.name.value == "key":
                        variables = info.variable_values
                        variables = getattr(variables, "coerced", variables)  # graphql-core 3.3 wraps them
                        return value_from_ast_untyped(a.value, variables)
    return None


def _tags(tags) -> list[str]:
    return [t.strip() for t in (tags if isinstance(tags, list) else str(tags).split(",")) if t.strip()]


def calculated_order(ops: Operations, s, world: World) -> dict:
    o = ops.order(s.order_id)
    lines = []
    for li in o.line_items:
        qty = s.quantities.get(li.id, li.quantity)
        lines.append({"id": gid("CalculatedLineItem", li.id), "sku": li.sku, "title": li.title, "quantity": qty})
    for n, (vid, qty) in enumerate(s.added):
        lines.append({"id": gid("CalculatedLineItem", 10**12 + n), "sku": None, "title": "added", "quantity": qty})
    from sandbox.views import connection

    return {"id": gid("CalculatedOrder", s.id), "committed": s.committed,
            "originalOrder": order_view(o, world),
            "lineItems": lambda info, **kw: connection(lines, lambda x: x, **kw),
            "shippingLines": [{"id": gid("CalculatedShippingLine", o.id), "stagedStatus": "NONE",
                               "title": (s.shipping or {}).get("title") or o.shipping_method.title()}],
            "addedLineItems": lambda info, **kw: connection(lines[len(o.line_items):], lambda x: x, **kw)}


def mutation_root(world: World, ops: Operations) -> dict[str, Any]:
    def guard(payload_errors_field: str = "userErrors"):
        def wrap(fn):
            def run(info, **kw):
                try:
                    return fn(info, **kw)
                except OpError as e:
                    return {payload_errors_field: [e.as_user_error()],
                            **({"userErrors": [e.as_user_error()]} if payload_errors_field != "userErrors" else {})}
            return run
        return wrap

    @guard()
    def tags_add(info, id, tags):
        o = ops.order(parse_gid(id, "Order"))
        new = _tags(tags)
        if any(t not in o.tags for t in new):
            o.tags = sorted(set(o.tags) | set(new))
            ops.applied.append(("tagsAdd", o.id))
            world.touch(o)
        return {"node": order_view(o, world), "userErrors": []}

    @guard()
    def tags_remove(info, id, tags):
        o = ops.order(parse_gid(id, "Order"))
        gone = set(_tags(tags))
        if gone & set(o.tags):
            o.tags = sorted(set(o.tags) - gone)
            ops.applied.append(("tagsRemove", o.id))
            world.touch(o)
        return {"node": order_view(o, world), "userErrors": []}

    @guard()
    def order_update(info, input):
        o = ops.order(parse_gid(input.get("id"), "Order"))
        ops.update(o, input)
        return {"order": order_view(o, world), "userErrors": []}

    @guard()
    def hold(info, id, fulfillmentHold):
        fo_id = parse_gid(id, "FulfillmentOrder")
        h = ops.hold(fo_id, fulfillmentHold["reason"], fulfillmentHold.get("handle"),
                     fulfillmentHold.get("reasonNotes"))
        fo, o = ops.fulfillment_order(fo_id)
        return {"fulfillmentHold": hold_view(h), "fulfillmentOrder": fulfillment_order_view(fo, o, world),
                "remainingFulfillmentOrder": None, "userErrors": []}

    @guard()
    def release(info, id, holdIds=None, externalId=None):
        ids = None if holdIds is None else [parse_gid(h, "FulfillmentHold") or -1 for h in holdIds]
        fo = ops.release(parse_gid(id, "FulfillmentOrder"), ids)
        fo, o = ops.fulfillment_order(fo.id)
        return {"fulfillmentOrder": fulfillment_order_view(fo, o, world), "userErrors": []}

    @guard()
    def edit_begin(info, id):
        s = ops.edit_begin(ops.order(parse_gid(id, "Order")))
        return {"calculatedOrder": calculated_order(ops, s, world), "orderEditSession": {"id": gid("OrderEditSession", s.id)},
                "userErrors": []}

    def _session(id_):
        return ops.session(parse_gid(id_, "CalculatedOrder") or parse_gid(id_, "OrderEditSession"))

    @guard()
    def edit_set_quantity(info, id, lineItemId, quantity, restock=None, locationId=None):
        s = _session(id)
        ops.edit_set_quantity(s, parse_gid(lineItemId, "CalculatedLineItem") or parse_gid(lineItemId, "LineItem"),
                              quantity)
        return {"calculatedOrder": calculated_order(ops, s, world), "userErrors": []}

    @guard()
    def edit_add_variant(info, id, variantId, quantity, locationId=None, allowDuplicates=None):
        s = _session(id)
        ops.edit_add_variant(s, parse_gid(variantId, "ProductVariant"), quantity, bool(allowDuplicates))
        return {"calculatedOrder": calculated_order(ops, s, world), "userErrors": []}

    @guard()
    def edit_shipping(info, id, shippingLineId, shippingLine):
        s = _session(id)
        ops.edit_shipping(s, shippingLine.get("title"), (shippingLine.get("price") or {}).get("amount"))
        return {"calculatedOrder": calculated_order(ops, s, world), "userErrors": []}

    @guard()
    def edit_commit(info, id, notifyCustomer=None, staffNote=None):
        o = ops.edit_commit(_session(id))
        return {"order": order_view(o, world), "successMessages": ["Order updated"], "userErrors": []}

    @guard("orderCancelUserErrors")
    def cancel(info, orderId, reason, restock, refund=None, refundMethod=None, notifyCustomer=None, staffNote=None):
        o = ops.order(parse_gid(orderId, "Order"))
        wants_refund = bool(refund) or bool((refundMethod or {}).get("originalPaymentMethodsRefund"))
        job = ops.cancel(o, reason, restock, wants_refund, staffNote)
        return {"job": {"id": job.id, "done": job.done}, "orderCancelUserErrors": [], "userErrors": []}

    def refund_create(info, input):
        key = _idempotency_key(info)
        try:
            o = ops.order(parse_gid(input.get("orderId"), "Order"))
            request = dict(input)
            for rli in request.get("refundLineItems") or []:
                rli["lineItemId"] = parse_gid(rli["lineItemId"], "LineItem")
            r = ops.refund(o, request, key)
        except OpError as e:
            if e.code and e.code.startswith("IDEMPOTENCY"):
                raise GraphQLError(e.message, extensions={"code": e.code}) from None
            return {"refund": None, "order": None, "userErrors": [e.as_user_error()]}
        return {"refund": {"id": gid("Refund", r["id"]), "createdAt": r["created_at"], "note": r.get("note"),
                           "totalRefundedSet": {"shopMoney": {"amount": r["amount"], "currencyCode": o.currency},
                                                "presentmentMoney": {"amount": r["amount"], "currencyCode": o.currency}}},
                "order": order_view(o, world), "userErrors": []}

    return {"tagsAdd": tags_add, "tagsRemove": tags_remove, "orderUpdate": order_update,
            "fulfillmentOrderHold": hold, "fulfillmentOrderReleaseHold": release, "orderEditBegin": edit_begin,
            "orderEditSetQuantity": edit_set_quantity, "orderEditAddVariant": edit_add_variant,
            "orderEditUpdateShippingLine": edit_shipping, "orderEditCommit": edit_commit, "orderCancel": cancel,
            "refundCreate": refund_create}
