"""The long-running services `aftercart up` starts, one process each: `python -m aftercart.services NAME`."""

from __future__ import annotations

import logging
import os
import sys


def run_sandbox() -> None:
    import uvicorn

    from config.settings import load_settings
    from intake.self_serve import cancel_link, edit_link
    from sandbox.app import Sandbox, SandboxConfig, create_app

    s = load_settings()
    sandbox = Sandbox(SandboxConfig(
        shop=s.shop_domain, access_token=s.shopify_access_token.get_secret_value(),
        webhook_secret=s.webhook_secret.get_secret_value(), webhook_address=f"{s.intake_url()}/webhooks/shopify",
        plan=os.environ.get("AFTERCART_SANDBOX_PLAN", "standard"), smtp_port=s.smtp_port,
        threepl_push_url=f"{s.intake_url()}/webhooks/3pl", threepl_secret=s.threepl_push_secret.get_secret_value(),
        store_email=s.mail_from, inbound_email_url=f"{s.intake_url()}/inbound/email",
        inbound_email_secret=s.inbound_email_secret.get_secret_value(),
        self_serve_links=lambda oid: {
            "change": edit_link(s.customer_url(), s.link_secret.get_secret_value(), oid),
            "cancel": cancel_link(s.customer_url(), s.link_secret.get_secret_value(), oid)},
    ))
    sandbox.start_traffic(float(os.environ.get("AFTERCART_ORDERS_PER_MINUTE", "0") or 0))
    uvicorn.run(create_app(sandbox), host=s.host, port=s.sandbox_port, log_level="warning")


def run_intake() -> None:
    import uvicorn

    from config.policy_loader import load_policy
    from config.settings import load_settings
    from intake.app import create_app, prefect_emitter
    from intake.corrections import Corrections
    from intake.self_serve import SelfServe, start_cancellation_run, start_edit_run
    from tasks.address_io import verify_now
    from tasks.approvals_io import resume_waiting_run
    from tasks.db.engine import migrate

    s = load_settings()
    url = s.resolved_database_url()
    migrate(url)
    policy = load_policy(s.policy)
    app = create_app(url, s.webhook_secret.get_secret_value(), prefect_emitter(), s.intake_max_body_bytes,
                     corrections=Corrections(s.link_secret.get_secret_value(), lambda: policy, resume_waiting_run,
                                             verify_now),
                     self_serve=SelfServe(s.link_secret.get_secret_value(), lambda: policy,
                                          lambda oid, name, reason: start_cancellation_run(oid, name, reason),
                                          lambda oid, name, request: start_edit_run(oid, name, request)),
                     threepl_secret=s.threepl_push_secret.get_secret_value(),
                     inbound_secret=s.inbound_email_secret.get_secret_value())
    uvicorn.run(app, host=s.host, port=s.intake_port, log_level="warning")


def run_serve() -> None:
    from aftercart.automations import install_automations
    from aftercart.deployments import in_process_flows, runner_deployments
    from aftercart.runner import serve

    # exception runs (one per order that needs a person) execute in threads of this process;
    # AFTERCART_EXCEPTION_RUNS=process gives each its own process, as Prefect's serve does
    mode = os.environ.get("AFTERCART_EXCEPTION_RUNS", "thread")
    if mode not in ("thread", "process"):
        sys.exit(f"AFTERCART_EXCEPTION_RUNS must be 'thread' or 'process', not {mode!r}")
    created = install_automations()  # zombie detection: a run whose process died is marked Crashed
    if created:
        logging.getLogger("aftercart.serve").info("created Prefect automations: %s", ", ".join(created))
    in_process = in_process_flows() if mode == "thread" else {}
    serve(runner_deployments(), in_process, limit=int(os.environ.get("AFTERCART_SERVE_LIMIT", "8")),
          query_seconds=float(os.environ.get("AFTERCART_SERVE_QUERY_SECONDS", "1")))


SERVICES = {"sandbox": run_sandbox, "intake": run_intake, "serve": run_serve}

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if len(sys.argv) != 2 or sys.argv[1] not in SERVICES:
        sys.exit(f"usage: python -m aftercart.services {{{','.join(SERVICES)}}}")
    SERVICES[sys.argv[1]]()
