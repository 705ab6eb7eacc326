"""Sending mail over SMTP (the sandbox mailbox by default, any SMTP server by settings)."""

from __future__ import annotations

import base64
import re
import smtplib
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Callable, Iterator


_OURS = re.compile(r"<ac-([a-z2-7]+)@[^<>\s]+>")


def message_id_for(effect_key: str, domain: str) -> str:
    """The Message-ID of the message an effect sends: the same on every attempt, and naming the
    effect. A reply can be tied to its order before the message's row is written (the customer
    can answer the moment the mail arrives), and a resent copy has the same Message-ID, so the
    customer's mail program shows it once."""
    return f"<ac-{base64.b32encode(effect_key.encode()).decode().rstrip('=').lower()}@{domain}>"


def effect_key_of(message_id: str) -> str | None:
    """The effect key a Message-ID from `message_id_for` names; None for any other Message-ID."""
    m = _OURS.fullmatch(message_id.strip())
    if not m:
        return None
    code = m.group(1).upper()
    try:
        return base64.b32decode(code + "=" * (-len(code) % 8)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class Mailer:
    def __init__(self, host: str, port: int, sender: str, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 10.0):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    @property
    def domain(self) -> str:
        return self.sender.split("@")[-1]

    def compose(self, to: str, subject: str, text: str, html: str | None = None,
                headers: dict[str, str] | None = None, effect_key: str | None = None) -> EmailMessage:
        """A message; with `effect_key`, its Message-ID is `message_id_for(effect_key)`."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Message-ID"] = message_id_for(effect_key, self.domain) if effect_key else make_msgid(domain=self.domain)
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for k, v in (headers or {}).items():  # after the body: a multipart moves Content-* headers into its parts
            msg[k] = v
        return msg

    @contextmanager
    def connection(self) -> Iterator[Callable[[EmailMessage], str]]:
        """One SMTP session for many messages: yields send(message) -> Message-ID."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")

            def send(msg: EmailMessage) -> str:
                smtp.send_message(msg)
                return msg["Message-ID"]

            yield send

    def send(self, to: str, subject: str, text: str, html: str | None = None,
             headers: dict[str, str] | None = None, effect_key: str | None = None) -> str:
        with self.connection() as send:
            return send(self.compose(to, subject, text, html, headers, effect_key))
