"""Read prefect.yaml's deployments so `aftercart up` serves exactly what `prefect deploy --all` deploys."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str
    description: str
    tags: tuple[str, ...]
    parameters: dict[str, Any]
    schedules: tuple[dict[str, Any], ...]
    triggers: tuple[dict[str, Any], ...]
    concurrency_limit: dict[str, Any] | int | None


def load_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    data = yaml.safe_load(path.read_text())
    specs = []
    for d in data.get("deployments") or []:
        specs.append(DeploymentSpec(
            name=d["name"], entrypoint=d["entrypoint"], description=d.get("description", ""),
            tags=tuple(d.get("tags") or ()), parameters=dict(d.get("parameters") or {}),
            schedules=tuple(d.get("schedules") or ()), triggers=tuple(d.get("triggers") or ()),
            concurrency_limit=d.get("concurrency_limit"),
        ))
    return specs


def load_flow(entrypoint: str):
    """`flows/reconciliation.py:reconcile_orders` -> the flow object."""
    path, func = entrypoint.split(":")
    module = path.removesuffix(".py").replace("/", ".")
    return getattr(importlib.import_module(module), func)


def runner_deployments(specs: list[DeploymentSpec] | None = None):
    """RunnerDeployments for `serve()`, built with the same parsers `prefect deploy` uses."""
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    out = []
    for spec in specs or load_specs():
        limit = spec.concurrency_limit
        if isinstance(limit, dict):
            limit = ConcurrencyLimitConfig(**limit)
        out.append(load_flow(spec.entrypoint).to_deployment(
            name=spec.name, description=spec.description, tags=list(spec.tags), parameters=spec.parameters,
            schedules=[_schedule_config_to_deployment_schedule(dict(s)) for s in spec.schedules] or None,
            triggers=_initialize_deployment_triggers(spec.name, [dict(t) for t in spec.triggers]) or None,
            concurrency_limit=limit,
        ))
    return out


def in_process_flows(specs: list[DeploymentSpec] | None = None) -> dict[str, Any]:
    """The exception deployments (tag `exception`: one run per order that needs a person), name -> flow.
    Their runs execute in threads of the serving process (aftercart/runner.py)."""
    return {spec.name: load_flow(spec.entrypoint) for spec in specs or load_specs() if "exception" in spec.tags}
