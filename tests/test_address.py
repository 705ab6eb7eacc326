"""SOP 4's decision against the labelled set, hostile input, and `aftercart address check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aftercart.cli import app
from domain.address import FIELDS, INVALID, REVIEW, check_address

CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "addresses.jsonl").read_text().splitlines()]


def test_the_labelled_set_covers_every_reason_and_nine_countries():
    assert len(CASES) >= 150
    reasons = {r for c in CASES for r in c["expect"]["reasons"]}
    assert reasons == INVALID | REVIEW
    countries = {c["address"]["country_code"] for c in CASES}
    assert {"US", "CA", "GB", "DE", "FR", "JP", "AU", "BR", "IN"} <= countries


@pytest.mark.parametrize("case", CASES, ids=[f"{c['id']}-{c['why']}" for c in CASES])
def test_labelled_address(case):
    v = check_address(case["address"])
    assert (v.verdict, sorted(v.reasons)) == (case["expect"]["verdict"], case["expect"]["reasons"])


def test_us_addresses_are_normalised_to_pub28_and_suggestions_are_safe():
    v = check_address({"name": "Dana Wu", "address1": "405 lexington avenue", "address2": "apartment 4b",
                       "city": "new york", "province_code": "ny", "zip": "10174", "country_code": "us"})
    assert v.verdict == "valid"
    assert (v.normalized["address1"], v.normalized["address2"], v.normalized["province_code"]) == (
        "405 LEXINGTON AVE", "APT 4B", "NY")
    typo = check_address({"name": "x", "address1": "1 Market St", "city": "San Francisco",
                          "province_code": "Californa", "zip": "94105", "country_code": "US"})
    assert typo.suggestions == {"province_code": "CA"}
    city = check_address({"name": "x", "address1": "1 Market St", "city": "Oakland", "province_code": "CA",
                          "zip": "94105", "country_code": "US"})
    assert city.suggestions["city"][0] == "San Francisco"


text = st.one_of(st.text(), st.text(min_size=200, max_size=3000), st.none(), st.integers(), st.floats(),
                 st.booleans(), st.lists(st.text(), max_size=3), st.dictionaries(st.text(), st.text(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS + ("extra",)), text))
def test_no_input_raises(address):
    v = check_address(address)
    assert v.verdict in ("valid", "review", "invalid")
    assert set(v.reasons) <= INVALID | REVIEW


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
def test_not_a_dict_is_invalid(value):
    assert check_address(value).verdict == "invalid"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=200), st.builds(json.dumps, st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8))),
    max_size=6))
def test_cli_answers_every_line_whatever_it_holds(lines):
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    result = CliRunner().invoke(app, ["address", "check", "-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(out) == len(("\n".join(lines) + "\n").splitlines())


def test_cli_keeps_order_and_reports_malformed_lines(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps({"id": c["id"], "address": c["address"]}, ensure_ascii=False)
                           for c in CASES[:20]) + "\n{broken\n")
    result = CliRunner().invoke(app, ["address", "check", str(f)])
    assert result.exit_code == 0
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o.get("id") for o in out[:20]] == [c["id"] for c in CASES[:20]]
    assert out[20]["line"] == 21 and "not JSON" in out[20]["error"]
    missing = CliRunner().invoke(app, ["address", "check", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
