"""Benchmark scripts (each prints its figures; none is a test)."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process the benchmark started and what it started: SIGINT, SIGKILL after `grace`
    seconds; then every descendant seen meanwhile that is still alive gets SIGTERM, then SIGKILL
    (a flow-run process the runner launched as it stopped, in a session of its own, or what a shell
    started with &, which ignores SIGINT, would outlive it)."""
    seen = set(tree(proc.pid))
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= set(tree(proc.pid))
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    left = seen - {proc.pid}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 20
        while time.monotonic() < end and any(_alive(p) for p in left):
            time.sleep(0.2)


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree(pid: int) -> list[int]:
    """pid and every descendant (Linux /proc)."""
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (fields := _stat(int(p.name))):
            kids.setdefault(int(fields[1]), []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        x = todo.pop()
        out.append(x)
        todo += kids.get(x, [])
    return out


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
        if fields := _stat(pid):
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def count_runs(api: str) -> tuple[int, int]:
    """(flow runs, task runs) the Prefect server at `api` holds."""
    import httpx

    return (httpx.post(f"{api}/flow_runs/count", json={}, timeout=30).json(),
            httpx.post(f"{api}/task_runs/count", json={}, timeout=30).json())


def task_runs_by_name(api: str, since) -> dict[str, int]:
    """Task runs the Prefect server holds that started at or after `since` (a datetime), by task name."""
    from collections import Counter

    import httpx

    names: Counter[str] = Counter()
    offset = 0
    while True:
        page = httpx.post(f"{api}/task_runs/filter", timeout=60, json={
            "task_runs": {"start_time": {"after_": since.isoformat()}}, "limit": 200, "offset": offset}).json()
        names.update(t["task_key"].rsplit("-", 1)[0] for t in page)
        if len(page) < 200:
            return dict(names.most_common())
        offset += 200


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1)))] if v else float("nan")


# Prefect's documented set-up for a server under load (docs: "How to scale self-hosted Prefect"):
# events go through Redis instead of the web server's in-memory queues, and the background
# services (event persister, task run recorder, triggers, scheduler) run in a process of their own
REDIS_SETTINGS = {
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
}


def start_prefect(tmp: Path, base: dict, postgres: bool, redis: bool = False):
    """A Prefect server of its own (SQLite, or a throwaway PostgreSQL): (process, api url, log, pg dir).

    With `redis` (PostgreSQL implied) the server is split as Prefect documents it for load: a
    throwaway redis-server on loopback carries the events, `prefect server services start` runs
    the background services, and the web server runs with --no-services. The returned process is
    the web server; the other two are its children (one process tree to measure and to stop), and
    all three write to the log."""
    import shutil

    import httpx

    from aftercart.up import PREFECT_SERVER_TUNING
    from tests.helpers import free_port, wait_for

    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(base, PREFECT_HOME=str(tmp / "prefect"))
    if os.environ.get("AFTERCART_BENCH_PREFECT_DEFAULTS") != "1":  # to compare with Prefect's own defaults
        env.update(PREFECT_SERVER_TUNING)
    pg_dir = None
    if postgres or redis:
        pg_dir = Path(tempfile.mkdtemp(prefix="aftercart-bench-pg-"))  # postgres must reach it: not under tmp
        pg = subprocess.check_output([str(ROOT / "scripts" / "pg-test-server"), "start", str(pg_dir),
                                      str(free_port())], text=True).strip()
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = pg.replace("postgresql://", "postgresql+asyncpg://")
    log = tmp / "server.log"
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    if redis:
        if not shutil.which("redis-server"):
            raise SystemExit("--prefect-redis needs redis-server on the PATH (Debian: apt-get install redis-server)")
        rport = free_port()
        env.update(REDIS_SETTINGS, PREFECT_REDIS_MESSAGING_HOST="127.0.0.1", PREFECT_REDIS_MESSAGING_PORT=str(rport),
                   PREFECT_SERVER_DOCKET_URL=f"redis://127.0.0.1:{rport}/1")
        subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env, check=True,
                       stdout=open(log, "w"), stderr=subprocess.STDOUT)
        py = sys.executable
        script = (f"redis-server --bind 127.0.0.1 --port {rport} --save '' --appendonly no --dir '{tmp}' & "
                  f"until {py} -c 'import socket; socket.create_connection((\"127.0.0.1\", {rport}), 1)' "
                  f"2>/dev/null; do sleep 0.1; done; "
                  f"{py} -m prefect server services start & "
                  f"exec {' '.join(cmd)} --no-services")
        env["PREFECT_API_DATABASE_MIGRATE_ON_START"] = "false"
        server = subprocess.Popen(["sh", "-c", script], env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT)
        server.redis_url = f"redis://127.0.0.1:{rport}/0"  # type: ignore[attr-defined]
    else:
        server = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for(lambda: httpx.get(f"{api}/health").status_code == 200, 120, "the Prefect server")
    return server, api, log, pg_dir


def event_backlog(server: subprocess.Popen) -> dict[str, int] | None:
    """With --prefect-redis: for each consumer of the server's `events` stream (persister, task run
    recorder, triggers...), the events it has not taken yet plus those taken and not acknowledged.
    Prefect trims the stream only below what every active consumer has taken, so a backlog is late,
    never lost. None for a server with in-memory queues (those drop past 10,000: 'queue is full')."""
    url = getattr(server, "redis_url", None)
    if url is None:
        return None
    import redis

    client = redis.Redis.from_url(url)
    try:
        groups = client.xinfo_groups("events")
    except redis.ResponseError:  # no event published yet
        return {}
    finally:
        client.close()
    return {g["name"].decode(): int(g.get("lag") or 0) + int(g["pending"]) for g in groups}


def wait_for_events(server: subprocess.Popen, timeout: float = 300) -> str:
    """With --prefect-redis, a line on the events stream: the backlog when the work finished and how
    long its consumers took to clear it (polled until every backlog is 0 or `timeout`); "" for a
    server with in-memory queues (the scripts count its drops in its log)."""
    if getattr(server, "redis_url", None) is None:
        return ""
    start = time.monotonic()
    first = None
    while True:
        backlog = event_backlog(server) or {}
        first = sum(backlog.values()) if first is None else first
        if not any(backlog.values()):
            return (f"Redis events stream: {len(backlog)} consumer groups; {first} events behind when the work "
                    f"finished, every event taken and acknowledged {time.monotonic() - start:.0f} s later")
        if time.monotonic() - start > timeout:
            return f"Redis events stream: backlog still {backlog} after {timeout:.0f} s"
        time.sleep(1)


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"  # a zombie has ended


def stop_prefect(server: subprocess.Popen, pg_dir: Path | None) -> None:
    stop_process(server)  # with redis and the services under --prefect-redis
    if pg_dir:
        subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "stop", str(pg_dir)], check=False)
