"""Benchmark: address verdicts per second on one core against raw `usaddress.parse` on the same inputs.

    python bench/address.py [--n 20000]

Inputs are the sandbox generator's shipping addresses (countries, faulty addresses) plus the
labelled set in tests/data. Both loops run in this one process, one after the other, so the ratio
is measured on the same core under the same load. Goal: our rate at least half of usaddress's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def inputs(n: int) -> list[dict]:
    from sandbox.catalogue import build_catalogue, generate_order_input

    rnd = random.Random(3)
    products = build_catalogue()
    labelled = [json.loads(x)["address"] for x in (ROOT / "tests" / "data" / "addresses.jsonl").read_text().splitlines()]
    out = [generate_order_input(rnd, products, faulty_share=0.2)["shipping_address"] for _ in range(n)]
    return out + labelled


def rate(fn, items, rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for a in items:
            fn(a)
        best = max(best, len(items) / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    import usaddress

    from domain.address import check_address

    items = inputs(args.n)
    check_address(items[0])  # build the reference tables once (not timed)

    def raw(a):
        try:
            usaddress.parse(str(a.get("address1") or ""))
        except Exception:
            pass

    ours = rate(check_address, items)
    theirs = rate(raw, items)
    verdicts = {}
    for a in items:
        v = check_address(a).verdict
        verdicts[v] = verdicts.get(v, 0) + 1
    print(f"cores: {os.cpu_count()} (pinned to 1)   addresses: {len(items)}   verdicts: {verdicts}")
    print(f"check_address:   {ours:10,.0f} addresses/s")
    print(f"usaddress.parse: {theirs:10,.0f} addresses/s")
    print(f"ratio ours/usaddress: {ours / theirs:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
