"""A deployable flow that waits for an approval, for the suspension test (served in a subprocess).

It stands in for the SOP flows (cancellation review) until they land: a side effect before the
wait, the wait, and the effect of the decision after it.
"""

from __future__ import annotations

from prefect import flow

from flows.approvals import ApprovalRequest, await_approval, record_effect
from tasks import effects


@flow(name="approval-demo", flow_run_name="cancellation-review {order_name}")
def cancellation_needing_ops(database_url: str, order_id: int, order_name: str) -> dict:
    effects.add_tags(database_url, order_id, ["ac:cancel:requested"], effect_key=f"order:{order_id}:c1:tag")
    out = await_approval(ApprovalRequest(
        kind="cancellation", order_id=order_id, order_name=order_name, role="ops", request_key="c1",
        asked="Cancel this order while the warehouse picks it?", rule="cancellation.rules.at_the_warehouse",
        context={"customer": "dana@example.com", "stage": "picking", "why": "the order is at the warehouse",
                 "items": [{"sku": "MUG", "quantity": 1}]}))
    if out.decision == "approve":
        done = effects.cancel_order(database_url, order_id, "CUSTOMER", True, True,
                                    effect_key=f"order:{order_id}:c1:cancel")
        record_effect(out, {"cancelled_at": done.get("cancelledAt")})
    else:
        record_effect(out, {"cancelled_at": None, "kept": "order stays as it is"})
    return {"decision": out.decision, "approver": out.approver, "by_policy": out.by_policy}


if __name__ == "__main__":
    from prefect import serve

    serve(cancellation_needing_ops.to_deployment(name="approval-demo"), query_seconds=0.5)
