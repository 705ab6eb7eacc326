"""One scenario's world: a fresh sandbox on a simulated clock, the intake, a fresh store, the
policy, and the exception runs in play.

Everything is real and on loopback: the sandbox (Shopify Admin GraphQL, webhooks, 3PL, carrier,
SMTP mailbox) and the intake run as HTTP servers in threads; aftercart's settings point at them
through the environment; its clock (config.clock) reads the sandbox's simulated clock. Exception
runs (address reviews, edits, cancellations) are the real flows, each in its own thread, pausing
in-process for a person exactly as they would for the UI's Resume form. `settle()` brings the
world to rest after each step: webhooks and 3PL pushes delivered, the intake drained by the real
drain flow, every run finished or waiting for a person.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from config import clock as aftercart_clock
from sandbox.clock import Clock

WEBHOOK_SECRET = "scenario-webhook-secret"
LINK_SECRET = "scenario-link-secret"
FLOWS = {  # deployment -> the flow the launcher plays in-process
    "address-review/address-review": ("flows.address_validation", "address_review"),
    "cancellation-review/cancellation-review": ("flows.cancellation_review", "cancellation_review"),
    "order-edit/order-edit": ("flows.order_edit", "order_edit"),
}


class StepError(Exception):
    """The world refused what a step asked (the warehouse cannot ship a held order...)."""


@dataclass
class Run:
    name: str
    tag: str
    thread: threading.Thread
    result: dict[str, Any] = field(default_factory=dict)


class Runs:
    """Exception runs in threads, each tagged so its Prefect state can be read."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self._launched: list[tuple[str, dict[str, Any], str, str | None]] = []
        self._keys: dict[str, str] = {}
        self._started = 0  # launches so far: each gets its own run id
        self._lock = threading.Lock()

    def start(self, name: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Run:
        import prefect

        tag = f"scenario-run-{uuid.uuid4().hex[:12]}"
        ctx = contextvars.copy_context()
        run = Run(name, tag, threading.Thread(target=lambda: None, daemon=True))

        def play() -> None:
            try:
                with prefect.tags(tag):
                    run.result["value"] = fn(*args, **kw)
            except BaseException as exc:  # reported by the runner as the step's error
                run.result["error"] = exc

        run.thread = threading.Thread(target=lambda: ctx.run(play), daemon=True, name=name)
        self.runs.append(run)
        run.thread.start()
        return run

    def launcher(self, deployment: str, parameters: dict[str, Any], run_name: str,
                 idempotency_key: str | None = None) -> str:
        """tasks.launch's hook: remember the start; `start_launched` plays it after the caller's flow."""
        if deployment not in FLOWS:
            raise ValueError(f"the scenario runner cannot play deployment {deployment!r}")
        with self._lock:
            if idempotency_key and idempotency_key in self._keys:
                return self._keys[idempotency_key]
            self._started += 1
            run_id = f"scenario:{self._started}"
            if idempotency_key:
                self._keys[idempotency_key] = run_id
            self._launched.append((deployment, parameters, run_name, idempotency_key))
            return run_id

    def launches_waiting(self) -> bool:
        with self._lock:
            return bool(self._launched)

    def start_launched(self) -> int:
        import importlib

        with self._lock:
            todo, self._launched = self._launched, []
        for deployment, parameters, run_name, _ in todo:
            module, name = FLOWS[deployment]
            self.start(run_name, getattr(importlib.import_module(module), name), **parameters)
        return len(todo)

    def quiet(self, timeout: float = 120.0) -> None:
        """Wait until every run has finished or waits for a person (its Prefect run is Paused)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        end = time.monotonic() + timeout
        while True:
            busy = []
            alive = [r for r in self.runs if r.thread.is_alive()]
            if alive:
                with get_client(sync_client=True) as c:
                    for r in alive:
                        found = c.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[r.tag])))
                        if not (found and found[0].state and found[0].state.is_paused()):
                            busy.append(r)
            busy = [r for r in busy if r.thread.is_alive()]
            if not busy:
                return
            if time.monotonic() > end:
                raise StepError(f"runs still busy after {timeout:.0f} s: {', '.join(r.name for r in busy)}")
            time.sleep(0.1)

    def failures(self) -> list[tuple[str, BaseException]]:
        return [(r.name, r.result.pop("error")) for r in self.runs if "error" in r.result]


class World:
    """Servers, store, environment and runs of one scenario; use as a context manager."""

    def __init__(self, start, policy_file: Path | None, workdir: Path | None = None):
        self.start = start
        self.policy_file = policy_file
        self.workdir = workdir
        self.runs = Runs()
        self._stack = ExitStack()

    def __enter__(self) -> "World":
        from sandbox.app import Sandbox, SandboxConfig, create_app as create_sandbox
        from sandbox.serving import free_port, reserve_port, serve_app
        from tasks import launch
        from tasks.db.engine import migrate

        s = self._stack
        tmp = Path(s.enter_context(tempfile.TemporaryDirectory(prefix="aftercart-scenario-")))
        self.database_url = f"sqlite:///{tmp / 'aftercart.db'}"
        migrate(self.database_url)
        intake = reserve_port()  # held from here: the sandbox's webhooks name it before the intake starts
        s.callback(intake.close)
        intake_port, smtp = intake.getsockname()[1], free_port()
        self.intake_url = f"http://127.0.0.1:{intake_port}"
        self.clock = Clock(self.start)
        self.sandbox = Sandbox(SandboxConfig(
            webhook_secret=WEBHOOK_SECRET, access_token="tok", retry_base=0.05, plan="plus", smtp_port=smtp,
            webhook_address=f"{self.intake_url}/webhooks/shopify", threepl_push_url=f"{self.intake_url}/webhooks/3pl",
            store_email="orders@sandbox.test", inbound_email_url=f"{self.intake_url}/inbound/email"), clock=self.clock)
        self.sandbox.ops.cancel_delay = 0.0
        self.sandbox_url = s.enter_context(serve_app(create_sandbox(self.sandbox)))
        s.enter_context(environ({
            "AFTERCART_DATABASE_URL": self.database_url, "AFTERCART_DATA_DIR": str(tmp / "data"),
            "AFTERCART_POLICY": str(self.policy_file) if self.policy_file else None,
            "AFTERCART_SHOPIFY_ADMIN_URL": f"{self.sandbox_url}/admin/api/2026-10/graphql.json",
            "AFTERCART_SHOPIFY_ACCESS_TOKEN": "tok", "AFTERCART_SMTP_PORT": str(smtp),
            "AFTERCART_SMTP_HOST": "127.0.0.1", "AFTERCART_SMTP_USERNAME": None, "AFTERCART_SMTP_PASSWORD": None,
            "AFTERCART_THREEPL_URL": self.sandbox_url, "AFTERCART_HELPDESK_URL": self.sandbox_url,
            "AFTERCART_PUBLIC_URL": self.intake_url, "AFTERCART_LINK_SECRET": LINK_SECRET,
            "AFTERCART_WEBHOOK_SECRET": WEBHOOK_SECRET, "AFTERCART_ADDRESS_VERIFIER_URL": None,
            "AFTERCART_THREEPL_PUSH_SECRET": None, "AFTERCART_INBOUND_EMAIL_SECRET": None,
        }))
        from config.policy_loader import load_policy

        self.policy = load_policy(self.policy_file)
        s.enter_context(serve_app(self._intake_app(), sock=intake))
        s.enter_context(aftercart_clock.use(self.clock.now))
        s.enter_context(launch.use(self.runs.launcher))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _intake_app(self):
        from intake.app import create_app as create_intake
        from intake.corrections import Corrections
        from intake.self_serve import SelfServe, start_cancellation_run, start_edit_run
        from tasks.approvals_io import resume_waiting_run

        policy = self.policy
        return create_intake(
            self.database_url, WEBHOOK_SECRET, emit=None,
            corrections=Corrections(LINK_SECRET, lambda: policy, resume_waiting_run),
            self_serve=SelfServe(LINK_SECRET, lambda: policy, lambda oid, name, reason: start_cancellation_run(
                oid, name, reason), lambda oid, name, request: start_edit_run(oid, name, request)),
            threepl_secret=self.sandbox.config.threepl_secret, inbound_secret=self.sandbox.config.inbound_email_secret)

    def settle(self, rounds: int = 30) -> None:
        """Deliver, drain and let every run reach a finish or a person, until nothing moves."""
        from flows.intake_drain import drain_inbox
        from tasks.db.store import pending_deliveries

        for _ in range(rounds):
            if not (self.sandbox.sender.wait_idle(60) and self.sandbox.threepl.wait_idle(60)):
                raise StepError("the sandbox could not deliver its webhooks to the intake within 60 s")
            processed = 0
            if pending_deliveries(self.database_url, 1):  # a drain run only when there is something to drain
                processed = drain_inbox(batch_size=500)["processed"]
            started = self.runs.start_launched()
            self.runs.quiet()
            self._raise_failures()
            if not processed and not started and self.sandbox.sender.pending() == 0 \
                    and self.sandbox.threepl.wait_idle(0.01) and not self.runs.launches_waiting():
                return
        raise StepError(f"the world did not come to rest after {rounds} rounds of webhooks and runs")

    def _raise_failures(self) -> None:
        failed = self.runs.failures()
        if failed:
            raise StepError("; ".join(f"run {name} failed: {type(exc).__name__}: {exc}" for name, exc in failed))


@contextmanager
def environ(values: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
