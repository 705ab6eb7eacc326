"""Drain the webhook inbox: every accepted delivery, in batches, in one run.

Routine in bulk: one run handles a whole burst (the intake announces pending work at most once a
second). Per-topic SOP handling joins here as each SOP lands; today the drain keeps each
order's stage current from fulfillment events and marks deliveries processed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timezone

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from domain.orders import stage_from_fulfillment_event
from flows.runtime import runtime
from tasks.inbox import current_stages, load_pending, mark_processed, save_stages


def _parse(body: str):
    try:
        return json.loads(body)
    except ValueError:
        return None


def _run_name() -> str:
    return f"drain {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S}"


@flow(name="intake-drain", flow_run_name=_run_name)
def drain_inbox(batch_size: int = 500, max_batches: int = 200, linger_seconds: float = 0.0) -> dict[str, int]:
    log = get_run_logger()
    rt = runtime()
    topics: Counter[str] = Counter()
    stage_moves = 0
    progress = create_progress_artifact(progress=0.0, description="deliveries drained (batches)")
    idle_since = time.monotonic()
    for n in range(max_batches):
        rows = load_pending(rt.database_url, batch_size)
        if not rows:
            if time.monotonic() - idle_since >= linger_seconds:
                break
            time.sleep(0.5)
            continue
        idle_since = time.monotonic()
        order_ids = sorted({r["order_id"] for r in rows if r["order_id"]})
        stages = current_stages(rt.database_url, order_ids)
        moves: dict[int, str] = {}
        for r in rows:
            topics[r["topic"]] += 1
            if r["order_id"] is None:
                continue
            current = moves.get(r["order_id"], stages.get(r["order_id"]))
            new = stage_from_fulfillment_event(r["topic"], _parse(r["body"]), current)
            if new:
                moves[r["order_id"]] = new
        stage_moves += save_stages(rt.database_url, moves)
        mark_processed(rt.database_url, [r["id"] for r in rows])
        update_progress_artifact(progress, progress=min(100.0, 100.0 * (n + 1) / max_batches))
        log.info("batch %s: %s deliveries, %s stage changes", n + 1, len(rows), len(moves))
    update_progress_artifact(progress, progress=100.0)
    total = sum(topics.values())
    if total:
        create_table_artifact(
            key="intake-drain",
            table=[{"topic": t, "deliveries": c} for t, c in sorted(topics.items())],
            description=f"{total} deliveries processed, {stage_moves} stage changes",
        )
    log.info("drained %s deliveries (%s stage changes)", total, stage_moves)
    return {"processed": total, "stage_changes": stage_moves}
