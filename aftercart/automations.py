"""Prefect automations aftercart needs besides the deployments' own triggers.

Zombie runs: a run whose process died (a machine crash, SIGKILL) stays `Running` forever unless
something marks it `Crashed`. Prefect's documented automation does that when a run's heartbeats
stop (runs emit them every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds; `aftercart up` sets 30).
aftercart relies on it: a cancellation request whose run crashed is taken over by the next
request run only once Prefect says the first one is over.
"""

from __future__ import annotations

from datetime import timedelta

ZOMBIE_AUTOMATION = "aftercart: crash zombie flow runs"


def zombie_automation():
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="Marks a flow run Crashed when its heartbeats stop for 90 s (Prefect's zombie detection).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=90),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message="Flow run marked as crashed due to missing heartbeats.")],
    )


def install_automations() -> list[str]:
    """Create the automations that do not exist yet (by name); returns the names created."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(ZOMBIE_AUTOMATION):
            return []
    zombie_automation().create()
    return [ZOMBIE_AUTOMATION]
