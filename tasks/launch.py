"""Start an exception's own flow run: through its deployment, or through the launcher the
scenario runner installs (it plays the run in-process on its simulated clock instead).

One place for it: the drain's address reviews, the deadline sweep's catch-up and the self-serve
pages all start runs here. Nothing is installed at import.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

# (deployment, parameters, run name, idempotency key) -> run id
Launcher = Callable[[str, dict[str, Any], str, "str | None"], str]
_launcher: Launcher | None = None
CONCURRENT_CREATES = 4  # run creations in flight at once (a batch's exceptions; more only queue on the server)


def launch(deployment: str, parameters: dict[str, Any], run_name: str, idempotency_key: str | None = None) -> str:
    """Start `deployment` ("flow/deployment") with `parameters`, named `run_name` (searchable before
    it runs); the idempotency key makes a repeated start return the run it already made."""
    if _launcher is not None:
        return _launcher(deployment, parameters, run_name, idempotency_key)
    return launch_many(deployment, [(parameters, run_name, idempotency_key)])[0]


def launch_many(deployment: str, runs: list[tuple[dict[str, Any], str, str | None]]) -> list[str]:
    """Start one run of `deployment` per (parameters, run name, idempotency key), reading the
    deployment once and creating a few runs at a time (a batch's exceptions: one API call each
    instead of two, not one after another). Run ids come back in the order asked."""
    if _launcher is not None or not runs:
        return [launch(deployment, params, name, key) for params, name, key in runs]
    from prefect.client.orchestration import get_client

    from concurrent.futures import ThreadPoolExecutor

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)

        def create(run: tuple[dict[str, Any], str, str | None]) -> str:
            params, name, key = run
            return str(client.create_flow_run_from_deployment(dep.id, parameters=params, name=name,
                                                              idempotency_key=key).id)

        if len(runs) == 1:
            return [create(runs[0])]
        with ThreadPoolExecutor(min(CONCURRENT_CREATES, len(runs)), thread_name_prefix="launch") as pool:
            return list(pool.map(create, runs))  # in the order asked


@contextmanager
def use(launcher: Launcher) -> Iterator[None]:
    """Start runs with `launcher` inside the block (for the whole process)."""
    global _launcher
    previous, _launcher = _launcher, launcher
    try:
        yield
    finally:
        _launcher = previous
