"""The policy: the default encodes POLICY.md; every bad file is refused with its key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftercart.cli import app
from config.policy_loader import DEFAULT_POLICY_PATH, PolicyError, load_policy
from domain import vocab

BAD = sorted((Path(__file__).parent / "policies_bad").glob("*.toml"))


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def test_default_policy_loads_and_is_hashed(policy):
    assert policy.version == "2026.11.2"
    assert re.fullmatch(r"[0-9a-f]{64}", policy.content_hash)
    assert load_policy().content_hash == policy.content_hash  # stable across loads


def test_hash_changes_with_any_rule(tmp_path, policy):
    f = tmp_path / "p.toml"
    f.write_text("[order_edit]\nwindow_minutes = 30\n")
    other = load_policy(f)
    assert other.order_edit.window_minutes == 30
    assert other.content_hash != policy.content_hash


def test_a_file_is_validated_once_per_content_and_an_edit_takes_effect_at_once(tmp_path, monkeypatch):
    import config.policy_loader as loader

    calls = []
    real = loader.validate_policy
    monkeypatch.setattr(loader, "validate_policy", lambda data, source: calls.append(source) or real(data, source))
    f = tmp_path / "p.toml"
    f.write_text("[order_edit]\nwindow_minutes = 31\n")
    first = load_policy(f)
    assert load_policy(f) is first and len(calls) == 1  # every flow run loads it: validated once
    f.write_text("[order_edit]\nwindow_minutes = 32\n")  # same size, same second: still seen
    assert load_policy(f).order_edit.window_minutes == 32 and len(calls) == 2
    assert load_policy(f, overrides={"order_edit": {"window_minutes": 33}}).order_edit.window_minutes == 33
    f.write_text("[order_edit]\nwindow_minutes = 'soon'\n")
    with pytest.raises(PolicyError, match="order_edit.window_minutes"):
        load_policy(f)
    with pytest.raises(PolicyError, match="order_edit.window_minutes"):  # a bad file is refused every time
        load_policy(f)


def test_policy_is_frozen(policy):
    with pytest.raises(Exception):
        policy.order_edit.window_minutes = 5


def test_order_edit_rules(policy):
    e = policy.order_edit
    assert e.window_minutes == 60 and e.window_closes_at_stage == "released"
    assert e.tier_of("contact_change") == "low" and e.tier_of("address_unit_change") == "low"
    for k in ("address_change", "variant_swap", "quantity_decrease", "remove_item"):
        assert e.tier_of(k) == "medium"
    for k in ("shipping_method_change", "add_item", "quantity_increase", "bundle_line_edit"):
        assert e.tier_of(k) == "restricted"
    inside, closed, packed, shipped = e.stage_rules
    assert (inside.window, inside.tiers["medium"].outcome, inside.tiers["medium"].role) == ("open", "apply_if_valid", "support")
    assert inside.tiers["restricted"].role == "ops"
    assert set(closed.stages) == {"unfulfilled", "released", "picking"} and closed.window == "closed"
    assert closed.tiers["medium"].hold == "ac:hold:approval"
    assert closed.by_class["address_unit_change"].role == "ops"
    assert packed.tiers["medium"].outcome == "deny" and packed.by_class["address_change"].role == "support"
    assert shipped.tiers["low"].outcome == "deny" and shipped.by_class["contact_change"].outcome == "apply"
    a = e.always_approval
    assert (a.role, a.product_tags, a.order_types, a.risk_levels, a.payment_review) == (
        "ops", ("regulated",), ("subscription",), ("high",), True)


def test_cancellation_rules(policy):
    rules = {r.name: r for r in policy.cancellation.rules}
    assert rules["before_release"].outcome.outcome == "apply"
    assert rules["at_the_warehouse"].outcome.role == "ops" and rules["at_the_warehouse"].pull_back_from_3pl
    assert rules["after_shipping"].outcome.outcome == "deny"
    assert rules["digital_delivered"].outcome.outcome == "deny"
    assert rules["fraud_screened"].outcome.role == "management"
    assert rules["flagged_customer_chargebacks"].when.min_chargebacks == 2
    assert rules["flagged_customer_tag"].when.customer_tags == ("dispute-risk",)
    assert rules["manual_order"].outcome.role == "support"
    assert policy.cancellation.apply.reason == "CUSTOMER" and policy.cancellation.apply.restock


def test_address_rules(policy):
    a = policy.address
    assert (a.hold_handle, a.hold_reason, a.correction_window_hours) == ("ac:hold:address", "INCORRECT_ADDRESS", 24)
    assert a.timeout_role == "support" and set(a.timeout_choices) == {"ship_as_is", "correct_address", "cancel"}
    assert a.po_box_carriers == ("usps",) and a.no_automatic_change_from_stage == "label_created"


def test_communication_rules(policy):
    c = policy.communication
    assert set(c.languages) == {"en", "es", "fr", "de"} and c.fallback_language == "en"
    assert set(c.events.values()) <= vocab.TEMPLATES
    assert c.followup.days_after_delivery == 3 and c.followup.local_time.hour == 10
    assert set(c.followup.suppress_when_open) == {"ticket", "return", "cancellation"}


def test_upsell_triage_fulfillment_rules(policy):
    u = policy.upsell
    assert (u.max_offers, u.min_available, u.excluded_product_tags) == (3, 5, ("restricted",))
    assert {"apple_pay", "google_pay", "amazon_pay", "klarna", "affirm", "afterpay", "gift_card"} == set(u.excluded_gateways)
    t = policy.triage
    assert t.duplicate_window_hours == 72 and t.verify_identity_channels == ("social",)
    assert set(t.self_service_intents) == {"address_change", "contact_change", "cancel_order"}
    f = policy.fulfillment
    assert f.owner_by_stage["unfulfilled"] == "shopify" and f.owner_by_stage["picking"] == "3pl"
    assert f.owner_by_stage["delivered"] == "carrier"


def test_approvals_and_authority(policy):
    ap = policy.approvals
    assert [ap.roles[r].decide_within_hours for r in ap.rank] == [4, 1, 24]
    assert ap.roles["support"].escalate_to == "ops" and ap.roles["ops"].escalate_to == "management"
    assert ap.roles["management"].on_timeout == "default_decision"
    assert ap.can_decide("owner@sandbox.test", "support")
    assert ap.can_decide("ops@sandbox.test", "ops")
    assert not ap.can_decide("support@sandbox.test", "ops")
    assert not ap.can_decide("stranger@example.com", "support")


def test_markets(policy):
    assert policy.market_for("DE").language == "de" and policy.market_for("DE").currency == "EUR"
    assert policy.market_for("MX").timezone == "America/Mexico_City"
    assert policy.market_for("JP") == policy.markets["US"]  # default market


def _expectation(path: Path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    key, reason = first.removeprefix("# expect: ").split(" | ", 1)
    return key, reason


def test_there_are_at_least_15_distinct_bad_files():
    assert len(BAD) >= 15
    assert len({_expectation(p) for p in BAD}) == len(BAD)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_policy_is_rejected_with_key_path(path):
    key, reason = _expectation(path)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    shown = [str(p) for p in info.value.problems]
    assert any(s.startswith(key + ":") and reason in s for s in shown), shown


@pytest.mark.parametrize("path", BAD[:5], ids=[p.stem for p in BAD[:5]])
def test_policy_check_cli_exits_2_with_key_path(path):
    key, _ = _expectation(path)
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert key in result.output


def test_policy_check_cli_summarises_the_default():
    result = CliRunner().invoke(app, ["policy", "check", str(DEFAULT_POLICY_PATH)])
    assert result.exit_code == 0, result.output
    for word in ("2026.11.2", "order_edit", "cancellation", "support@sandbox.test", "Europe/Berlin"):
        assert word in result.output


def test_policy_check_cli_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["policy", "check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_env_var_selects_the_policy(tmp_path, monkeypatch):
    f = tmp_path / "merchant.toml"
    f.write_text('version = "merchant-7"\n')
    monkeypatch.setenv("AFTERCART_POLICY", str(f))
    result = CliRunner().invoke(app, ["policy", "check"])
    assert result.exit_code == 0 and "merchant-7" in result.output
