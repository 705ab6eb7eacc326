"""Sending mail over SMTP (the sandbox mailbox by default, any SMTP server by settings)."""

from __future__ import annotations

import smtplib
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Callable, Iterator


class Mailer:
    def __init__(self, host: str, port: int, sender: str, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 10.0):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def compose(self, to: str, subject: str, text: str, html: str | None = None,
                headers: dict[str, str] | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Message-ID"] = make_msgid(domain=self.sender.split("@")[-1])
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
             headers: dict[str, str] | None = None) -> str:
        with self.connection() as send:
            return send(self.compose(to, subject, text, html, headers))
