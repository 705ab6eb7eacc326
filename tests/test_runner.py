"""The serving runner: exception deployments' runs execute in threads of the serving process (no
process per run, none per resume); other deployments keep Prefect's process per run."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest
from prefect import flow

from tests.helpers import start_in_thread, wait_for

SEEN: dict[str, list] = {"where": [], "ticks": [], "decided": [], "pids": [], "clients": []}


@flow(name="runner-test-approval")
def waits_for_a_person(label: str) -> str:
    from prefect.flow_runs import suspend_flow_run

    SEEN["where"].append((label, os.getpid(), threading.current_thread().name))
    suspend_flow_run(key="decision", timeout=120)
    SEEN["decided"].append(label)


@flow(name="runner-test-broken")
def broken() -> None:
    raise ValueError("a bad policy value")


@flow(name="runner-test-endless")
def endless() -> None:
    while True:
        SEEN["ticks"].append(time.monotonic())
        time.sleep(0.05)


@flow(name="runner-test-client")
def notes_its_client() -> None:
    from prefect import get_client

    from aftercart.runner import _thread_clients

    SEEN["clients"].append((threading.get_ident(), id(get_client(sync_client=True)),
                            get_client(sync_client=True) is _thread_clients.ctx.client))


@flow(name="runner-test-batch")
def in_its_own_process(path: str) -> None:
    with open(path, "w") as f:
        f.write(str(os.getpid()))


def _state(run_id):
    from prefect import get_client

    with get_client(sync_client=True) as c:
        return c.read_flow_run(run_id).state


DEPLOYMENTS = [(waits_for_a_person, "approval"), (broken, "broken"), (endless, "endless"),
               (in_its_own_process, "batch"), (notes_its_client, "client")]


@contextlib.contextmanager
def serving():
    """The runner `aftercart serve` uses, in a thread of this process (which is what it serves in)."""
    import asyncio

    from aftercart.runner import InProcessRunner

    r = InProcessRunner(limit=4, query_seconds=0.2, pause_on_shutdown=False, in_process={
        "approval": waits_for_a_person, "broken": broken, "endless": endless, "client": notes_its_client})
    for f, name in DEPLOYMENTS:
        r.add_deployment(f.to_deployment(name=name))
    thread, result = start_in_thread(asyncio.run, r.start())
    wait_for(lambda: getattr(r, "started", False) or "error" in result, 30, "the runner to start")
    assert "error" not in result, result
    yield r
    r.execute_in_background(r.astop).result(timeout=60)
    thread.join(60)
    assert not thread.is_alive() and "error" not in result, result


@pytest.fixture
def runner(prefect_harness):
    with serving() as r:
        yield r


def test_exception_runs_execute_suspend_resume_and_fail_inside_the_serving_process(runner):
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run

    SEEN["where"].clear(), SEEN["decided"].clear()
    runs = [run_deployment("runner-test-approval/approval", parameters={"label": f"#{i}"}, timeout=0).id
            for i in range(3)]
    bad = run_deployment("runner-test-broken/broken", timeout=0).id
    wait_for(lambda: all(_state(r).name == "Suspended" for r in runs), 60, "three runs waiting for a person")
    assert {(pid, name.startswith("AnyIO worker")) for _, pid, name in SEEN["where"]} == {(os.getpid(), True)}
    failed = wait_for(lambda: _state(bad) if _state(bad).is_final() else None, 60, "the broken run to end")
    assert failed.name == "Failed" and "a bad policy value" in failed.message  # reported by the engine, not Crashed
    for r in runs:
        resume_flow_run(r)
    done = wait_for(lambda: [s for s in map(_state, runs) if s.is_final()] if all(
        _state(r).is_final() for r in runs) else None, 60, "the resumed runs to finish")
    assert [s.name for s in done] == ["Completed"] * 3
    assert sorted(SEEN["decided"]) == ["#0", "#1", "#2"]
    assert len(SEEN["where"]) == 6  # each run re-ran from the top once, in this process again
    assert {pid for _, pid, _ in SEEN["where"]} == {os.getpid()}


def test_an_in_process_run_can_be_cancelled_and_the_runner_keeps_serving(runner):
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    SEEN["ticks"].clear()
    run = run_deployment("runner-test-endless/endless", timeout=0).id
    wait_for(lambda: len(SEEN["ticks"]) > 3, 60, "the endless run to be running")
    with get_client(sync_client=True) as c:
        c.set_flow_run_state(run, Cancelling(message="ops cancelled it"))
    state = wait_for(lambda: _state(run) if _state(run).is_final() else None, 60, "the cancelled run to end")
    assert state.name == "Cancelled"
    stopped_at = len(SEEN["ticks"])
    time.sleep(0.5)
    assert len(SEEN["ticks"]) == stopped_at  # the thread stopped, not only the state
    again = run_deployment("runner-test-broken/broken", timeout=0).id  # and the runner still serves
    assert wait_for(lambda: _state(again) if _state(again).is_final() else None, 60, "another run").name == "Failed"


def test_in_process_runs_use_their_threads_client_kept_from_run_to_run(runner):
    """The engine's client in an in-process run is its worker thread's, opened once: not two new
    clients per run."""
    from prefect.deployments import run_deployment

    from aftercart.runner import _thread_client

    SEEN["clients"].clear()
    for _ in range(3):
        run = run_deployment("runner-test-client/client", timeout=0).id
        assert wait_for(lambda: _state(run) if _state(run).is_final() else None, 60, "the run").name == "Completed"
    assert [used for _, _, used in SEEN["clients"]] == [True] * 3
    by_thread = {}
    for thread, client, _ in SEEN["clients"]:
        assert by_thread.setdefault(thread, client) == client  # one client per thread, whatever the run
    got = {}

    def twice(name):
        got[name] = (_thread_client(), _thread_client())

    threads = [threading.Thread(target=twice, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got["a"][0] is got["a"][1] and got["b"][0] is got["b"][1] and got["a"][0] is not got["b"][0]


def test_other_deployments_keep_a_process_of_their_own(runner, tmp_path):
    from prefect.deployments import run_deployment

    out = tmp_path / "pid"
    run = run_deployment("runner-test-batch/batch", parameters={"path": str(out)}, timeout=0).id
    state = wait_for(lambda: _state(run) if _state(run).is_final() else None, 120, "the batch run to end")
    assert state.name == "Completed"
    assert int(out.read_text()) != os.getpid()


def test_runs_left_running_by_a_previous_serving_process_are_marked_crashed_when_it_starts(prefect_harness):
    """An in-process run has no heartbeats (it dies only with the serving process): the next serving
    process marks what the last one left Running or Pending as Crashed. Suspended runs are left alone."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Crashed, Pending, Running, Suspended

    for f, name in DEPLOYMENTS:
        f.to_deployment(name=name).apply()
    left = [run_deployment("runner-test-approval/approval", parameters={"label": f"left {i}"}, timeout=0).id
            for i in range(3)]
    other = run_deployment("runner-test-batch/batch", parameters={"path": "/nonexistent/x"}, timeout=0).id
    with get_client(sync_client=True) as c:
        for run, state in zip(left + [other], [Running(), Pending(), Suspended(timeout_seconds=600), Running()]):
            c.set_flow_run_state(run, state, force=True)
    with serving():
        assert [_state(r).name for r in left] == ["Crashed", "Crashed", "Suspended"]
        assert "serving process" in _state(left[0]).message
        assert _state(other).name == "Running"  # a process-per-run deployment: Prefect's zombie automation's
    with get_client(sync_client=True) as c:
        c.set_flow_run_state(other, Crashed(message="test cleanup"), force=True)


def test_in_process_runs_send_no_heartbeats(prefect_harness):
    """Heartbeats are on for the serving process; the in-process run's engine gets none (its thread's
    settings), so the zombie automation never opens a window on a run waiting for a person."""
    from prefect.deployments import run_deployment
    from prefect.flow_engine import FlowRunEngine
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    seen = []
    real = FlowRunEngine.heartbeat_seconds.fget

    def spy(engine):
        seen.append(real(engine))
        return seen[-1]

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}), serving():
        FlowRunEngine.heartbeat_seconds = property(spy)
        try:
            run = run_deployment("runner-test-broken/broken", timeout=0).id
            wait_for(lambda: _state(run).is_final(), 60, "the run to end")
        finally:
            FlowRunEngine.heartbeat_seconds = property(real)
    assert seen and set(seen) == {None}


def test_the_serve_service_refuses_an_unknown_exception_run_mode_before_touching_prefect():
    import subprocess
    import sys

    env = {**os.environ, "AFTERCART_EXCEPTION_RUNS": "fork", "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    out = subprocess.run([sys.executable, "-m", "aftercart.services", "serve"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "AFTERCART_EXCEPTION_RUNS must be 'thread' or 'process', not 'fork'" in out.stderr
