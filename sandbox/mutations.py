"""Admin API mutations the sandbox simulates, with Shopify's userErrors."""

from __future__ import annotations

from typing import Any

from sandbox.views import order_view, parse_gid
from sandbox.world import World


def _order_of(world: World, id_: str):
    oid = parse_gid(id_, "Order")
    return world.orders.get(oid) if oid else None


def mutation_root(world: World) -> dict[str, Any]:
    def tags_add(info, id, tags):
        o = _order_of(world, id)
        if o is None:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
        new = [t.strip() for t in (tags if isinstance(tags, list) else str(tags).split(",")) if t.strip()]
        if any(t not in o.tags for t in new):
            o.tags = sorted(set(o.tags) | set(new))
            world.touch(o)
        return {"node": {"__typename": "Order", **order_view(o, world)}, "userErrors": []}

    def tags_remove(info, id, tags):
        o = _order_of(world, id)
        if o is None:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
        gone = {t.strip() for t in (tags if isinstance(tags, list) else str(tags).split(","))}
        if gone & set(o.tags):
            o.tags = sorted(set(o.tags) - gone)
            world.touch(o)
        return {"node": {"__typename": "Order", **order_view(o, world)}, "userErrors": []}

    return {"tagsAdd": tags_add, "tagsRemove": tags_remove}
