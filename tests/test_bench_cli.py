"""`aftercart bench`: lists the benchmark scripts and runs one with its own options."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aftercart.cli import app


def test_bench_lists_the_scripts_and_refuses_an_unknown_name():
    listed = CliRunner().invoke(app, ["bench"])
    assert listed.exit_code == 0
    for name in ("burst", "intake", "approvals", "address"):
        assert f"{name}:" in listed.output
    assert "sandbox_process" not in listed.output  # a helper, not a benchmark
    unknown = CliRunner().invoke(app, ["bench", "bursts"])
    assert unknown.exit_code == 2 and "no benchmark 'bursts'" in unknown.output and "burst" in unknown.output


def test_bench_runs_a_script_with_its_options():
    exe = Path(sys.executable).with_name("aftercart")
    done = subprocess.run([str(exe), "bench", "address", "--n", "300"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the script's --n reached it: 300 generated addresses and the labelled set (the default is 20,000)
    assert 300 < int(re.search(r"addresses: (\d+)", done.stdout).group(1)) < 1000, done.stdout
    assert "ratio ours/usaddress" in done.stdout
    helped = subprocess.run([str(exe), "bench", "address", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--n" in helped.stdout  # the script's own options, not the CLI's
