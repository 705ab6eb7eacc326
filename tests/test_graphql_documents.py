"""Every GraphQL document aftercart sends validates against Shopify's real 2026-10 Admin schema."""

import pytest

from sandbox.schema import validation_errors
from tasks.clients.documents import document, names


def test_there_are_documents():
    assert {"OrdersUpdatedSince", "RefundCreate", "FulfillmentOrderHold", "OrderCancel"} <= set(names())


@pytest.mark.parametrize("name", names())
def test_document_is_valid_for_shopify(name):
    assert validation_errors(document(name)) == []


def test_validation_catches_a_field_shopify_lacks():
    errors = validation_errors("query { order(id: \"gid://shopify/Order/1\") { fraudScoreV9 } }")
    assert errors and "fraudScoreV9" in errors[0]


def test_validation_catches_a_wrong_enum_value():
    doc = 'mutation { orderCancel(orderId: "gid://shopify/Order/1", reason: BORED, restock: true) { job { id } } }'
    assert validation_errors(doc)
