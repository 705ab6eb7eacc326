"""The optional online address verifier (delivery-point checks such as a missing unit in a
high-rise). Off by default: aftercart sends no address anywhere unless
`AFTERCART_ADDRESS_VERIFIER_URL` is set. The sandbox implements the same interface.

Interface: `POST {base}/verify` with `{"addresses": [{Shopify shipping_address fields}, ...]}`
answers `{"results": [{"deliverable": bool, "dpv": "Y|S|D|N", "reasons": [reason codes]}, ...]}`
in the same order (dpv as USPS delivery-point validation: Y confirmed, S secondary ignored,
D secondary missing, N not a delivery point).
"""

from __future__ import annotations

from typing import Any

import httpx


class VerifierError(Exception):
    pass


class AddressVerifier:
    def __init__(self, http: httpx.Client, base_url: str, batch_size: int = 100):
        self.http, self.base_url, self.batch_size = http, base_url.rstrip("/"), batch_size

    def verify(self, addresses: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(addresses), self.batch_size):
            chunk = addresses[i:i + self.batch_size]
            try:
                r = self.http.post(f"{self.base_url}/verify", json={"addresses": chunk})
                r.raise_for_status()
                results = r.json()["results"]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                raise VerifierError(f"address verifier failed: {exc}") from exc
            if not isinstance(results, list) or len(results) != len(chunk):
                raise VerifierError("address verifier answered a different number of results")
            out.extend(results)
        return out
