"""Signed self-serve links sent to customers (the address correction form)."""

from __future__ import annotations

import hashlib
import hmac


def link_token(secret: str, review_id: str) -> str:
    return hmac.new(secret.encode(), review_id.encode(), hashlib.sha256).hexdigest()[:32]


def token_ok(secret: str, review_id: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(link_token(secret, review_id), str(token))


def correction_link(base_url: str, secret: str, order_id: int, key: str) -> str:
    review_id = f"address:{order_id}:{key}"
    return f"{base_url.rstrip('/')}/address/{order_id}/{key}?t={link_token(secret, review_id)}"
