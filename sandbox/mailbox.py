"""The sandbox mailbox: an SMTP server (aiosmtpd) on loopback that keeps every message.

Mail to the store's own address (a customer replying to an order message) is also posted, raw and
signed, to aftercart's inbound mail endpoint, as a mail provider's inbound webhook would.
"""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class StoredMessage:
    """A received message, kept raw as a mail relay queues it; parsed (once) when first looked at."""
    id: int
    received_at: str
    mail_from: str
    rcpt_to: list[str]
    raw: bytes = field(repr=False)

    @cached_property
    def _parsed(self) -> tuple[str, dict[str, str], str, str | None]:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        return (str(msg.get("Subject", "")), {k: str(v) for k, v in msg.items()},
                text_part.get_content() if text_part else "", html_part.get_content() if html_part else None)

    @property
    def subject(self) -> str:
        return self._parsed[0]

    @property
    def headers(self) -> dict[str, str]:
        return self._parsed[1]

    @property
    def text(self) -> str:
        return self._parsed[2]

    @property
    def html(self) -> str | None:
        return self._parsed[3]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "received_at": self.received_at, "mail_from": self.mail_from, "rcpt_to": self.rcpt_to,
                "subject": self.subject, "headers": self.headers, "text": self.text, "html": self.html}


log = logging.getLogger("aftercart.sandbox.mailbox")


@dataclass
class Mailbox:
    messages: list[StoredMessage] = field(default_factory=list)
    forward_for: str | None = None
    forward_url: str | None = None
    forward_secret: str = ""
    forwarded: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()

    def _forward(self, raw: bytes) -> None:
        import httpx

        from intake.hmac_sign import sign

        for attempt in range(5):
            try:
                r = httpx.post(self.forward_url, content=raw, timeout=5.0, headers={
                    "Content-Type": "message/rfc822", "X-Inbound-Signature": sign(self.forward_secret, raw)})
                self.forwarded.append({"status": r.status_code, "attempt": attempt + 1})
                if r.status_code < 500:
                    return
            except Exception as exc:  # the provider retries; the mail stays in the mailbox either way
                log.warning("inbound mail forward to %s failed: %s", self.forward_url, exc)
            threading.Event().wait(0.5 * (attempt + 1))

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        # accepted as a relay accepts: stored raw, answered at once; parsed when someone looks at it
        raw = envelope.original_content or envelope.content
        with self._lock:
            self.messages.append(StoredMessage(
                id=len(self.messages) + 1, received_at=datetime.now(timezone.utc).isoformat(),
                mail_from=envelope.mail_from, rcpt_to=list(envelope.rcpt_tos), raw=raw))
        if self.forward_url and self.forward_for and self.forward_for in envelope.rcpt_tos:
            threading.Thread(target=self._forward, args=(raw,), daemon=True, name="mail-forward").start()
        return "250 Message accepted for delivery"

    def find(self, to: str | None = None, header: tuple[str, str] | None = None) -> list[StoredMessage]:
        with self._lock:
            out = list(self.messages)
        if to:
            out = [m for m in out if to in m.rcpt_to]
        if header:
            out = [m for m in out if m.headers.get(header[0]) == header[1]]
        return out


def start_smtp(mailbox: Mailbox, host: str = "127.0.0.1", port: int = 8725) -> Controller:
    controller = Controller(mailbox, hostname=host, port=port)
    controller.start()
    return controller
