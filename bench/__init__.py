"""Benchmark scripts (each prints its figures; none is a test)."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process the benchmark started: SIGINT, then SIGKILL after `grace` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM: the process's peak resident set, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and of their children that ended (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def count_runs(api: str) -> tuple[int, int]:
    """(flow runs, task runs) the Prefect server at `api` holds."""
    import httpx

    return (httpx.post(f"{api}/flow_runs/count", json={}, timeout=30).json(),
            httpx.post(f"{api}/task_runs/count", json={}, timeout=30).json())


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1)))] if v else float("nan")


def start_prefect(tmp: Path, base: dict, postgres: bool):
    """A Prefect server of its own (SQLite, or a throwaway PostgreSQL): (process, api url, log, pg dir)."""
    import httpx

    from tests.helpers import free_port, wait_for

    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(base, PREFECT_HOME=str(tmp / "prefect"))
    pg_dir = None
    if postgres:
        pg_dir = Path(tempfile.mkdtemp(prefix="aftercart-bench-pg-"))  # postgres must reach it: not under tmp
        pg = subprocess.check_output([str(ROOT / "scripts" / "pg-test-server"), "start", str(pg_dir),
                                      str(free_port())], text=True).strip()
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = pg.replace("postgresql://", "postgresql+asyncpg://")
    log = tmp / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for(lambda: httpx.get(f"{api}/health").status_code == 200, 120, "the Prefect server")
    return server, api, log, pg_dir


def stop_prefect(server: subprocess.Popen, pg_dir: Path | None) -> None:
    stop_process(server)
    if pg_dir:
        subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "stop", str(pg_dir)], check=False)
