"""The scenario runner: every file in tests/scenarios/ passes through the real CLI; a wrong
expectation fails with the key, what was expected, what was seen and the decision log; a step the
world refuses stops the scenario; malformed files are refused up front with the file, the step and
the reason; `aftercart scenario new` writes a file that plays and passes."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from rich.console import Console
from typer.testing import CliRunner

from aftercart.scenario.format import ScenarioError, check, parse_time

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "scenarios"
SHARED = ROOT.parent / "shared" / "scenarios"
START = datetime(2026, 11, 27, 9, 0, tzinfo=timezone(timedelta(hours=-5)))


def _base() -> dict:
    return tomllib.loads((SCENARIOS / "cancel-before-release.toml").read_text())


def test_every_scenario_passes_through_the_cli(tmp_path):
    files = sorted(SCENARIOS.glob("*.toml"))
    assert len(files) >= 27
    junit = tmp_path / "junit.xml"
    cli = Path(sys.executable).with_name("aftercart")
    out = subprocess.run([str(cli), "scenario", "run", *map(str, files), "--junit", str(junit)],
                         capture_output=True, text=True, timeout=1800, cwd=ROOT, env={
                             **__import__("os").environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    suite = ET.parse(junit).getroot()
    assert (int(suite.get("tests")), int(suite.get("failures"))) == (len(files), 0)
    assert f"{len(files)} of {len(files)} scenarios passed" in out.stdout
    for f in files:  # every scenario quotes the situation it reproduces
        data = tomllib.loads(f.read_text())
        assert data["story"].strip() and any(s["action"] == "expect" for s in data["steps"]), f.name


@pytest.mark.parametrize("name", ["apartment-fixed-before-pick.toml", "cancel-after-shipping.toml"])
def test_the_shared_examples_are_played_as_written(name):
    if not SHARED.exists():
        pytest.skip("../shared/scenarios is not next to this checkout")
    assert (SCENARIOS / name).read_bytes() == (SHARED / name).read_bytes()


# ------------------------------------------------------------------ refused up front


def _refused(data: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as e:
        check(data, "f.toml")
    return e.value


def test_malformed_scenarios_are_refused_with_the_step_and_the_reason():
    d = _base()
    d["steps"][0]["action"] = "refund"
    e = _refused(d)
    assert (e.where, e.path) == ("steps[1]", "f.toml") and "unknown action 'refund'" in e.reason

    d = _base()
    d["steps"][1]["cancelled_soon"] = True
    e = _refused(d)
    assert e.where == "steps[2]" and "unknown key cancelled_soon" in e.reason

    d = _base()
    d["steps"][1]["at"] = "09:10"  # before the request at 09:20
    e = _refused(d)
    assert e.where == "steps[2]" and "time goes backwards" in e.reason

    d = _base()
    d["steps"][0]["order"] = "Z"
    e = _refused(d)
    assert e.where == "steps[1]" and "order 'Z' is never placed" in e.reason

    d = _base()
    d["orders"][0]["at"] = "09:30"  # placed after the request that names it
    e = _refused(d)
    assert e.where == "steps[1]" and "placed at 09:30, after this step" in e.reason

    d = _base()
    d["steps"][0]["kind"] = "teleport"
    assert _refused(d).where == "steps[1].kind"

    d = _base()
    d["steps"][0] = {"at": "09:20", "action": "warehouse", "order": "A", "status": "lost"}
    e = _refused(d)
    assert e.where == "steps[1].status" and "label_created" in e.reason

    d = _base()
    d["steps"][0]["at"] = "9h20"
    assert _refused(d).where == "steps[1].at"

    d = _base()
    d["policy"] = {"order_edit": {"window_minutes": -5}}
    e = _refused(d)
    assert e.where == "policy" and "order_edit.window_minutes" in e.reason

    d = _base()
    d["steps"][1]["tags_include"] = ["ac:cancel:maybe"]
    assert "not in DESIGN.md's signals" in _refused(d).reason

    d = _base()
    d["steps"][1]["messages_include"] = ["thank_you"]
    assert "not template ids" in _refused(d).reason

    d = _base()
    d["steps"][1] = {"at": "09:21", "action": "expect", "ticket": "T1", "intent": "cancel_order"}
    assert "ticket triage (SOP 6)" in _refused(d).reason

    d = _base()
    del d["orders"][0]["customer"]
    e = _refused(d)
    assert e.where == "orders[1]" and "needs customer" in e.reason

    d = _base()
    d["start"] = "tomorrow"
    assert _refused(d).where == "start"


def test_times_are_on_the_start_day_or_days_on():
    assert parse_time("09:11", START) == START.replace(minute=11)
    assert parse_time("+3d 10:00", START) == START.replace(hour=10) + timedelta(days=3)
    for bad in ("25:00", "9", "+d 10:00", "tomorrow"):
        with pytest.raises(ValueError):
            parse_time(bad, START)


def test_a_bad_file_stops_the_run_before_anything_plays(tmp_path):
    from aftercart.scenario.cli import run_files

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nstory = "y"\nstart = 2026-11-27T09:00:00Z\n[[steps]]\nat = "09:00"\naction = "dance"\n')
    out = io.StringIO()
    rc = run_files([SCENARIOS / "cancel-before-release.toml", bad], None, Console(file=out, width=200),
                   private_server=False)
    assert rc == 2
    text = out.getvalue()
    assert "refused" in text and "bad.toml" in text and "steps[1]" in text and "unknown action 'dance'" in text
    assert "nothing was played" in text and "passed" not in text


# ------------------------------------------------------------------ played (under the session's Prefect)


@pytest.mark.usefixtures("prefect_harness")
def test_a_wrong_expectation_fails_with_what_was_expected_what_was_seen_and_the_decisions(tmp_path):
    from aftercart.scenario.cli import run_files

    text = (SCENARIOS / "cancel-before-release.toml").read_text()
    text = text.replace('refunded = "55.00"', 'refunded = "10.00"').replace(
        'tags_include = ["ac:cancel:approved"]', 'tags_include = ["ac:cancel:denied"]')
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text)
    out, junit = io.StringIO(), tmp_path / "j.xml"
    rc = run_files([wrong], None, Console(file=out, width=200), junit, private_server=False)
    printed = out.getvalue()
    assert rc == 1, printed
    assert "refunded: expected '10.00', saw '55.00'" in printed
    assert "tags_include: expected ['ac:cancel:denied'], saw" in printed and "ac:cancel:approved" in printed
    assert "decision log of order A" in printed and "cancellation apply (before_release)" in printed
    assert "0 of 1 scenarios passed" in printed
    case = ET.parse(junit).getroot().find("testcase")
    assert "refunded: expected '10.00', saw '55.00'" in case.find("failure").text


@pytest.mark.usefixtures("prefect_harness")
def test_a_step_the_world_refuses_stops_the_scenario(tmp_path):
    from aftercart.scenario.cli import run_files

    held = tmp_path / "held.toml"
    held.write_text((SCENARIOS / "missing-unit-caught-before-carrier.toml").read_text() + '''
[[steps]]
at = "11:00"
action = "warehouse"
order = "M"
status = "picking"

[[steps]]
at = "11:01"
action = "expect"
order = "M"
stage = "picking"
''')
    out = io.StringIO()
    rc = run_files([held], None, Console(file=out, width=200), private_server=False)
    printed = out.getvalue()
    assert rc == 1, printed
    assert "could not be carried out" in printed and "held at the warehouse (ac:hold:address)" in printed
    assert "steps[6]" not in printed  # not played: the world is not what it assumes


@pytest.mark.usefixtures("prefect_harness")
def test_scenario_new_writes_a_commented_file_that_plays_and_passes(tmp_path):
    from aftercart.cli import app
    from aftercart.scenario.cli import run_files

    target = tmp_path / "mine.toml"
    r = CliRunner().invoke(app, ["scenario", "new", str(target)])
    assert r.exit_code == 0 and target.exists() and "# " in target.read_text()
    assert CliRunner().invoke(app, ["scenario", "new", str(target)]).exit_code == 2  # never overwritten silently
    out = io.StringIO()
    assert run_files([target], None, Console(file=out, width=200), private_server=False) == 0, out.getvalue()
