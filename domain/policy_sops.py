"""The policy's rules per SOP (2 to 8): order edits, cancellation, address, communication,
upsell, triage, fulfillment and markets."""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from domain import vocab
from domain.policy_base import (Channels, Intents, OrderTypes, OutcomeKind, RiskLevels, Role, Stage, Stages, Strict,
                                 _known, _stages)
from domain.reference import country_codes, currency_codes, timezone_names


class Outcome(Strict):
    outcome: OutcomeKind
    role: Role | None = None
    hold: str | None = None  # signal held while the approval waits

    @model_validator(mode="after")
    def _role_when_needed(self):
        if self.outcome in ("approval", "apply_if_valid") and not self.role:
            raise ValueError(f"outcome {self.outcome!r} needs a role")
        if self.outcome in ("apply", "deny") and self.role:
            raise ValueError(f"outcome {self.outcome!r} takes no role")
        if self.hold is not None and self.hold not in vocab.HOLD_SIGNALS:
            raise ValueError(f"hold {self.hold!r} is not a hold signal ({', '.join(sorted(vocab.HOLD_SIGNALS))})")
        return self


# ---------------------------------------------------------------- SOP 2: order edits


class EditStageRule(Strict):
    name: str
    stages: Stages = Field(min_length=1)
    window: Literal["open", "closed", "any"] = "any"
    tiers: dict[Literal["low", "medium", "restricted"], Outcome]
    by_class: dict[str, Outcome] = {}


    @field_validator("by_class")
    @classmethod
    def _classes(cls, v):
        _known(v, vocab.EDIT_CLASSES, "request kind")
        return v

    @model_validator(mode="after")
    def _all_tiers(self):
        missing = {"low", "medium", "restricted"} - set(self.tiers)
        if missing:
            raise ValueError(f"rule {self.name!r} gives no outcome for tier(s) {sorted(missing)}")
        return self


class AlwaysApproval(Strict):
    role: Role
    product_tags: tuple[str, ...] = ()
    order_types: OrderTypes = ()
    risk_levels: RiskLevels = ()
    payment_review: bool = True
    before_stage: Stage = "shipped"


class OrderEdit(Strict):
    window_minutes: int = Field(gt=0, le=7 * 24 * 60)
    window_closes_at_stage: Stage = "released"
    tiers: dict[Literal["low", "medium", "restricted"], tuple[str, ...]]
    stage_rules: tuple[EditStageRule, ...] = Field(min_length=1)
    always_approval: AlwaysApproval


    @model_validator(mode="after")
    def _tiers_cover_every_class(self):
        seen: dict[str, str] = {}
        for tier, kinds in self.tiers.items():
            _known(kinds, vocab.EDIT_CLASSES, f"request kind in tier {tier!r}")
            for k in kinds:
                if k in seen:
                    raise ValueError(f"request kind {k!r} is in two tiers ({seen[k]!r} and {tier!r})")
                seen[k] = tier
        missing = vocab.EDIT_CLASSES - set(seen)
        if missing:
            raise ValueError(f"request kind(s) {sorted(missing)} are in no tier")
        covered = {s for r in self.stage_rules for s in r.stages}
        uncovered = set(vocab.ALL_STAGES) - covered - {"cancelled", "returned", "on_hold"}
        if uncovered:
            raise ValueError(f"no stage rule covers stage(s) {sorted(uncovered)}")
        return self

    def tier_of(self, edit_class: str) -> str:
        for tier, kinds in self.tiers.items():
            if edit_class in kinds:
                return tier
        raise KeyError(edit_class)


# ---------------------------------------------------------------- SOP 3: cancellation


class CancelWhen(Strict):
    stages: Stages = ()
    risk_levels: RiskLevels = ()
    min_chargebacks: int | None = Field(default=None, ge=1)
    customer_tags: tuple[str, ...] = ()
    order_tags: tuple[str, ...] = ()
    digital_delivered: bool | None = None


class CancelRule(Strict):
    name: str
    when: CancelWhen
    outcome: Outcome
    pull_back_from_3pl: bool = False


class CancelApply(Strict):
    reason: str = "CUSTOMER"
    restock: bool = True
    refund_to_original_payment: bool = True
    notify_customer: bool = False  # aftercart sends its own localized message

    @field_validator("reason")
    @classmethod
    def _reason(cls, v):
        _known([v], vocab.SHOPIFY_CANCEL_REASONS, "Shopify cancel reason")
        return v


class Cancellation(Strict):
    rules: tuple[CancelRule, ...] = Field(min_length=1)
    apply: CancelApply = CancelApply()
    acknowledge_when_waiting: bool = True


# ---------------------------------------------------------------- SOP 4: address


class Address(Strict):
    hold_handle: str = "ac:hold:address"
    hold_reason: str = "INCORRECT_ADDRESS"
    correction_window_hours: float = Field(gt=0)
    no_automatic_change_from_stage: Stage = "label_created"
    timeout_role: Role
    timeout_choices: tuple[Literal["ship_as_is", "correct_address", "cancel"], ...] = Field(min_length=1)
    po_box_carriers: tuple[str, ...] = ()
    military_verdict: Literal["review"] = "review"
    normalize_us_pub28: bool = True

    @field_validator("hold_reason")
    @classmethod
    def _reason(cls, v):
        _known([v], vocab.SHOPIFY_HOLD_REASONS, "Shopify hold reason")
        return v


# ---------------------------------------------------------------- SOP 1 + 8: communication


class Followup(Strict):
    days_after_delivery: int = Field(ge=0, le=60)
    local_time: time
    suppress_when_open: tuple[Literal["ticket", "return", "cancellation"], ...] = ()


class Communication(Strict):
    languages: tuple[str, ...] = Field(min_length=1)
    fallback_language: str = "en"
    events: dict[str, str]
    suppress_for_tags: tuple[str, ...] = ("ac:manual",)
    followup: Followup
    delay_notice_on_carrier_status: tuple[str, ...] = ("delayed",)
    ships_within_days: int = Field(default=2, ge=0, le=60)  # business days, told in order_confirmation
    # business days from shipping to the promised delivery, by shipping method code ("*": any other);
    # a parcel not delivered by then gets `delay_notice` (once per parcel, like a carrier delay)
    promised_transit_days: dict[str, int] = Field(default_factory=lambda: {"*": 5})

    @field_validator("events")
    @classmethod
    def _templates(cls, v):
        _known(list(v.values()), vocab.TEMPLATES, "template id")
        return v

    @model_validator(mode="after")
    def _fallback_enabled(self):
        if self.fallback_language not in self.languages:
            raise ValueError(f"fallback_language {self.fallback_language!r} is not in languages {list(self.languages)}")
        return self


# ---------------------------------------------------------------- SOP 5: upsell


class Upsell(Strict):
    max_offers: int = Field(ge=0, le=10)
    complements_only: bool = True
    min_available: int = Field(ge=0)
    excluded_product_tags: tuple[str, ...] = ()
    exclude_gift_cards: bool = True
    exclude_on_hold: bool = True
    excluded_risk_levels: RiskLevels = ()
    excluded_gateways: tuple[str, ...] = ()


# ---------------------------------------------------------------- SOP 6: triage


class Triage(Strict):
    duplicate_window_hours: float = Field(gt=0)
    verify_identity_channels: Channels = ()
    self_service_intents: Intents
    support_intents: Intents
    management_signals: tuple[str, ...] = ()
    operations_stages: Stages
    high_urgency_before_stage: Stage = "shipped"


# ---------------------------------------------------------------- SOP 7: fulfillment


class Fulfillment(Strict):
    owner_by_stage: dict[str, Literal["shopify", "3pl", "carrier"]]
    release_when_no_holds: bool = True
    release_after_edit_window: bool = True
    manual_routing: Literal["person", "marketplace_channel", "release"] = "person"
    manual_order_types: OrderTypes = ("wholesale", "marketplace")
    sync_every_minutes: int = Field(gt=0, le=1440)
    inventory_conflict_role: Role = "ops"

    @field_validator("owner_by_stage")
    @classmethod
    def _owners(cls, v):
        _stages(list(v))
        missing = set(vocab.STAGES) - set(v)
        if missing:
            raise ValueError(f"no owner for stage(s) {sorted(missing)}")
        return v


# ---------------------------------------------------------------- SOP 8: markets


class Market(Strict):
    countries: tuple[str, ...] = Field(min_length=1)
    language: str
    currency: str
    timezone: str

    @field_validator("countries")
    @classmethod
    def _countries(cls, v):
        return _known(v, country_codes(), "country (ISO 3166-1 alpha-2)")

    @field_validator("currency")
    @classmethod
    def _currency(cls, v):
        if v not in currency_codes():
            raise ValueError(f"unknown currency {v!r} (ISO 4217)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        if v not in timezone_names():
            raise ValueError(f"unknown time zone {v!r} (IANA name such as 'America/New_York')")
        return v

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


