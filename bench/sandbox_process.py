"""The sandbox store in a process of its own, for the benchmarks.

    python bench/sandbox_process.py PORT --plan plus [--smtp-port N] [--webhook-address URL] [--secret S]

Shopify, the carrier and the customer's mail server are not in aftercart's processes in
production; in the benchmark's own process the sandbox's SMTP parsing and GraphQL execution took a
third of the drain's interpreter lock. Here it is `aftercart up`'s sandbox (the same app) with
three routes for the benchmark to read what it needs without the sandbox page's per-order views:

- `POST /bench/generate {"count": N, "payloads": false}`: the generator's realistic mix placed at
  once; each order's id, name, creation time, whether tagged ac:manual (and its REST payload).
- `GET /bench/status`: webhooks still to deliver, cost points spent, the plan's bucket and restore rate.
- `GET /bench/confirmations`: (order name, received at) of every order confirmation in the mailbox.

`start(...)` runs it and returns (process, base url); the benchmark stops it with `stop_process`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(log: Path, plan: str, smtp_port: int | None = None, webhook_address: str | None = None,
          secret: str = "sandbox-webhook-secret"):
    import httpx

    from sandbox.serving import free_port
    from tests.helpers import wait_for

    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), str(port), "--plan", plan, "--secret", secret]
    cmd += ["--smtp-port", str(smtp_port)] if smtp_port else []
    cmd += ["--webhook-address", webhook_address] if webhook_address else []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox process exited:\n{log.read_text()[-2000:]}")
        return httpx.get(f"{url}/health").status_code == 200

    wait_for(up, 60, "the sandbox process")
    return proc, url


def main() -> None:
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("--plan", default="plus")
    ap.add_argument("--smtp-port", type=int)
    ap.add_argument("--webhook-address")
    ap.add_argument("--secret", default="sandbox-webhook-secret")
    args = ap.parse_args()

    import uvicorn
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sandbox.app import Sandbox, SandboxConfig, create_app
    from sandbox.world import rest_order

    sb = Sandbox(SandboxConfig(webhook_secret=args.secret, access_token="tok", plan=args.plan,
                               smtp_port=args.smtp_port, webhook_address=args.webhook_address, retry_base=0.5))

    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        orders = await run_in_threadpool(sb.generate, int(body["count"]))
        with sb.world.lock:
            out = [{"id": o.id, "name": o.name, "created_at": o.created_at.timestamp(),
                    "manual": "ac:manual" in o.tags,
                    **({"payload": rest_order(o, sb.world)} if body.get("payloads") else {})} for o in orders]
        return JSONResponse(out)

    async def status(_: Request) -> JSONResponse:
        p = sb.api.bucket.plan
        return JSONResponse({"pending": sb.sender.pending(), "spent": sb.api.bucket.spent,
                             "maximum": p.maximum, "restore_rate": p.restore_rate})

    async def confirmations(_: Request) -> JSONResponse:
        return JSONResponse([[m.headers.get("X-Aftercart-Order"), m.received_at] for m in sb.mailbox.find()
                             if m.headers.get("X-Aftercart-Template") == "order_confirmation"])

    app = create_app(sb)
    app.router.routes[0:0] = [Route("/bench/generate", generate, methods=["POST"]),
                              Route("/bench/status", status, methods=["GET"]),
                              Route("/bench/confirmations", confirmations, methods=["GET"])]
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
