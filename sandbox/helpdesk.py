"""The sandbox helpdesk: customers write in, tickets carry signal tags (aftercart mirrors them)."""

from __future__ import annotations

from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.clock import iso
from sandbox.threepl import ThreePLError

CHANNELS = ("email", "chat", "social", "phone", "self_service")


def helpdesk_routes(sandbox: Any, wrap: Callable) -> list[Route]:
    """`wrap` turns (request, JSON body) -> dict into an endpoint with the sandbox's error answers."""

    def new_ticket(request: Request, body: dict) -> dict:
        channel, text = body.get("channel"), body.get("text")
        if channel not in CHANNELS or not isinstance(text, str):
            raise ValueError(f"a ticket needs a channel ({', '.join(CHANNELS)}) and a text")
        with sandbox.world.lock:
            t = {"id": len(sandbox.tickets) + 1, "channel": channel, "customer": body.get("customer"),
                 "order": body.get("order"), "text": text, "tags": [], "status": "open",
                 "created_at": iso(sandbox.world.clock.now())}
            sandbox.tickets.append(t)
        return t

    def tag_ticket(request: Request, body: dict) -> dict:
        tid = int(request.path_params["ticket_id"])
        with sandbox.world.lock:
            t = next((x for x in sandbox.tickets if x["id"] == tid), None)
            if t is None:
                raise ThreePLError(404, f"ticket {tid} does not exist")
            add = {str(x) for x in (body.get("tags") or []) + (body.get("add") or [])}
            t["tags"] = sorted((set(t["tags"]) | add) - {str(x) for x in body.get("remove") or []})
        return t

    async def tickets(request: Request) -> JSONResponse:
        order = request.query_params.get("order")
        return JSONResponse({"tickets": [t for t in sandbox.tickets if order is None or t["order"] == order]})

    return [Route("/helpdesk/tickets", wrap(new_ticket), methods=["POST"]),
            Route("/helpdesk/tickets", tickets, methods=["GET"]),
            Route("/helpdesk/tickets/{ticket_id:int}/tags", wrap(tag_ticket), methods=["POST"])]
