"""SOP metrics report (daily): the store's counts published as Prefect table artifacts.

Each SOP adds its own figures here as it lands (approval rates, time to resolution, ...).
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from config import clock
from flows.runtime import runtime
from tasks.metrics import (gather_address_metrics, gather_counts, gather_edit_metrics, gather_fulfillment_metrics,
                           gather_message_metrics)


@flow(name="sop-metrics")
def metrics_report(days: int = 1) -> dict[str, int]:
    log = get_run_logger()
    rt = runtime()
    since = clock.now() - timedelta(days=days)
    counts = gather_counts(rt.database_url, since)
    for name, table in counts.items():
        create_table_artifact(key=f"metrics-{name}", table=table or [{"note": "nothing recorded"}],
                              description=f"{name} since {since:%Y-%m-%d %H:%M} UTC (policy {rt.policy.ref})")
    address = gather_address_metrics(rt.database_url, since)
    create_table_artifact(key="metrics-address", table=address,
                          description=f"SOP 4 address validation since {since:%Y-%m-%d %H:%M} UTC")
    create_table_artifact(key="metrics-order-edits", table=gather_edit_metrics(rt.database_url, since),
                          description=f"SOP 2 order modification since {since:%Y-%m-%d %H:%M} UTC")
    create_table_artifact(key="metrics-fulfillment", table=gather_fulfillment_metrics(rt.database_url, since),
                          description=f"SOP 7 fulfillment coordination since {since:%Y-%m-%d %H:%M} UTC")
    messages = gather_message_metrics(rt.database_url, since)
    create_table_artifact(key="metrics-messages", table=messages["by_template"] or [{"template": "-", "sent": 0}],
                          description=f"SOP 1 messages sent by template since {since:%Y-%m-%d %H:%M} UTC, and how many "
                                      "orders opened a ticket within 48 h after each (the questions customers still ask)")
    create_table_artifact(key="metrics-self-serve", table=messages["self_serve_vs_tickets"]
                          or [{"request_type": "-", "self_serve_link_opens": 0, "tickets": 0}],
                          description="self-serve link opens against tickets, by request type")
    totals = {name: sum(r["count"] for r in table) for name, table in counts.items()}
    log.info("metrics: %s", totals)
    return totals
