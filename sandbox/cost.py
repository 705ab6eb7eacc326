"""Shopify's calculated query cost and the per-shop leaky bucket that spends it.

Requested cost (before running): objects 1, scalars and enums 0, connections 2 plus their size
(`first`/`last`) times the cost of one node, mutations 10. Actual cost counts what came back; the
difference is refunded to the bucket, as Shopify does.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLList, GraphQLNonNull,
    GraphQLObjectType, GraphQLInterfaceType, GraphQLSchema, GraphQLUnionType, InlineFragmentNode,
    OperationDefinitionNode, value_from_ast_untyped,
)

MAX_QUERY_COST = 1000


def _unwrap(t):
    while isinstance(t, (GraphQLNonNull, GraphQLList)):
        t = t.of_type
    return t


def _arg(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for a in node.arguments or ():
        if a.name.value == name:
            return value_from_ast_untyped(a.value, variables)
    return None


def requested_cost(schema: GraphQLSchema, doc: DocumentNode, variables: dict[str, Any], op_name: str | None) -> int:
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if op_name is None or (o.name and o.name.value == op_name)), ops[0])

    def selection_cost(sel_set, parent) -> int:
        total = 0
        for sel in sel_set.selections if sel_set else ():
            if isinstance(sel, FieldNode):
                total += field_cost(sel, parent)
            elif isinstance(sel, InlineFragmentNode):
                t = schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                total += selection_cost(sel.selection_set, t)
            elif isinstance(sel, FragmentSpreadNode):
                f = frags[sel.name.value]
                total += selection_cost(f.selection_set, schema.get_type(f.type_condition.name.value))
        return total

    def field_cost(node: FieldNode, parent) -> int:
        if node.name.value.startswith("__") or not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0
        fdef = parent.fields.get(node.name.value)
        if fdef is None:
            return 0
        t = _unwrap(fdef.type)
        if not isinstance(t, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)):
            return 0
        inner = selection_cost(node.selection_set, t)
        if t.name.endswith("Connection"):
            size = _arg(node, "first", variables) or _arg(node, "last", variables) or 1
            node_cost = 0
            for sel in node.selection_set.selections if node.selection_set else ():
                if isinstance(sel, FieldNode) and sel.name.value in ("edges", "nodes"):
                    node_cost += selection_cost(sel.selection_set, _unwrap(t.fields[sel.name.value].type)) or 1
            return 2 + int(size) * max(node_cost, 1)
        return 1 + inner

    root = schema.mutation_type if op.operation.value == "mutation" else schema.query_type
    cost = selection_cost(op.selection_set, root)
    if op.operation.value == "mutation":
        cost = 10 * len(op.selection_set.selections) + cost
    return max(cost, 1)


def actual_cost(data: Any, mutation: bool, top_fields: int) -> int:
    def count(v) -> int:
        if isinstance(v, dict):
            return 1 + sum(count(x) for x in v.values())
        if isinstance(v, list):
            return sum(count(x) for x in v)
        return 0

    base = 10 * top_fields if mutation else 0
    return max(1, base + (count(data) - 1 if isinstance(data, dict) else 0))


@dataclass
class Plan:
    maximum: float
    restore_rate: float


PLANS = {"standard": Plan(2000.0, 100.0), "advanced": Plan(4000.0, 200.0), "plus": Plan(20000.0, 1000.0)}


class LeakyBucket:
    """Points available = min(max, last + elapsed * restore); charged up front, refunded after."""

    def __init__(self, plan: Plan, now=time.monotonic):
        self.plan, self._now = plan, now
        self._available, self._at = plan.maximum, now()
        self._lock = threading.Lock()
        self.spent = 0.0  # points actually used (charged minus refunded), for benchmarks

    def _refill(self) -> None:
        t = self._now()
        self._available = min(self.plan.maximum, self._available + (t - self._at) * self.plan.restore_rate)
        self._at = t

    def take(self, cost: float) -> tuple[bool, float]:
        with self._lock:
            self._refill()
            if cost > self._available:
                return False, self._available
            self._available -= cost
            self.spent += cost
            return True, self._available

    def refund(self, points: float) -> float:
        with self._lock:
            self._refill()
            self._available = min(self.plan.maximum, self._available + max(points, 0))
            self.spent -= max(points, 0)
            return self._available

    def status(self) -> dict[str, float]:
        with self._lock:
            self._refill()
            return {"maximumAvailable": self.plan.maximum, "currentlyAvailable": math.floor(self._available),
                    "restoreRate": self.plan.restore_rate}
