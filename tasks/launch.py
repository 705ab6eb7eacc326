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


def launch(deployment: str, parameters: dict[str, Any], run_name: str, idempotency_key: str | None = None) -> str:
    """Start `deployment` ("flow/deployment") with `parameters`, named `run_name` (searchable before
    it runs); the idempotency key makes a repeated start return the run it already made."""
    if _launcher is not None:
        return _launcher(deployment, parameters, run_name, idempotency_key)
    from prefect.deployments import run_deployment

    run = run_deployment(name=deployment, timeout=0, as_subflow=False, parameters=parameters,
                         flow_run_name=run_name, idempotency_key=idempotency_key)
    return str(run.id)


@contextmanager
def use(launcher: Launcher) -> Iterator[None]:
    """Start runs with `launcher` inside the block (for the whole process)."""
    global _launcher
    previous, _launcher = _launcher, launcher
    try:
        yield
    finally:
        _launcher = previous
