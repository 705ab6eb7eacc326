"""Building blocks of the policy models: strict frozen models and vocabulary checks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from domain import vocab

Role = str
OutcomeKind = Literal["apply", "apply_if_valid", "approval", "deny"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _known(values, allowed, what: str):
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(map(repr, unknown))}; known: {', '.join(sorted(allowed))}")
    return values


def _stages(values):
    return _known(values, vocab.ALL_STAGES, "stage")
