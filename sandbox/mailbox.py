"""The sandbox mailbox: an SMTP server (aiosmtpd) on loopback that keeps every message."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class StoredMessage:
    id: int
    received_at: str
    mail_from: str
    rcpt_to: list[str]
    subject: str
    headers: dict[str, str]
    text: str
    html: str | None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Mailbox:
    messages: list[StoredMessage] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        with self._lock:
            self.messages.append(StoredMessage(
                id=len(self.messages) + 1, received_at=datetime.now(timezone.utc).isoformat(),
                mail_from=envelope.mail_from, rcpt_to=list(envelope.rcpt_tos), subject=str(msg.get("Subject", "")),
                headers={k: str(v) for k, v in msg.items()},
                text=text_part.get_content() if text_part else "",
                html=html_part.get_content() if html_part else None,
            ))
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
