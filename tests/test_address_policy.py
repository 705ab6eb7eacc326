"""What SOP 4 does with a verdict: accept, hold and ask the customer, or ask a person."""

from config.policy_loader import load_policy
from domain.address import check_address
from domain.address_policy import address_outcome

POLICY = load_policy()
GOOD = {"name": "Dana Wu", "address1": "405 Lexington Ave", "city": "New York", "province_code": "NY", "zip": "10174",
        "country_code": "US"}


def test_valid_needs_nothing():
    assert address_outcome(check_address(GOOD), POLICY, "unfulfilled", None).action == "accept"


def test_po_box_is_fine_for_a_carrier_that_delivers_there_and_review_otherwise():
    box = check_address({**GOOD, "address1": "PO Box 123"})
    assert box.verdict == "review"
    assert address_outcome(box, POLICY, "unfulfilled", "USPS").action == "accept"
    assert address_outcome(box, POLICY, "unfulfilled", "UPS").action == "hold_and_ask_customer"
    assert address_outcome(box, POLICY, "unfulfilled", None).action == "hold_and_ask_customer"


def test_military_always_goes_to_review():
    mil = check_address({**GOOD, "address1": "Unit 2050 Box 4190", "city": "APO", "province_code": "AP",
                         "zip": "96278"})
    assert address_outcome(mil, POLICY, "unfulfilled", "USPS").action == "hold_and_ask_customer"


def test_from_label_created_on_nothing_changes_automatically():
    bad = check_address({**GOOD, "zip": "00000"})
    assert address_outcome(bad, POLICY, "picking", None).action == "hold_and_ask_customer"
    out = address_outcome(bad, POLICY, "label_created", None)
    assert out.action == "approval" and "approval (support)" in out.reasons
