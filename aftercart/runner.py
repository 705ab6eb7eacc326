"""Serve the deployments, running the exception deployments' flow runs in threads of this process.

Prefect's runner starts every flow run, and every resumed run, as a new `python -m prefect.engine`
process. Importing Prefect and a flow there costs about 2.8 CPU-s before the flow's first line.
Exception runs are one per order that needs a person: short, mostly waiting, and they arrive
together (500 approvers' decisions in a morning). Behind those imports, two cores finished about
0.34 runs/s, so decisions waited minutes for their effect.

`InProcessRunner` is Prefect's `Runner` with one change: a flow run of a deployment named in
`in_process` is started by `ThreadStarter`, which calls Prefect's `run_flow` in a worker thread of
the serving process, the way `python -m prefect.engine` calls it. Everything else is Prefect's:
polling, the concurrency limit, the Pending proposal, crash reporting when the run ends with an
error the engine did not report, heartbeats (the engine sends them from its own thread),
cancellation, hooks. The batch and scheduled deployments keep a process of their own, so a long
drain still gets a core to itself.

An in-process run sends no heartbeats. Prefect's zombie automation crashes a run whose heartbeats
stop, and in the 500-approval benchmark it crashed a fifth of the in-process runs 90 s after they
suspended although their only heartbeat came before the Suspended state (the window was reopened
by the events' processing order, not by a late heartbeat). Heartbeats guard against a flow-run
process dying; an in-process run dies only with this process, so instead, when this runner
starts, any run of its in-process deployments still Running or Pending is an orphan of the
previous serving process and is marked Crashed, which is what the automation would have done.
One serving process per Prefect server executes these deployments (as `aftercart up` runs it).

Cancelling an in-process run raises `TerminationSignal` in its thread (what SIGTERM raises in a
flow-run process). In a process, Prefect's runner first tells the engine over its control channel
that the signal means "cancel", and the engine reads that through `prefect.flow_engine.
_termination_intent()`; here the answer is per thread, so that one function is wrapped to answer
"cancel" in a cancelled run's thread. The engine then records Cancelled (not Crashed) and Prefect's
cancellation manager finishes as for a process. A thread stuck in a blocking call only sees the
signal when the call returns to Python.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import signal
import threading
import weakref
from typing import Any

import anyio
import anyio.abc
from prefect.runner import Runner

log = logging.getLogger("aftercart.runner")

_ids = itertools.count(1)
_cancelled_threads: set[int] = set()


def _install_cancel_intent() -> None:
    """Answer Prefect's engine "cancel" in the thread of an in-process run being cancelled."""
    import prefect.flow_engine as engine

    prefect_intent = engine._termination_intent
    if getattr(prefect_intent, "aftercart", False):
        return

    def termination_intent():
        return "cancel" if threading.get_ident() in _cancelled_threads else prefect_intent()

    termination_intent.aftercart = True
    engine._termination_intent = termination_intent


_thread_clients = threading.local()
_quiet_settings: list[tuple[Any, Any]] = []  # (the process's settings, the same without heartbeats)


def _thread_client() -> Any:
    """This worker thread's Prefect client context, opened on its first run and kept for the next.
    Left to itself the engine builds two clients per run (each with a TLS context, 7% of
    the runner's time in the 500-approval benchmark); runs in one thread never overlap, so they can
    share one (a run's submitted tasks share their run's client anyway)."""
    from prefect.context import SyncClientContext

    ctx = getattr(_thread_clients, "ctx", None)
    if ctx is None:
        ctx = SyncClientContext()
        ctx.__enter__()  # opens the client (and checks the server's version once); kept while the thread lives
        weakref.finalize(ctx, ctx.client.__exit__, None, None, None)  # closed with the thread's copy
        _thread_clients.ctx = ctx
    return ctx


def _without_heartbeats() -> Any:
    """The settings context of an in-process run: the process's settings with heartbeats off (an
    in-process run dies only with this process), built once rather than per run."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    current = get_settings_context()
    if not _quiet_settings or _quiet_settings[0][0] is not current.settings:
        _quiet_settings[:] = [(current.settings, current.settings.copy_with_update(
            updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))]
    return SettingsContext(profile=current.profile, settings=_quiet_settings[0][1])


_termination: list[type[BaseException]] = []


def _termination_signal() -> type[BaseException]:
    """Prefect's TerminationSignal for SIGTERM, as a class the interpreter can raise without arguments."""
    if not _termination:
        from prefect.exceptions import TerminationSignal

        class InProcessTermination(TerminationSignal):
            def __init__(self) -> None:
                super().__init__(signal.SIGTERM)

        _termination.append(InProcessTermination)
    return _termination[0]


class ThreadRun:
    """One flow run executing in a worker thread, shaped like the process Prefect's runner tracks:
    `pid` (an id of its own, never a real process id), `returncode` (None while running)."""

    def __init__(self, flow: Any, flow_run: Any) -> None:
        self.flow, self.flow_run = flow, flow_run
        self.pid = next(_ids)
        self.returncode: int | None = None
        self.cancel_requested = False
        self._thread_id: int | None = None  # set while the flow executes: the only time it can be cancelled
        self._lock = threading.Lock()
        self._done = threading.Event()

    def run(self) -> None:
        try:
            code = self._execute()
        except _termination_signal():  # a cancellation that landed in the engine's own exception handling
            code = 0
        while True:  # no cancellation may reach this thread once it is back in the worker pool
            try:
                with self._lock:
                    self._thread_id = None
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
                break
            except _termination_signal():  # raised just as the run ended: cleared above on the next pass
                code = 0
        _cancelled_threads.discard(threading.get_ident())
        self.returncode = code
        self._done.set()

    def _execute(self) -> int:
        """Run the flow the way `python -m prefect.engine` does; the exit code a process would have."""
        from prefect.context import SyncClientContext
        from prefect.exceptions import Abort, Pause, TerminationSignal
        from prefect.flow_engine import load_flow_run, run_flow
        from prefect.logging.loggers import flow_run_logger

        with self._lock:
            if self.cancel_requested:
                return 0
            self._thread_id = threading.get_ident()
        client = SyncClientContext.__var__.set(_thread_client())  # this run's context only (a copy per call)
        try:
            with _without_heartbeats():
                flow_run = load_flow_run(self.flow_run.id)
                run_flow(self.flow, flow_run=flow_run, return_type="state",
                         error_logger=flow_run_logger(flow_run=flow_run))
            return 0
        except (Abort, Pause):
            return 0  # the engine has already recorded the aborted or suspended state
        except TerminationSignal:
            return 0 if self.cancel_requested else 1
        except Exception:
            log.exception("flow run %s ended with an error its engine did not report", self.flow_run.id)
            return 1
        finally:
            SyncClientContext.__var__.reset(client)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def cancel(self) -> None:
        """Raise TerminationSignal in the run's thread, once, and only while it executes the flow."""
        with self._lock:
            if self.cancel_requested:
                return
            self.cancel_requested = True
            tid = self._thread_id
            if tid is not None:
                _cancelled_threads.add(tid)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(_termination_signal()))


class _ThreadTerminationScope:
    """Prefect's ProcessTerminationScope for a ThreadRun: never signals a real process."""

    wait_after_graceful_kill = True

    def __init__(self, run: ThreadRun) -> None:
        self._run = run

    def is_alive(self, pid: int) -> bool:
        return self._run.is_alive()

    def graceful_kill(self, pid: int) -> None:
        self._run.cancel()

    def hard_kill(self, pid: int) -> None:
        self._run.cancel()

    def close(self) -> None:
        pass


class ThreadStarter:
    """A Prefect runner starter (`start(flow_run, task_status)`) running the flow in a worker thread."""

    def __init__(self, flow: Any, limiter: anyio.CapacityLimiter) -> None:
        self._flow, self._limiter = flow, limiter

    async def start(self, flow_run: Any, task_status: anyio.abc.TaskStatus = anyio.TASK_STATUS_IGNORED) -> None:
        from prefect.runner._process_manager import ProcessHandle

        run = ThreadRun(self._flow, flow_run)
        task_status.started(ProcessHandle(run, termination_scope=_ThreadTerminationScope(run)))
        await anyio.to_thread.run_sync(run.run, limiter=self._limiter)


class InProcessRunner(Runner):
    """Prefect's Runner; runs of the deployments in `in_process` (name -> flow) execute in threads here."""

    def __init__(self, *args: Any, in_process: dict[str, Any] | None = None, threads: int = 8, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._in_process = dict(in_process or {})
        self._threads = threads

    async def __aenter__(self):
        _install_cancel_intent()
        await super().__aenter__()
        await self._crash_orphans()
        poller = self._scheduled_run_poller
        prefect_starter = poller._resolve_starter
        limiter = anyio.CapacityLimiter(self._threads)

        def resolve_starter(flow_run: Any):
            name = (self._deployment_registry.get_deployment_name(flow_run.deployment_id)
                    if flow_run.deployment_id else None)
            flow = self._in_process.get(name)
            return ThreadStarter(flow, limiter) if flow is not None else prefect_starter(flow_run)

        poller._resolve_starter = resolve_starter
        return self


    async def _crash_orphans(self) -> None:
        """Runs of the in-process deployments left Running or Pending by a previous serving process."""
        from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState,
                                                    FlowRunFilterStateType)
        from prefect.client.schemas.objects import StateType
        from prefect.states import Crashed

        ids = [d for d in self._deployment_registry.get_deployment_ids()
               if self._deployment_registry.get_deployment_name(d) in self._in_process]
        if not ids:
            return
        orphans: list = []
        while page := await self._client.read_flow_runs(limit=200, flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])))):
            for run in page:
                await self._client.set_flow_run_state(run.id, Crashed(
                    message="the serving process that executed this run stopped before it ended"), force=True)
            orphans += page
        if orphans:
            log.warning("marked %d runs left by the previous serving process Crashed: %s", len(orphans),
                        ", ".join(r.name for r in orphans))


def serve(deployments: list, in_process: dict[str, Any], *, limit: int, query_seconds: float) -> None:
    """`prefect.serve`, with the runs of the deployments named in `in_process` executed in threads."""
    import asyncio

    from prefect.exceptions import TerminationSignal

    runner = InProcessRunner(limit=limit, query_seconds=query_seconds, in_process=in_process, threads=limit)
    for d in deployments:
        runner.add_deployment(d)
    log.info("serving %d deployments; in this process: %s", len(deployments), ", ".join(sorted(in_process)) or "none")
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal) as exc:
        log.info("received %s, shutting down", type(exc).__name__)
