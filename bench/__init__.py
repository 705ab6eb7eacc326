"""Benchmark scripts (each prints its figures; none is a test)."""

import signal
import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process the benchmark started: SIGINT, then SIGKILL after `grace` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
