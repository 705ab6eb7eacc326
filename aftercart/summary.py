"""Readable summaries for the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from domain.policy import Policy


def policy_summary(out: Console, p: Policy, source: str) -> None:
    out.print(f"[bold green]policy ok[/]: {source}")
    out.print(f"  version [bold]{p.version}[/]  hash {p.content_hash}")

    t = Table(title="approvals", show_lines=False)
    for c in ("role", "decides within", "then", "approvers"):
        t.add_column(c)
    for role in p.approvals.rank:
        r = p.approvals.roles[role]
        then = f"escalate to {r.escalate_to}" if r.on_timeout == "escalate" else f"default: {p.approvals.default_decision}"
        t.add_row(role, f"{r.decide_within_hours:g} h", then, ", ".join(r.approvers))
    out.print(t)

    e = p.order_edit
    t = Table(title=f"order_edit (window {e.window_minutes} min or until {e.window_closes_at_stage})")
    for c in ("rule", "stages", "window", "low", "medium", "restricted", "per kind"):
        t.add_column(c)

    def o(x):
        return x.outcome + (f" ({x.role})" if x.role else "") + (f" +{x.hold}" if x.hold else "")

    for r in e.stage_rules:
        t.add_row(r.name, ", ".join(r.stages), r.window, o(r.tiers["low"]), o(r.tiers["medium"]),
                  o(r.tiers["restricted"]), "; ".join(f"{k}: {o(v)}" for k, v in r.by_class.items()))
    out.print(t)
    for tier, kinds in e.tiers.items():
        out.print(f"  tier {tier}: {', '.join(kinds)}")

    t = Table(title="cancellation (most restrictive match wins)")
    for c in ("rule", "when", "outcome"):
        t.add_column(c)
    for r in p.cancellation.rules:
        when = ", ".join(f"{k}={v}" for k, v in r.when.model_dump(exclude_defaults=True).items())
        t.add_row(r.name, when, o(r.outcome) + (" (pull back from 3PL first)" if r.pull_back_from_3pl else ""))
    out.print(t)

    a = p.address
    out.print(f"[bold]address[/]: hold {a.hold_handle} ({a.hold_reason}), customer window {a.correction_window_hours:g} h, "
              f"then approval ({a.timeout_role}): {', '.join(a.timeout_choices)}; PO boxes for {', '.join(a.po_box_carriers)}")
    c = p.communication
    out.print(f"[bold]communication[/]: languages {', '.join(c.languages)} (fallback {c.fallback_language}); "
              f"follow-up {c.followup.days_after_delivery} d after delivery at {c.followup.local_time:%H:%M} local")
    u = p.upsell
    out.print(f"[bold]upsell[/]: at most {u.max_offers} complements, stock >= {u.min_available}, "
              f"not for {', '.join(u.excluded_gateways)}")
    tr = p.triage
    out.print(f"[bold]triage[/]: duplicates within {tr.duplicate_window_hours:g} h; verify identity on {', '.join(tr.verify_identity_channels)}")
    f = p.fulfillment
    out.print(f"[bold]fulfillment[/]: sync every {f.sync_every_minutes} min; manual routing: {f.manual_routing}")

    t = Table(title="markets")
    for col in ("market", "countries", "language", "currency", "time zone"):
        t.add_column(col)
    for name, m in p.markets.items():
        t.add_row(name + (" (default)" if name == p.default_market else ""), ", ".join(m.countries), m.language,
                  m.currency, m.timezone)
    out.print(t)
