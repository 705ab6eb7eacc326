"""End to end: `aftercart up` from the command line, over loopback, stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"intake-drain", "reconciliation", "approval-deadline-sweep", "sop-metrics", "address-review"}




@pytest.mark.slow
def test_up_serves_every_deployment_and_sandbox_orders_produce_runs(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
    ports = {k: free_port() for k in ("PREFECT", "SANDBOX", "INTAKE", "SMTP")}
    env.update({f"AFTERCART_{k}_PORT": str(v) for k, v in ports.items()})
    env.update(AFTERCART_DATA_DIR=str(data), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    exe = Path(sys.executable).parent / "aftercart"
    proc = subprocess.Popen([str(exe), "up", "--orders-per-minute", "120", "--timeout", "150"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = wait_for(lambda: (data / "run.json").exists() and json.loads((data / "run.json").read_text()), 170,
                    "aftercart up to be ready")
        api = run["urls"]["prefect_api"]
        assert api == f"http://127.0.0.1:{ports['PREFECT']}/api"
        assert httpx.get(f"http://127.0.0.1:{ports['PREFECT']}/", timeout=5).status_code == 200  # the UI
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
        assert NAMES <= {d["name"] for d in deployments}
        by_name = {d["name"]: d for d in deployments}
        assert by_name["reconciliation"]["schedules"][0]["schedule"]["cron"] == "*/10 * * * *"
        assert by_name["approval-deadline-sweep"]["schedules"][0]["schedule"]["cron"] == "*/5 * * * *"
        automations = httpx.post(f"{api}/automations/filter", json={}, timeout=10).json()
        assert any("aftercart.inbox.pending" in a["trigger"]["expect"] for a in automations)
        assert any(a["name"] == "aftercart: crash zombie flow runs" for a in automations)  # zombie detection
        services = httpx.get(f"{api}/admin/settings", timeout=10).json()["server"]["services"]
        # event consumers batched (aftercart.up.PREFECT_SERVER_TUNING): under load they keep up, no drops
        assert (services["task_run_recorder"]["batch_size"], services["event_persister"]["batch_size"]) == (200, 200)

        def processed():
            with sqlite3.connect(data / "aftercart.db") as c:
                return c.execute("select count(*) from webhook_inbox where status = 'processed'").fetchone()[0]

        def completed_drains():
            runs = httpx.post(f"{api}/flow_runs/filter", timeout=10,
                              json={"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}).json()
            return [r for r in runs if r["name"].startswith("drain ")]

        wait_for(lambda: processed() >= 3 and completed_drains(), 90, "sandbox orders drained by a deployment run")

        # SOP 4 across the real services: webhook -> drain -> its own `address-review` run, suspended
        # (no process held) while the customer's correction form is open; the form resumes it
        sandbox = f"http://127.0.0.1:{ports['SANDBOX']}"
        placed = httpx.post(f"{sandbox}/sandbox/orders", timeout=10, json={
            "customer": {"email": "e2e-address@example.com", "locale": "fr"},
            "line_items": [{"sku": "MUG", "quantity": 1}],
            "shipping_address": {"name": "Lea Martin", "address1": "405 Lexington Ave", "address2": "Suite",
                                 "city": "New York", "province_code": "NY", "zip": "10174", "country_code": "US"}}).json()

        def review_run(state):
            runs = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={"flow_runs": {
                "name": {"any_": [f"address-review {placed['name']}"]}}}).json()
            return [r for r in runs if r["state_type"] == state]

        wait_for(lambda: review_run("PAUSED"), 120, "the address-review run to suspend for the customer")
        def mails(template):
            got = httpx.get(f"{sandbox}/mailbox/messages", params={"to": "e2e-address@example.com"}, timeout=10)
            return [m for m in got.json()["messages"] if m["headers"].get("X-Aftercart-Template") == template]

        ask = wait_for(lambda: mails("address_confirm_request"), 30, "the confirmation request")[0]
        assert ask["subject"].startswith("Merci de confirmer")
        # SOP 1 on the same order: the order confirmation, in French, with the self-serve links
        confirmation = wait_for(lambda: mails("order_confirmation"), 30, "the order confirmation")[0]
        assert confirmation["subject"].startswith("La commande") and "/cancel/" in confirmation["text"]
        link = next(w for w in ask["text"].split() if "/address/" in w)
        fixed = httpx.post(link, timeout=10, data={"name": "Lea Martin", "address1": "405 Lexington Ave",
                                                   "address2": "Suite 2100", "city": "New York",
                                                   "province_code": "NY", "zip": "10174"})
        assert fixed.status_code == 200, fixed.text
        wait_for(lambda: review_run("COMPLETED"), 120, "the resumed run to apply the correction")
        order = next(o for o in httpx.get(f"{sandbox}/sandbox/orders.json", timeout=10).json()["orders"]
                     if o["id"] == placed["id"])
        assert "ac:edited:address" in order["tags"] and "ac:hold:address" not in order["tags"]
        # the warehouse takes the order: its signed push reaches the intake, the drain sends fulfillment_started
        assert httpx.post(f"{sandbox}/3pl/orders", timeout=10, json={
            "order_id": placed["id"], "lines": [{"sku": "MUG", "quantity": 1}]}).status_code == 200
        started = wait_for(lambda: mails("fulfillment_started"), 120, "fulfillment_started after the 3PL push")[0]
        assert started["subject"].startswith("La commande")
        # the customer replies to it by mail: the sandbox mailbox forwards it, it becomes a ticket on the order
        import smtplib
        from email.message import EmailMessage

        reply = EmailMessage()
        reply["From"], reply["To"], reply["Subject"] = "e2e-address@example.com", "orders@sandbox.test", "Re: commande"
        reply["Message-ID"], reply["In-Reply-To"] = "<e2e-reply@example.com>", started["headers"]["Message-ID"]
        reply.set_content("Pouvez-vous livrer avant Noël ?")
        with smtplib.SMTP("127.0.0.1", ports["SMTP"]) as smtp:
            smtp.send_message(reply)

        def ticket():
            with sqlite3.connect(data / "aftercart.db") as c:
                return c.execute("select order_id, reply_to_template from tickets").fetchall()

        assert wait_for(ticket, 30, "the reply to become a ticket") == [(placed["id"], "fulfillment_started")]
        status = subprocess.run([str(exe), "status"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    for name, child in run["children"].items():
        with pytest.raises(ProcessLookupError):
            os.kill(child["pid"], 0)
    assert "stopping prefect-server" in out and not (data / "run.json").exists()
