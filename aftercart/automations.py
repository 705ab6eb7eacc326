"""Prefect automations aftercart needs besides the deployments' own triggers.

Zombie runs: a run whose process died (a machine crash, SIGKILL) stays `Running` forever unless
something marks it `Crashed`. Prefect's documented automation does that when a run's heartbeats
stop (runs emit them every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds; `aftercart up` sets 30).
aftercart relies on it: a cancellation request whose run crashed is taken over by the next
request run only once Prefect says the first one is over.

A run waiting for an approver stops its heartbeats on purpose: a suspended run has no process, and
a paused one is not running its flow. Prefect's documented automation expects only heartbeats and
final states, so it marked every approval that waited more than 90 s Crashed, and the approver's
decision then found no run to resume (found by bench/approvals.py). Suspended and Paused end the
window here; the next heartbeat after the run resumes opens a new one.
"""

from __future__ import annotations

from datetime import timedelta

ZOMBIE_AUTOMATION = "aftercart: crash zombie flow runs"
# what ends a run's heartbeat window: the next heartbeat, a final state, or waiting for a person
ZOMBIE_WINDOW_ENDS = ("prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                      "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed", "prefect.flow-run.Suspended",
                      "prefect.flow-run.Paused")


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
            expect=set(ZOMBIE_WINDOW_ENDS),
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
    """Create the automations that do not exist yet (by name), and bring an older definition of
    ours up to date; returns the names created or updated."""
    from prefect.client.orchestration import get_client

    wanted = zombie_automation()
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if existing:
            if set(existing[0].trigger.expect) == set(ZOMBIE_WINDOW_ENDS):
                return []
            client.update_automation(existing[0].id, wanted)
            return [f"{ZOMBIE_AUTOMATION} (updated)"]
    wanted.create()
    return [ZOMBIE_AUTOMATION]
