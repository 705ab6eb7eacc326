"""The helpdesk (the sandbox's by default): tickets by order, and their signal tags."""

from __future__ import annotations

from typing import Any

from tasks.clients.threepl import ThreePLClient


class HelpdeskClient(ThreePLClient):
    """Same REST conventions and retries as the 3PL client (5xx and transport errors retried)."""

    def tickets(self, order_name: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/helpdesk/tickets", params={"order": order_name} if order_name else None)["tickets"]

    def retag(self, ticket_id: int, add: list[str], remove: list[str]) -> dict[str, Any]:
        return self._call("POST", f"/helpdesk/tickets/{ticket_id}/tags", {"add": add, "remove": remove})

