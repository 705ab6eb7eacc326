"""What other systems push to aftercart besides Shopify: the 3PL's status pushes and the customers'
replies to our messages (a mail provider's inbound webhook), both signed.

- `POST /webhooks/3pl` (X-3PL-Signature: base64 HMAC-SHA256 of the body): stored in the webhook
  inbox as `3pl/<event>` for the drain, which keeps the stage (the 3PL owns the order from
  `released` to `shipped`) and sends `fulfillment_started` when the warehouse takes the order.
- `POST /inbound/email` (a raw RFC 822 message, X-Inbound-Signature): a reply to one of our messages
  (In-Reply-To / References name its Message-ID) becomes an open ticket on that order, for triage;
  a provider retrying the same mail adds nothing.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.utils import parseaddr
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from intake.hmac_sign import verify
from tasks.db import comms_store, store
from tasks.db.models import Ticket

_QUOTE_START = re.compile(r"^(On .+ wrote:|Le .+ a écrit :|El .+ escribió:|Am .+ schrieb .+:|-----Original Message-----)\s*$")


def reply_text(body: str) -> str:
    """The customer's own words: the quoted message below them dropped."""
    out = []
    for line in body.splitlines():
        if line.startswith(">") or _QUOTE_START.match(line.strip()):
            break
        out.append(line)
    return "\n".join(out).strip() or body.strip()


def message_ids(header: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", header or "")


def ticket_from_mail(database_url: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
    except Exception as exc:  # noqa: BLE001 - a mail we cannot read is refused, not half-stored
        return 400, {"error": f"not a readable RFC 822 message: {exc}"}
    sender = parseaddr(str(msg.get("From") or ""))[1]
    mid = str(msg.get("Message-ID") or "").strip()
    if not sender or not mid:
        return 400, {"error": "a mail needs From and Message-ID headers"}
    # In-Reply-To first, then References newest first: the message the customer answered
    refs = message_ids(str(msg.get("In-Reply-To") or "")) + message_ids(str(msg.get("References") or ""))[::-1]
    original = comms_store.message_for_reply(database_url, refs)
    ticket, created = comms_store.add_ticket(database_url, Ticket(
        external_id=mid, channel="email", customer_email=sender.lower(),
        order_id=original.order_id if original else None,
        text=(f"Subject: {msg.get('Subject', '')}\n\n" + reply_text(text))[:20000],
        reply_to_template=original.template if original else None))
    return 200, {"status": "created" if created else "duplicate", "ticket": ticket.id,
                 "order_id": ticket.order_id, "reply_to": ticket.reply_to_template}


def threepl_delivery(database_url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    try:
        payload = json.loads(body)
        order = payload["order"]
        order_id, event = int(order["order_id"]), str(payload["event"])
    except (ValueError, KeyError, TypeError) as exc:
        return 400, {"error": f"a 3PL push is {{event, order: {{order_id, status, version}}}} ({exc})"}
    # the 3PL's event id (the sync recognises pushes it already has by it); else what identifies it
    webhook_id = "3pl:" + str(payload.get("event_id") or f"{order_id}:{event}:{order.get('version')}:{order.get('updated_at')}")
    res = store.add_delivery(database_url, shop="3pl", webhook_id=webhook_id, topic=f"3pl/{event}",
                             status="accepted", order_id=order_id, body=body.decode("utf-8", errors="replace"))
    return 200, {"status": "duplicate" if res.duplicate else "accepted", "id": res.id}


def routes(database_url: str, threepl_secret: str, inbound_secret: str, read_body: Callable,
           on_accepted: Callable[[str, int | None], None]) -> list[Route]:
    def signed(secret: str, header: str, handle: Callable[[str, bytes], tuple[int, dict[str, Any]]]):
        """An endpoint that reads the capped body, checks its signature, then stores it."""
        async def endpoint(request: Request) -> JSONResponse:
            body = await read_body(request)
            if body is None:
                return JSONResponse({"error": "body too large"}, status_code=413)
            if not verify(secret, body, request.headers.get(header)):
                return JSONResponse({"error": f"missing or invalid {header}"}, status_code=401)
            status, answer = await run_in_threadpool(handle, database_url, body)
            return JSONResponse(answer, status_code=status)
        return endpoint

    def threepl(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
        status, answer = threepl_delivery(url, body)
        if answer.get("status") == "accepted":
            on_accepted("3pl", answer["id"])
        return status, answer

    return [Route("/webhooks/3pl", signed(threepl_secret, "X-3PL-Signature", threepl), methods=["POST"]),
            Route("/inbound/email", signed(inbound_secret, "X-Inbound-Signature", ticket_from_mail), methods=["POST"])]
