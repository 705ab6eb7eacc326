"""Seeded, reproducible fault injection per Admin API operation.

Rules name an operation (the GraphQL operationName, else the first root field, or "*") and the
probability of each fault: `throttled` (THROTTLED, nothing run), `http429` (429 with Retry-After,
nothing run), `http5xx` (503, nothing run), `slow` (answer after `slow_seconds`), `lost_reply`
(the mutation IS applied, then the reply is lost as a 502).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

FAULTS = ("throttled", "http429", "http5xx", "lost_reply", "slow")


@dataclass
class FaultRule:
    throttled: float = 0.0
    http429: float = 0.0
    http5xx: float = 0.0
    slow: float = 0.0
    lost_reply: float = 0.0


@dataclass
class Faults:
    seed: int = 1
    rules: dict[str, FaultRule] = field(default_factory=dict)
    slow_seconds: float = 2.0
    retry_after: float = 1.0
    injected: dict[str, int] = field(default_factory=lambda: {f: 0 for f in FAULTS})

    def __post_init__(self):
        self._rnd = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Faults":
        rules = {}
        for op, r in (data.get("rules") or {}).items():
            unknown = set(r) - set(FAULTS)
            if unknown:
                raise ValueError(f"rules.{op}: unknown fault(s) {sorted(unknown)}; known: {', '.join(FAULTS)}")
            for k, v in r.items():
                if not 0 <= float(v) <= 1:
                    raise ValueError(f"rules.{op}.{k}: a probability between 0 and 1, got {v!r}")
            rules[op] = FaultRule(**{k: float(v) for k, v in r.items()})
        return cls(seed=int(data.get("seed", 1)), rules=rules, slow_seconds=float(data.get("slow_seconds", 2.0)),
                   retry_after=float(data.get("retry_after", 1.0)))

    def draw(self, operation: str) -> list[str]:
        """The faults for one request: at most one of the refusing kinds, plus maybe `slow`."""
        rule = self.rules.get(operation) or self.rules.get("*")
        if rule is None:
            return []
        with self._lock:
            roll = self._rnd.random()
            out = []
            acc = 0.0
            for name in ("throttled", "http429", "http5xx", "lost_reply"):
                acc += getattr(rule, name)
                if roll < acc:
                    out.append(name)
                    break
            if rule.slow and self._rnd.random() < rule.slow:
                out.append("slow")
            for f in out:
                self.injected[f] += 1
            return out
