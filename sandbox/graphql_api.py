"""The sandbox's Admin GraphQL endpoint: validate against Shopify's schema, charge the bucket, run.

Documents that Shopify would reject are rejected here with Shopify-shaped errors; valid
documents that touch a field the sandbox does not simulate get an error naming that field.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, execute, parse, validate

from sandbox import cost as costmod
from sandbox.mutations import mutation_root
from sandbox.operations import Operations
from sandbox.schema import admin_schema
from sandbox.views import (connection, filter_orders, fulfillment_order_view, order_view, parse_gid, product_view,
                           variant_view)
from sandbox.world import World


def query_root(world: World, ops: Operations) -> dict[str, Any]:
    def order(info, id):
        oid = parse_gid(id, "Order")
        o = world.orders.get(oid) if oid else None
        return order_view(o, world) if o else None

    def orders(info, query=None, sortKey=None, reverse=False, **kw):
        items = filter_orders(sorted(world.orders.values(), key=lambda o: o.id), query)
        if sortKey == "UPDATED_AT":
            items.sort(key=lambda o: (o.updated_at, o.id))
        elif sortKey == "CREATED_AT":
            items.sort(key=lambda o: (o.created_at, o.id))
        return connection(items, lambda o: order_view(o, world), reverse=reverse, **kw)

    def products(info, query=None, sortKey=None, reverse=False, **kw):
        items = list(world.products)
        if query:
            needle = query.split(":", 1)[-1].strip("'\" ").lower()
            items = [p for p in items if needle in " ".join([p.title.lower(), p.handle, *p.tags])]
        return connection(items, lambda p: product_view(p, world), reverse=reverse, **kw)

    def variants():
        return ((p, v) for p in world.products for v in p.variants)

    def product_variants(info, query=None, **kw):
        """`sku:A OR sku:B` (what aftercart asks); any other query matches nothing."""
        wanted = {part.split(":", 1)[1].strip("'\" ") for part in (query or "").split(" OR ") if ":" in part}
        items = [(p, v) for p, v in variants() if v.sku in wanted]
        return connection(items, lambda x: variant_view(x[1], x[0]), **kw)

    def product_variant(info, id):
        vid = parse_gid(id, "ProductVariant")
        return next((variant_view(v, p) for p, v in variants() if v.id == vid), None)

    def fulfillment_order(info, id):
        fid = parse_gid(id, "FulfillmentOrder")
        for o in world.orders.values():
            for fo in o.fulfillment_orders:
                if fo.id == fid:
                    return fulfillment_order_view(fo, o, world)
        return None

    def inventory_item(info, id):
        iid = parse_gid(id, "InventoryItem")
        return next((inventory_item_view(v, world) for _, v in variants() if v.inventory_item_id == iid), None)

    def inventory_level(info, id):
        iid = parse_gid(id.split("?")[0], "InventoryLevel")
        return next((inventory_level_view(v, world) for _, v in variants() if v.inventory_item_id == iid), None)

    def fulfillment_orders(info, query=None, includeClosed=False, sortKey=None, reverse=False, **kw):
        items = [(fo, o) for o in sorted(world.orders.values(), key=lambda o: o.id) for fo in o.fulfillment_orders
                 if includeClosed or fo.status not in ("CLOSED", "CANCELLED")]
        if query and "status:" in query:
            want = query.split("status:", 1)[1].split()[0].strip("'\"").upper()
            items = [(fo, o) for fo, o in items if fo.status == want]
        return connection(items, lambda x: fulfillment_order_view(x[0], x[1], world), reverse=reverse, **kw)

    def nodes(info, ids):
        """Orders by id (what aftercart asks for); other node types are not simulated (null)."""
        out = []
        for node_id in ids:
            oid = parse_gid(node_id, "Order")
            o = world.orders.get(oid) if oid else None
            out.append(order_view(o, world) if o else None)
        return out

    def job(info, id):
        j = ops.jobs.get(id)
        return {"id": j.id, "done": j.done, "query": {}} if j else None

    return {"order": order, "orders": orders, "products": products, "productVariant": product_variant,
            "productVariants": product_variants,
            "fulfillmentOrder": fulfillment_order, "fulfillmentOrders": fulfillment_orders, "job": job, "nodes": nodes,
            "inventoryItem": inventory_item, "inventoryLevel": inventory_level}


def inventory_level_view(v, world: World) -> dict:
    quantities = {"available": v.available, "committed": v.committed, "on_hand": v.on_hand}
    return {
        "id": f"gid://shopify/InventoryLevel/{v.inventory_item_id}?inventory_item_id={v.inventory_item_id}",
        "location": {"id": "gid://shopify/Location/1", "name": "Sandbox 3PL"},
        "quantities": lambda info, names, **_: [{"name": n, "quantity": quantities.get(n, 0)} for n in names],
        "item": lambda info, **_: inventory_item_view(v, world),
    }


def inventory_item_view(v, world: World) -> dict:
    return {
        "__typename": "InventoryItem", "id": f"gid://shopify/InventoryItem/{v.inventory_item_id}", "sku": v.sku,
        "tracked": True,
        "inventoryLevels": lambda info, **kw: connection([v], lambda x: inventory_level_view(x, world), **kw),
    }


class AdminApi:
    def __init__(self, world: World, plan: str | costmod.Plan = "standard", ops: Operations | None = None):
        self.world = world
        self.ops = ops or Operations(world)
        self.bucket = costmod.LeakyBucket(plan if isinstance(plan, costmod.Plan) else costmod.PLANS[plan])
        self._queries = query_root(world, self.ops)
        self._mutations = mutation_root(world, self.ops)

    def _extensions(self, requested: int, actual: int | None) -> dict:
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                         "throttleStatus": self.bucket.status()}}

    def handle(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return {"errors": [{"message": "Parameter Missing or Invalid", "extensions": {"code": "BAD_REQUEST"}}]}
        variables = body.get("variables") or {}
        op_name = body.get("operationName")
        schema = admin_schema()
        try:
            doc = parse(body["query"])
        except GraphQLError as exc:
            return {"errors": [exc.formatted]}
        errors = validate(schema, doc)
        if errors:
            return {"errors": [e.formatted for e in errors]}
        requested = costmod.requested_cost(schema, doc, variables, op_name)
        if requested > costmod.MAX_QUERY_COST:
            return {"errors": [{"message": f"Query cost is {requested}, which exceeds the single query max cost "
                                f"limit ({costmod.MAX_QUERY_COST}).", "extensions": {"code": "MAX_COST_EXCEEDED"}}],
                    "extensions": self._extensions(requested, None)}
        ok, _ = self.bucket.take(requested)
        if not ok:
            return {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": self._extensions(requested, None)}
        op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode)
                  and (op_name is None or (d.name and d.name.value == op_name)))
        is_mutation = op.operation.value == "mutation"
        with self.world.lock:
            result = execute(schema, doc, root_value=self._mutations if is_mutation else self._queries,
                             variable_values=variables, operation_name=op_name)
        actual = costmod.actual_cost(result.data, is_mutation, len(op.selection_set.selections))
        actual = min(actual, requested)
        self.bucket.refund(requested - actual)
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        out["data"] = result.data
        out["extensions"] = self._extensions(requested, actual)
        return out
