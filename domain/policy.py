"""The policy: every rule of POLICY.md as strict, frozen, validated data.

A policy is pure data. `Policy.model_validate(dict)` checks every key and every cross-reference
(tiers name known request kinds, roles have approvers, markets name real countries, currencies,
time zones and enabled languages). `policy.content_hash` identifies the exact rules that made a
decision; every recorded decision carries it with `version`.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domain.policy_base import Role, Strict
from domain.policy_sops import (Address, AlwaysApproval, CancelApply, CancelRule, CancelWhen, Cancellation,  # noqa: F401
                                Communication, EditStageRule, Followup, Fulfillment, Market, OrderEdit, Outcome,
                                Triage, Upsell)


# ---------------------------------------------------------------- approvals


class RoleRule(Strict):
    decide_within_hours: float = Field(gt=0)
    escalate_to: Role | None = None
    approvers: tuple[str, ...] = Field(min_length=1)
    on_timeout: Literal["escalate", "default_decision"] = "escalate"

    @field_validator("approvers")
    @classmethod
    def _emails(cls, v):
        for a in v:
            if "@" not in a or a.strip() != a or not a.split("@", 1)[1]:
                raise ValueError(f"approver {a!r} is not an email address")
        if len(set(v)) != len(v):
            raise ValueError("approvers are listed twice")
        return v


Choice = Literal["approve", "reject", "ship_as_is", "correct_address", "cancel", "keep_hold"]


class ApprovalKind(Strict):
    choices: tuple[Choice, ...] = Field(min_length=1)
    default: Choice
    needs_note: tuple[Choice, ...] = ()
    address_choice: Choice | None = None  # the choice that carries a corrected address
    not_for_invalid: tuple[Choice, ...] = ()  # choices refused when the address verdict is `invalid`

    @model_validator(mode="after")
    def _choices_known(self):
        for name, values in (("default", (self.default,)), ("needs_note", self.needs_note),
                             ("address_choice", (self.address_choice,) if self.address_choice else ()),
                             ("not_for_invalid", self.not_for_invalid)):
            missing = [v for v in values if v not in self.choices]
            if missing:
                raise ValueError(f"{name} names {missing}, which are not among the choices {list(self.choices)}")
        return self


class Approvals(Strict):
    rank: tuple[Role, ...] = Field(min_length=1, description="lowest to highest authority")
    roles: dict[Role, RoleRule]
    default_decision: Literal["deny"] = "deny"
    kinds: dict[str, ApprovalKind] = Field(min_length=1)

    @model_validator(mode="after")
    def _roles_consistent(self):
        if set(self.rank) != set(self.roles):
            raise ValueError(f"rank {list(self.rank)} must list exactly the roles {sorted(self.roles)}")
        for name, rule in self.roles.items():
            if rule.on_timeout == "escalate":
                if rule.escalate_to is None:
                    raise ValueError(f"role {name!r} escalates but names no escalate_to role")
                if rule.escalate_to not in self.roles:
                    raise ValueError(f"role {name!r} escalates to unknown role {rule.escalate_to!r}")
                if self.rank.index(rule.escalate_to) <= self.rank.index(name):
                    raise ValueError(f"role {name!r} must escalate to a higher role, not {rule.escalate_to!r}")
        return self

    def can_decide(self, approver: str, role: Role) -> bool:
        """An approver decides for their own role and every role ranked below it."""
        if role not in self.roles:
            return False
        floor = self.rank.index(role)
        return any(approver in self.roles[r].approvers for r in self.rank[floor:])


# ---------------------------------------------------------------- the policy


class Policy(Strict):
    version: str = Field(min_length=1)
    name: str = "default"
    approvals: Approvals
    order_edit: OrderEdit
    cancellation: Cancellation
    address: Address
    communication: Communication
    upsell: Upsell
    triage: Triage
    fulfillment: Fulfillment
    markets: dict[str, Market] = Field(min_length=1)
    default_market: str

    @model_validator(mode="after")
    def _cross_references(self):
        roles = set(self.approvals.roles)
        refs: list[tuple[str, str | None]] = [
            ("order_edit.always_approval.role", self.order_edit.always_approval.role),
            ("address.timeout_role", self.address.timeout_role),
            ("fulfillment.inventory_conflict_role", self.fulfillment.inventory_conflict_role),
        ]
        for i, r in enumerate(self.order_edit.stage_rules):
            for tier, o in r.tiers.items():
                refs.append((f"order_edit.stage_rules[{i}].tiers.{tier}.role", o.role))
            for k, o in r.by_class.items():
                refs.append((f"order_edit.stage_rules[{i}].by_class.{k}.role", o.role))
        for i, r in enumerate(self.cancellation.rules):
            refs.append((f"cancellation.rules[{i}].outcome.role", r.outcome.role))
        for where, role in refs:
            if role is not None and role not in roles:
                raise ValueError(f"{where}: unknown role {role!r}; roles are {sorted(roles)}")
        seen: dict[str, str] = {}
        for name, m in self.markets.items():
            if m.language not in self.communication.languages:
                raise ValueError(
                    f"markets.{name}.language: {m.language!r} is not enabled in communication.languages"
                )
            for c in m.countries:
                if c in seen:
                    raise ValueError(f"markets.{name}.countries: {c} is already in market {seen[c]!r}")
                seen[c] = name
        if self.default_market not in self.markets:
            raise ValueError(f"default_market: unknown market {self.default_market!r}")
        return self

    @cached_property
    def content_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def ref(self) -> str:
        """Short label carried by decisions: version plus the first 12 hex digits of the hash."""
        return f"{self.version}@{self.content_hash[:12]}"

    def market_for(self, country_code: str | None) -> Market:
        for m in self.markets.values():
            if country_code in m.countries:
                return m
        return self.markets[self.default_market]
