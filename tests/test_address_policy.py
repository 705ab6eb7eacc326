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


def test_review_key_is_the_same_for_the_same_address_and_new_for_an_edit():
    from domain.address_policy import review_key

    assert review_key(GOOD) == review_key({**GOOD, "address1": " 405  lexington ave "})  # spacing and case
    assert review_key(GOOD) != review_key({**GOOD, "address2": "Apt 5"})
    assert review_key(None) == review_key({}) and len(review_key(GOOD)) == 12
    assert review_key({**GOOD, "name": "\ud800"})  # a lone surrogate from a hostile payload does not raise


def test_the_carrier_comes_from_the_shipping_line_as_the_policy_names_carriers():
    from domain.address_policy import carrier_of

    assert carrier_of({"code": "usps_priority", "title": "Priority Mail"}, POLICY) == "usps"
    assert carrier_of({"title": "USPS Ground Advantage"}, POLICY) == "usps"
    assert carrier_of({"carrier_identifier": "usps"}, POLICY) == "usps"
    assert carrier_of({"code": "standard", "title": "Standard"}, POLICY) is None
    assert carrier_of({"title": "Busps Express"}, POLICY) is None  # a word, not a substring
    assert carrier_of(None, POLICY) is None


def test_a_correction_is_applied_only_when_it_would_pass_as_a_new_orders_address():
    from domain.address_policy import check_correction

    assert check_correction(check_address(GOOD), POLICY, None, "US").accepted
    unit = check_correction(check_address({**GOOD, "address2": "Apt"}), POLICY, None, "US")
    assert not unit.accepted and unit.reasons == ("missing_unit",)
    box = check_address({**GOOD, "address1": "PO Box 9"})
    assert check_correction(box, POLICY, "usps", "US").accepted and not check_correction(box, POLICY, None, "US").accepted
    moved = check_correction(check_address({**GOOD, "city": "Toronto", "province_code": "ON", "zip": "M5V 2T6",
                                             "country_code": "CA"}), POLICY, None, "US")
    assert not moved.accepted and moved.reasons == ("the country cannot be changed here",)


def test_the_message_language_follows_the_customer_then_the_market_then_english():
    from domain.messages import pick_language

    assert pick_language(POLICY, "es-MX", "US").language == "es"
    assert pick_language(POLICY, "de_AT", "US").language == "de"
    assert pick_language(POLICY, "ja", "ES").language == "es"  # Japanese is not enabled: the market's language
    assert pick_language(POLICY, None, "FR").language == "fr"
    assert pick_language(POLICY, "", "ZZ").language == POLICY.market_for("ZZ").language
    assert pick_language(POLICY, "it", "US").reason.startswith("market")


def test_the_verifiers_answer_only_adds_review_reasons_of_our_vocabulary():
    from domain.address_policy import with_verification

    v = check_address(GOOD)
    assert with_verification(v, None) is v
    assert with_verification(v, {"dpv": "Y", "reasons": []}) == v
    d = with_verification(v, {"dpv": "D"})
    assert (d.verdict, d.reasons) == ("review", ("missing_unit",))
    assert with_verification(v, {"dpv": "Y", "reasons": ["free_text", 3, "po_box"]}).reasons == ("po_box",)
    bad = check_address({**GOOD, "zip": "99999"})
    assert with_verification(bad, {"dpv": "D"}) is bad  # invalid stays invalid, reasons unchanged
    assert with_verification(v, "garbage") is v
