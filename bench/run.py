"""``make bench``: the panel's throughput and latency next to the raw bus, in one run (issue 10).

Starts the whole stack on PostgreSQL (its own ports, vhost and databases), seeds customers
with balances and orders, then measures each target with a load generator in its own
process (``bench.load``) at 1, 10 and 50 concurrent clients: the gateway's reads, order
placement end to end, ``ledger.credit_payment`` over RPC, and, in the same run, the
baselines: a Nameko RPC echo, a Nameko HTTP hello and single-row inserts through the same
driver. Then the same targets with two replicas of orders and ledger, and a scale check of
an account with a million ledger entries. Prints Markdown; asserts nothing.

    .venv/bin/python -m bench.run [--requests 300] [--accounts 1000] [--entries 1000000]
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from deploy.local import DEV_PORTS, Stack, free_port  # noqa: E402
from services.common.config import HEALTH_PORTS, ROOT, SERVICES  # noqa: E402
from tests.support import bus_client, database_env, databases, rabbit_vhost  # noqa: E402

CLIENTS = (1, 10, 50)
SEEDERS = 8  # customers seeded at a time: more outruns orders' 5 s RPC timeout on 2 busy cores
READS = ("profile", "orders", "balance")
SYSTEM = (*READS, "place_order", "credit_payment")
BASELINES = ("rpc_echo", "rpc_echo_transient", "rpc_echo_unconfirmed", "http_hello", "db_insert")
# The baseline each target is held against, and the target ratio.
MATCHING = {"profile": ("rpc_echo", 0.5), "orders": ("rpc_echo", 0.5), "balance": ("rpc_echo", 0.5),
            "place_order": ("rpc_echo", 0.25), "credit_payment": ("rpc_echo", 0.8)}
POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}
VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "seed.example.com", "os_template": "debian-12"}}
STACK_ENV = {
    # Seeding registers a thousand customers: hashing cost is not what is measured here, and all
    # of them come from this one address (600 an hour by default).
    "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192", "REGISTRATIONS_PER_IP_HOUR": "100000",
    "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json",
    # The scale check writes its million journal rows without their postings, which the periodic audit
    # would rightly report, a million discrepancies held in memory: not what is measured here.
    "LEDGER_AUDIT_SECONDS": "86400",
    # Room in the IP pools for every order the run places.
    "ORDERS_IP_POOLS": "WAW1=10.10.0.0/20;FRA1=10.20.0.0/20;AMS1=10.30.0.0/20",
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({model}), {memory_kib / 1024 / 1024:.1f} GiB memory, Python {platform.python_version()}"


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


class Baselines:
    """The trivial Nameko services, run as processes like the panel's own."""

    def __init__(self, var: Path, amqp: str):
        self.port = free_port()
        config = var / "baselines.yml"
        config.write_text(f"AMQP_URI: {amqp}\nWEB_SERVER_ADDRESS: 127.0.0.1:{self.port}\n"
                          "serializer: json\nmax_workers: 10\n")
        self.processes = {}
        for name, service in (("echo", "Echo"), ("tuned echo", "TunedEcho"), ("hello", "Hello")):
            log = open(var / f"{name.replace(' ', '_')}.log", "ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "nameko", "run", "--config", str(config), f"bench.baselines:{service}"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/hello", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError(f"the baselines did not start; see {var}/hello.log")

    def stop(self):
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


class Run:
    def __init__(self, var: Path, stack: Stack, baselines: Baselines, amqp: str, urls: dict, requests_per_cell: int):
        self.var = var
        self.stack = stack
        self.baselines = baselines
        self.amqp = amqp
        self.urls = urls
        self.requests = requests_per_cell
        self.rows: list[dict] = []
        self.memory: dict[str, dict[str, float]] = {}
        self.order_every = 1

    # -- seeding
    def seed(self, count: int) -> list[dict]:
        def seeder(first: int) -> list[dict]:
            # One proxy per green thread: a standalone proxy's socket has one reader.
            with bus_client(self.stack.env, "payments", timeout=60) as rpc:
                return [self.customer(rpc, n) for n in range(first, count, SEEDERS)]
        accounts = [a for chunk in eventlet.GreenPool(SEEDERS).imap(seeder, range(SEEDERS)) for a in chunk if a]
        say(f"seeded {len(accounts)} customers with 1000.00 EUR each; {sum(a['ordered'] for a in accounts)} "
            "of them with an active order")
        return accounts

    def customer(self, rpc, n: int) -> dict | None:
        http = requests.Session()
        login = f"bench{n}-{uuid.uuid4().hex[:6]}"
        password = "a long and unusual passphrase 7"
        profile = http.post(self.stack.gateway_url + "/api/v1/accounts", timeout=60, json={
            "login": login, "password": password, "email": f"{login}@example.com", "first_name": "Anna",
            "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL",
            "postal_address": POSTAL}).json()
        token = http.post(self.stack.gateway_url + "/api/v1/sessions", timeout=60,
                          json={"login": login, "password": password}).json()["token"]
        rpc.ledger.credit_payment(profile["id"], {"amount": "1000.00", "currency": "EUR"}, f"seed-{login}", "seed")
        if n % self.order_every:
            return {"account_id": profile["id"], "token": token, "ordered": False}
        order = http.post(self.stack.gateway_url + "/api/v1/orders", json=VPS, timeout=60,
                          headers={"Authorization": f"Bearer {token}"})
        if order.status_code != 201:
            say(f"seeding an order failed: {order.status_code} {order.text[:200]}")
        return {"account_id": profile["id"], "token": token, "ordered": order.status_code == 201}

    # -- measuring
    def measure(self, setup_file: Path, target: str, clients: int, profile: str) -> dict:
        # Placing an order costs ~50x a read: a third of the requests keeps the run near 10 minutes.
        count = self.requests // 3 if target == "place_order" else self.requests
        output = subprocess.run(
            [sys.executable, "-m", "bench.load", "--target", target, "--clients", str(clients),
             "--requests", str(count), "--setup", str(setup_file)],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if output.returncode != 0:
            raise RuntimeError(f"load generator failed for {target}: {output.stderr[-2000:]}")
        result = json.loads(output.stdout.strip().splitlines()[-1])
        latencies = sorted(result["latencies"])
        row = {"profile": profile, "target": target, "clients": clients, "requests": result["requests"],
               "rps": result["requests"] / result["elapsed"], "errors": result["errors"],
               "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
               "p99": percentile(latencies, 99), "samples": result["error_samples"]}
        self.rows.append(row)
        self.sample_memory(profile)
        say(f"{profile:<10} {target:<15} {clients:>3} clients: {row['rps']:7.1f} req/s, p50 {row['p50'] * 1000:6.1f} ms, "
            f"p99 {row['p99'] * 1000:6.1f} ms, errors {row['errors']}{' ' + str(row['samples'][:1]) if row['errors'] else ''}")
        return row

    def sample_memory(self, profile: str) -> None:
        seen = self.memory.setdefault(profile, {})
        pids = {p.name: self.stack.pid(p.name) for p in self.stack.processes() if "-" not in p.name or
                p.name.split("-")[0] in SERVICES}
        pids.update({f"baseline {name}": process.pid for name, process in self.baselines.processes.items()})
        for name, pid in pids.items():
            if pid and name not in ("mail",):
                try:
                    seen[name] = max(seen.get(name, 0.0), resident_mb(pid))
                except FileNotFoundError:
                    pass

    # -- the scale check
    def scale_check(self, entries: int) -> dict:
        """Balance and first page of an account with ``entries`` ledger entries against one with 10."""
        with bus_client(self.stack.env, "payments", timeout=60) as rpc:
            small, big = self.customer(rpc, 10_001), self.customer(rpc, 10_002)
            for n in range(7):  # registration credit, seed payment and order charge are the first three
                rpc.ledger.credit_payment(small["account_id"], {"amount": "1.00", "currency": "EUR"}, f"small-{n}", "bank")
        say(f"writing {entries:,} ledger entries for one account (straight SQL) ...")
        ledger = create_engine(self.urls["ledger"], poolclass=NullPool)
        with ledger.begin() as connection:
            connection.execute(text("""
                INSERT INTO transactions (id, account_id, kind, amount_minor, currency, balance_after_minor,
                                          reference, description, idempotency_key, fingerprint, created_at)
                SELECT md5(:a || g::text)::uuid::text, :a, 'payment', 100, 'EUR', 100000 + 100 * g,
                       'bank-' || g, 'Payment', 'scale-' || g, 'scale', now() - interval '1 second' * (:n - g)
                FROM generate_series(1, :n) AS g"""), {"a": big["account_id"], "n": entries - 3})
            connection.execute(text("UPDATE balances SET balance_minor = balance_minor + 100 * :n WHERE account_id = :a"),
                               {"a": big["account_id"], "n": entries - 3})
        with ledger.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # VACUUM as well: what autovacuum would otherwise start on its own in the middle of the timing
            connection.execute(text("VACUUM ANALYZE transactions"))
        ledger.dispose()
        times = {}
        http = requests.Session()
        for label, account in (("10 entries", small), (f"{entries:,} entries", big)):
            for path in ("/api/v1/balance", "/api/v1/balance/transactions"):
                headers = {"Authorization": f"Bearer {account['token']}"}
                samples = []
                for _ in range(100):
                    started = time.perf_counter()
                    response = http.get(self.stack.gateway_url + path, headers=headers, timeout=30)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                times[(label, path)] = statistics.median(samples)
        return times


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def report(run: Run, scale: dict | None, started: datetime, elapsed: float, args) -> str:
    by_key = {(r["profile"], r["target"], r["clients"]): r for r in run.rows}
    lines = [f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}; PostgreSQL and RabbitMQ on the same machine, "
             f"{args.accounts} customers (an order for every {args.order_every}), {run.requests} requests per cell "
             f"({run.requests // 3} for place_order), one load-generator process per cell "
             f"(whole run {elapsed / 60:.1f} min).", "",
             "| profile | target | clients | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors | baseline | ratio | target |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|"]
    for row in run.rows:
        baseline, goal = MATCHING.get(row["target"], (None, None))
        base = by_key.get(("1 replica", baseline, row["clients"])) if baseline else None
        ratio = row["rps"] / base["rps"] if base else None
        lines.append(
            f"| {row['profile']} | {row['target']} | {row['clients']} | {row['rps']:.1f} | {row['p50'] * 1000:.1f} | "
            f"{row['p95'] * 1000:.1f} | {row['p99'] * 1000:.1f} | {row['p99'] / row['p50']:.1f} | {row['errors']} | "
            f"{baseline or '–'} | {f'{ratio:.2f}' if ratio else '–'} | {f'≥ {goal}' if goal else '–'} |")
    lines += ["", "Resident memory, the most seen after any measurement (MB):", "",
              "| process | " + " | ".join(run.memory) + " |", "|---|" + "--:|" * len(run.memory)]
    names = sorted({name for seen in run.memory.values() for name in seen})
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{seen[name]:.0f}" if name in seen else "–"
                                                   for seen in run.memory.values()) + " |")
    if scale:
        small = [k for k in scale if k[0] == "10 entries"]
        lines += ["", "Scale check, median of 100 sequential requests through the gateway (ms):", "",
                  "| request | 10 entries | " + next(k[0] for k in scale if k[0] != "10 entries") + " | ratio |",
                  "|---|--:|--:|--:|"]
        for label, path in small:
            big = next(v for k, v in scale.items() if k[1] == path and k[0] != label)
            lines.append(f"| GET {path} | {scale[(label, path)] * 1000:.1f} | {big * 1000:.1f} | "
                         f"{big / scale[(label, path)]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per target and concurrency")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger entries of the scale check's account")
    parser.add_argument("--order-every", type=int, default=4,
                        help="seed an active order for every Nth customer (order placement is the slow part)")
    parser.add_argument("--targets", default=",".join((*SYSTEM, *BASELINES)))
    parser.add_argument("--no-replicas", action="store_true", help="skip the two-replica profile")
    args = parser.parse_args()
    targets = args.targets.split(",")
    os.environ["TEST_DATABASE"] = "postgres"
    started, clock = datetime.now(timezone.utc), time.monotonic()
    var = Path(tempfile.mkdtemp(prefix="bench-"))
    with rabbit_vhost() as amqp, databases(var, services=(*SERVICES, "bench")) as urls:
        env = {"AMQP_URI": amqp, **STACK_ENV, **database_env({s: urls[s] for s in SERVICES})}
        ports = {name: free_port() for name in (*HEALTH_PORTS, *DEV_PORTS)}
        stack = Stack(var, env=env, ports=ports)
        doubled = Stack(var, env=env, ports=ports, replicas={"orders": 2, "ledger": 2})
        baselines = None
        say(f"starting the stack on PostgreSQL in {var}")
        stack.migrate()
        try:
            stack.start(timeout=120)
            baselines = Baselines(var, amqp)
            bench_db = create_engine(urls["bench"], poolclass=NullPool)
            with bench_db.begin() as connection:
                connection.execute(text("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, account_id text NOT NULL, "
                                        "n integer NOT NULL, at timestamptz NOT NULL)"))
            bench_db.dispose()
            run = Run(var, stack, baselines, amqp, urls, args.requests)
            run.order_every = args.order_every
            accounts = run.seed(args.accounts)
            setup_file = var / "setup.json"
            setup_file.write_text(json.dumps({"gateway": stack.gateway_url, "hello": baselines.url, "amqp": amqp,
                                              "payments_amqp": stack.env["PAYMENTS_AMQP_URI"],
                                              "database": urls["bench"], "accounts": accounts}))
            for target in [t for t in (*BASELINES, *SYSTEM) if t in targets]:
                for clients in CLIENTS:
                    run.measure(setup_file, target, clients, "1 replica")
            if not args.no_replicas:
                say("starting a second orders and a second ledger")
                doubled.start(timeout=120)
                run.stack = doubled
                for target in [t for t in SYSTEM if t in targets]:
                    for clients in CLIENTS:
                        run.measure(setup_file, target, clients, "2 replicas")
            # Last: a ledger started after it would audit its million rows, written without postings.
            scale = run.scale_check(args.entries) if args.entries else None
        finally:
            if baselines:
                baselines.stop()
            doubled.stop()
    print(report(run, scale, started, time.monotonic() - clock, args))


if __name__ == "__main__":
    main()
