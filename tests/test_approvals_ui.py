"""An approver resumes a waiting run from the real Prefect UI (Playwright driving Debian's Chromium).

The run waits in the Prefect server that `aftercart up` would start; the approver opens the run,
clicks Resume, reads the order context, fills the typed form and submits; the decision's effect
(the order cancelled) then shows in the sandbox. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tasks.db import approval_store
from tasks.db.engine import migrate
from tests.helpers import free_port, wait_for
from tests.sandbox_fixtures import place, served_sandbox

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("AFTERCART_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.slow



@pytest.fixture
def prefect_server(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_API_URL=api)
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 90, "the Prefect server")
        yield api
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_approver_resumes_from_the_prefect_ui_and_the_effect_shows_in_the_sandbox(prefect_server, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("AFTERCART_REQUIRE_CHROMIUM"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    api = prefect_server
    ui = api.removesuffix("/api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{tmp_path / 'aftercart.db'}"
    migrate(db)
    smtp = free_port()
    with served_sandbox(smtp_port=smtp) as s:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
        env.update(PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false", AFTERCART_DATABASE_URL=db,
                   AFTERCART_SHOPIFY_ADMIN_URL=f"{s.url}/admin/api/2026-10/graphql.json",
                   AFTERCART_SHOPIFY_ACCESS_TOKEN="tok", AFTERCART_SMTP_PORT=str(smtp), PREFECT_UI_URL=ui)
        runner = subprocess.Popen([sys.executable, "-m", "tests.approval_demo"], cwd=ROOT, env=env,
                                  stdout=open(tmp_path / "runner.log", "w"), stderr=subprocess.STDOUT)
        try:
            oid = place(s.sandbox)
            name = s.sandbox.world.orders[oid].name
            dep = wait_for(lambda: httpx.get(f"{api}/deployments/name/approval-demo/approval-demo").json().get("id"),
                        60, "the deployment")
            body = {"parameters": {"database_url": db, "order_id": oid, "order_name": name}}

            def create_run():  # a SQLite Prefect server may answer "database is locked" while starting up
                r = httpx.post(f"{api}/deployments/{dep}/create_flow_run", json=body, timeout=30)
                return r.json()["id"] if r.status_code == 201 else None

            run_id = wait_for(create_run, 60, "the Prefect server to create the run")
            wait_for(lambda: httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["name"] == "Suspended", 90,
                  "the run to wait for a decision")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                # the approver finds the waiting run by the order's name
                page.goto(f"{ui}/runs")
                page.get_by_text(f"cancellation-review {name}").first.wait_for(timeout=30000)
                page.screenshot(path=str(ARTIFACTS / "approval-1-runs.png"))
                def state():
                    return httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["name"]

                def resume_from_the_ui(shots: bool) -> None:
                    page.goto(f"{ui}/runs")
                    page.get_by_text(f"cancellation-review {name}").first.click()
                    page.get_by_role("button", name="Resume").first.click()
                    dialog = page.locator(".p-modal")
                    dialog.get_by_text("Cancel this order while the warehouse picks it?").wait_for(timeout=15000)
                    if shots:
                        page.screenshot(path=str(ARTIFACTS / "approval-2-resume-form.png"))
                    dialog.locator(".p-select-button__control").click()
                    page.keyboard.press("ArrowDown")  # opens the decision list
                    page.get_by_role("option", name="approve", exact=True).click()
                    boxes = dialog.locator("textarea")
                    boxes.nth(0).fill("ops@sandbox.test")
                    boxes.nth(1).fill("pulled back from the pick, fine to cancel")
                    if shots:
                        page.screenshot(path=str(ARTIFACTS / "approval-3-filled.png"))
                    dialog.get_by_role("button", name="Submit").click()

                # A SQLite Prefect server can lose the resume to "database is locked" (the run stays
                # Suspended and the UI says it failed): the approver submits again, as a person would.
                for attempt in range(3):
                    resume_from_the_ui(shots=attempt == 0)
                    try:
                        wait_for(lambda: state() != "Suspended", 30, "the run to leave Suspended")
                        break
                    except AssertionError:
                        if attempt == 2:
                            raise
                wait_for(lambda: httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["type"] == "COMPLETED", 120,
                      "the resumed run to finish")
                wait_for(lambda: s.sandbox.world.orders[oid].cancelled_at is not None, 30, "the cancellation")
                page.goto(s.url + "/")
                page.screenshot(path=str(ARTIFACTS / "approval-4-sandbox.png"), full_page=True)
                row = page.locator("tbody tr", has_text=name).first.inner_text()
                browser.close()
        finally:
            runner.terminate()
            runner.wait(timeout=30)
    assert "cancelled" in row
    a = approval_store.get_approval(db, f"cancellation:{oid}:c1")
    assert (a.status, a.decided_by, a.note) == ("approved", "ops@sandbox.test", "pulled back from the pick, fine to cancel")
    assert s.sandbox.ops.applied.count(("cancel", oid)) == 1
