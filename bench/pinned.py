"""Does a second replica add throughput when it has a core of its own? (issue 19, item 5)

Starts the whole stack on PostgreSQL (its own ports, vhost and databases, as ``bench.run``),
seeds customers, then drives ``profile.get`` over RPC (the operator's login, one standalone proxy
per client) against one profile replica pinned to core 0 (``taskset``), then against two, the
second pinned to core 1. A profile read is CPU-bound in the service's Python (the ORM, the reply's
serialisation); everything else (PostgreSQL, RabbitMQ, the load generator) runs on whatever core
is free, as on a machine with more cores than services.

    python -m bench.pinned [--requests 3000] [--clients 20] [--accounts 200]
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.run import STACK_ENV, Run, say  # noqa: E402
from deploy.local import DEV_PORTS, Stack  # noqa: E402
from deploy.ports import free_port  # noqa: E402
from services.common.config import HEALTH_PORTS, SERVICES  # noqa: E402
from tests import preflight  # noqa: E402
from tests.support import database_env, databases, rabbit_vhost  # noqa: E402


def pin(pid: int, core: int) -> None:
    """Every thread of ``pid`` on ``core`` only."""
    subprocess.run(["taskset", "-apc", str(core), str(pid)], check=True, stdout=subprocess.DEVNULL)


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each setup, alternating")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores")
    os.environ["TEST_DATABASE"] = "postgres"
    preflight.require(postgres=True)
    var = Path(tempfile.mkdtemp(prefix="bench-pinned-"))
    with rabbit_vhost() as amqp, databases(var) as urls:
        env = {"AMQP_URI": amqp, **STACK_ENV, **database_env({s: urls[s] for s in SERVICES})}
        ports = {name: free_port() for name in (*HEALTH_PORTS, *DEV_PORTS)}
        one = Stack(var, env=env, ports=ports)
        two = Stack(var, env=env, ports=ports, replicas={"profile": 2})
        say(f"starting the stack on PostgreSQL in {var}")
        one.migrate()
        try:
            one.start(timeout=120)
            run = Run(var, one, None, amqp, urls, args.requests)
            run.order_every = 10 ** 9   # no orders: profile reads only
            run.sample_memory = lambda profile: None
            accounts = run.seed(args.accounts)
            setup = var / "setup.json"
            setup.write_text(json.dumps({"operator_amqp": one.env["OPERATOR_AMQP_URI"], "accounts": accounts}))
            pin(one.pid("profile"), 0)
            results: dict[str, list[float]] = {}
            for _ in range(args.rounds):   # alternating, so that the shared machine's load falls on both
                rps = run.measure(setup, "profile_rpc", args.clients, "1 replica")["rps"]
                results.setdefault("1 replica (core 0)", []).append(rps)
                two.start(timeout=120)
                second = two.pid("profile-2")
                pin(second, 1)
                rps = run.measure(setup, "profile_rpc", args.clients, "2 replicas")["rps"]
                results.setdefault("2 replicas (cores 0 and 1)", []).append(rps)
                stop(second)
        finally:
            two.stop()
    single, double = (sum(v) / len(v) for v in results.values())
    print(json.dumps({**{k: [round(x, 1) for x in v] for k, v in results.items()},
                      "ratio": round(double / single, 2)}))


if __name__ == "__main__":
    main()
