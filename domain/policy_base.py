"""Building blocks of the policy models: strict frozen models and vocabulary checks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

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


def _vocabulary(allowed, what: str) -> AfterValidator:
    return AfterValidator(lambda v: _known(v, allowed, what))


# Field types that accept only words of the shared vocabularies (DESIGN.md)
Stages = Annotated[tuple[str, ...], _vocabulary(vocab.ALL_STAGES, "stage")]
Stage = Annotated[str, AfterValidator(lambda v: _stages([v])[0])]
RiskLevels = Annotated[tuple[str, ...], _vocabulary(vocab.RISK_LEVELS, "risk level")]
OrderTypes = Annotated[tuple[str, ...], _vocabulary(vocab.ORDER_TYPES, "order type")]
Intents = Annotated[tuple[str, ...], _vocabulary(vocab.TICKET_INTENTS, "intent")]
Channels = Annotated[tuple[str, ...], _vocabulary(vocab.CHANNELS, "channel")]
