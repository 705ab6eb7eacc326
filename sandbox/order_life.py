"""What happens to a sandbox order outside aftercart's calls: a pending payment is captured, the
customer asks to return, a preorder's date comes (its scheduled fulfillment order opens). Mixed
into `Operations`; served at `POST /sandbox/orders/<id>/capture | return | open-scheduled`."""

from __future__ import annotations

from sandbox.world import FulfillmentOrderState, OrderState

RETURN_STATUSES = ("NO_RETURN", "RETURN_REQUESTED", "IN_PROGRESS", "INSPECTION_COMPLETE", "RETURNED", "RETURN_FAILED")


class OrderLifeActions:
    """Needs `self.world` (the Operations it is mixed into has it)."""

    def capture(self, o: OrderState) -> OrderState:
        """The pending payment is captured (a manual or deferred payment arrives)."""
        if o.financial_status != "PENDING":
            from sandbox.operations import OpError

            raise OpError(f"Order {o.name} has no pending payment ({o.financial_status}).")
        o.financial_status = "PAID"
        self.world.touch(o)
        return o

    def request_return(self, o: OrderState, status: str = "RETURN_REQUESTED") -> OrderState:
        """The customer asks to return (or the return moves on: IN_PROGRESS, RETURNED...)."""
        if status not in RETURN_STATUSES:
            from sandbox.operations import OpError

            raise OpError(f"unknown return status {status!r}; known: {', '.join(RETURN_STATUSES)}")
        o.return_status = status
        self.world.touch(o)
        return o

    def open_scheduled(self, o: OrderState) -> list[FulfillmentOrderState]:
        """Scheduled (preorder) fulfillment orders become OPEN: their date came or stock arrived."""
        opened = [fo for fo in o.fulfillment_orders if fo.status == "SCHEDULED"]
        for fo in opened:
            fo.status = "OPEN"
        if opened:
            self.world.touch(o)
        return opened
