"""``make bench``: the panel's throughput and latency next to the raw bus, in one run (issue 10).

Starts the whole stack on PostgreSQL (its own ports, vhost and databases), seeds customers
with balances and orders, then measures each target with a load generator in its own
process (``bench.load``) at 1, 10 and 50 concurrent clients: the gateway's reads, order
placement end to end, ``ledger.credit_payment`` over RPC, and, in the same run, the
baselines: a Nameko RPC echo, a Nameko HTTP hello and single-row inserts through the same
driver; each target's cell also just after an echo at its concurrency, its ratio to that one
beside its ratio to the first. Then the same targets with two replicas of orders and ledger, a
scale check of an account with a million ledger entries, and a month end: 100,000 active orders with
auto-renew due on one day (written with SQL), renewed by the lifecycle clock while the
panel's reads are timed against a quiet run. Prints Markdown; asserts nothing.

    .venv/bin/python -m bench.run [--requests 300] [--accounts 1000] [--entries 1000000] [--renewals 100000]
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

from deploy.local import DEV_PORTS, Stack  # noqa: E402
from deploy.ports import free_port  # noqa: E402
from services.common.config import HEALTH_PORTS, ROOT, SERVICES  # noqa: E402
from tests import preflight  # noqa: E402
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
    # The month end's orders are found by the next tick, not a minute later.
    "ORDERS_TICK_SECONDS": "5",
}
RENEWAL_READS = ("orders", "balance")  # the panel's reads timed while the month end runs, at 10 clients
SCALE_PATHS = ("/api/v1/balance", "/api/v1/balance/transactions")  # the scale check's two reads
RENEWAL_CUSTOMERS = 100                # the month end's orders belong to this many customers
PAIRED = "echo before"                 # the profile of the echo measured just before each target's cell


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({model}), {memory_kib / 1024 / 1024:.1f} GiB memory, Python {platform.python_version()}"


TICK = os.sysconf("SC_CLK_TCK")
SERVERS = {"beam.smp": "RabbitMQ", "postgres": "PostgreSQL"}   # a process's comm -> whose it is


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process, or None once it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def server_pids() -> dict[int, str]:
    """Every process of RabbitMQ and PostgreSQL on this machine (PostgreSQL: one per connection)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if comm in SERVERS:
                found[int(entry.name)] = SERVERS[comm]
    return found


def cpu_by_name(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds used between two snapshots, by process name (a process started between them counts whole)."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used[name] = used.get(name, 0.0) + seconds - before.get(pid, (name, 0.0))[1]
    return used


def cell_cpu(before: tuple, after: tuple, requests: int, load_generator: float) -> dict[str, float]:
    """Milliseconds of CPU per request by process, from the settled stack before a cell to the settled
    stack after it, less what each process used at rest (its rate while the stack settled before)."""
    (started, first, at_rest), (ended, last, _) = before, after
    per_request = {name: max(0.0, used - at_rest.get(name, 0.0) * (ended - started)) * 1000 / requests
                   for name, used in cpu_by_name(first, last).items()}
    per_request["load generator"] = load_generator * 1000 / requests
    return per_request


def cpu_table(rows: list[dict]) -> list[str]:
    accounted = [row for row in rows if "cpu" in row]
    if not accounted:
        return []
    ends = ("RabbitMQ", "PostgreSQL", "load generator")

    def place(name: str) -> tuple:   # the gateway, the services, the baselines, the servers, the load generator
        rank = 0 if name == "gateway" else 3 + ends.index(name) if name in ends else 2 if name.startswith("baseline") else 1
        return rank, name
    columns = sorted({name for row in accounted for name, ms in row["cpu"].items() if ms >= 0.05}, key=place)
    lines = ["", "Where a request's CPU went: ms of CPU per request in each process (its own `/proc` times), from "
                 "the settled stack before the cell to the settled stack after it (so a cell's trailing mails and "
                 "PDFs are its own), less what each process used at rest; PostgreSQL and RabbitMQ are all of their "
                 "processes on the machine, the load generator its requests' loop:", "",
             "| profile | target | clients | all | " + " | ".join(columns) + " |", "|---|---|--:|--:|" + "--:|" * len(columns)]
    for row in accounted:
        lines.append(f"| {row['profile']} | {row['target']} | {row['clients']} | {sum(row['cpu'].values()):.2f} | "
                     + " | ".join(f"{row['cpu'].get(name, 0.0):.2f}" for name in columns) + " |")
    return lines


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
        # The last time the stack settled: (when, CPU seconds by pid as (name, seconds), each
        # process's CPU rate at rest in cores); None once a measurement has begun.
        self.settled: tuple[float, dict[int, tuple[str, float]], dict[str, float]] | None = None

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

    def customer(self, rpc, n: int, order: bool | None = None) -> dict | None:
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
        if (n % self.order_every) if order is None else not order:
            return {"account_id": profile["id"], "token": token, "ordered": False}
        order = http.post(self.stack.gateway_url + "/api/v1/orders", json=VPS, timeout=60,
                          headers={"Authorization": f"Bearer {token}"})
        if order.status_code != 201:
            say(f"seeding an order failed: {order.status_code} {order.text[:200]}")
        return {"account_id": profile["id"], "token": token, "ordered": order.status_code == 201}

    def settle(self, quiet: float = 0.10, seconds: int = 3, limit: float = 300.0) -> None:
        """Wait until the stack has digested what came before it (the seeding's events, mails and PDFs):
        its processes together under ``quiet`` of a core for ``seconds`` seconds in a row, so that
        each measurement has the machine to itself. At most ``limit`` seconds; says how long it took.
        Keeps what each process used at rest meanwhile, for the accounting of the next cell."""
        started = time.monotonic()
        snapshots, calm = [(started, self.cpu_snapshot())], False
        while not calm and time.monotonic() - started < limit:
            time.sleep(1)
            snapshots.append((time.monotonic(), self.cpu_snapshot()))
            window = snapshots[-1 - seconds:]
            calm = len(window) > seconds and all(self.stack_cpu(later) - self.stack_cpu(earlier) < quiet
                                                 for (_, earlier), (_, later) in zip(window, window[1:]))
        (since, first), (now, last) = snapshots[-1 - seconds] if calm else snapshots[-1], snapshots[-1]
        at_rest = {name: used / (now - since) for name, used in cpu_by_name(first, last).items()} if calm else {}
        self.settled = (now, last, at_rest)
        say(f"the stack settled in {now - started:.0f} s" if calm else
            f"the stack was still busy after {limit:.0f} s; measuring anyway")

    def cpu_snapshot(self) -> dict[int, tuple[str, float]]:
        """CPU seconds so far of every process a request can pass through, by pid: the stack's,
        the baselines', RabbitMQ's and PostgreSQL's."""
        named = {pid: name for name, pid in self.pids().items()}
        named.update(server_pids())
        return {pid: (name, used) for pid, name in named.items() if (used := cpu_seconds(pid)) is not None}

    def stack_cpu(self, snapshot: dict[int, tuple[str, float]]) -> float:
        stack = {process.name for process in self.stack.processes()}
        return sum(used for name, used in snapshot.values() if name in stack)

    def pids(self) -> dict[str, int]:
        pids = {p.name: self.stack.pid(p.name) for p in self.stack.processes()}
        if self.baselines:
            pids.update({f"baseline {name}": process.pid for name, process in self.baselines.processes.items()})
        return {name: pid for name, pid in pids.items() if pid}

    # -- measuring
    def measure(self, setup_file: Path, target: str, clients: int, profile: str, cpu: bool = False) -> dict:
        """One cell. ``cpu``: on a settled stack, and settled again after it, so that what the cell's
        requests cost each process (its trailing mails and PDFs included) is kept with it."""
        # Placing an order costs ~50x a read: a third of the requests keeps the run near 10 minutes.
        count = self.requests // 3 if target == "place_order" else self.requests
        if cpu and self.settled is None:
            self.settle()
        before, self.settled = self.settled, None
        output = subprocess.run(
            [sys.executable, "-m", "bench.load", "--target", target, "--clients", str(clients),
             "--requests", str(count), "--setup", str(setup_file)],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if output.returncode != 0:
            raise RuntimeError(f"load generator failed for {target}: {output.stderr[-2000:]}")
        result = json.loads(output.stdout.strip().splitlines()[-1])
        latencies = sorted(result["latencies"])
        row = {"profile": profile, "target": target, "clients": clients, "requests": result["requests"],
               "latencies": latencies,
               "rps": result["requests"] / result["elapsed"], "errors": result["errors"],
               "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
               "p99": percentile(latencies, 99), "samples": result["error_samples"]}
        self.rows.append(row)
        if profile != PAIRED:   # the stack at rest: the memory table is of the cells that loaded it
            self.sample_memory(profile)
        if cpu:
            self.settle()
            row["cpu"] = cell_cpu(before, self.settled, count, result["cpu"])
        say(f"{profile:<10} {target:<15} {clients:>3} clients: {row['rps']:7.1f} req/s, p50 {row['p50'] * 1000:6.1f} ms, "
            f"p99 {row['p99'] * 1000:6.1f} ms, errors {row['errors']}{' ' + str(row['samples'][:1]) if row['errors'] else ''}")
        return row

    def measure_beside_echo(self, setup_file: Path, target: str, clients: int, profile: str) -> dict:
        """``target``'s cell, and just before it the baseline it is held against at the same concurrency.

        The machine's speed drifts within a run (the echo at one client 313 to 647 a second within
        twenty minutes on 2026-12-07), so a ratio to the echo of the run's first cells can be the
        drift's as much as the target's. The echo just before is a few seconds older than the cell:
        the stack settles between the two, so that the echo's CPU stays out of the cell's."""
        baseline = MATCHING.get(target, (None, None))[0]
        echo = self.measure(setup_file, baseline, clients, PAIRED) if baseline else None
        row = self.measure(setup_file, target, clients, profile, cpu=True)
        row["echo_before"] = echo
        return row

    def sample_memory(self, profile: str) -> None:
        seen = self.memory.setdefault(profile, {})
        for name, pid in self.pids().items():
            if name != "mail" and ("-" not in name or name.split("-")[0] in SERVICES):
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
        http = requests.Session()
        accounts = (("10 entries", small), (f"{entries:,} entries", big))
        samples = {(label, path): [] for label, _ in accounts for path in SCALE_PATHS}
        # The two accounts' requests alternate, so that both are timed against the same background
        # (after the month end, its mails and PDFs are still being sent for minutes).
        for path in SCALE_PATHS:
            for _ in range(100):
                for label, account in accounts:
                    started = time.perf_counter()
                    response = http.get(self.stack.gateway_url + path, timeout=30,
                                        headers={"Authorization": f"Bearer {account['token']}"})
                    samples[(label, path)].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
        return {key: statistics.median(times) for key, times in samples.items()}

    # -- the month end
    def month_end(self, setup_file: Path, count: int) -> dict:
        """``count`` active orders with auto-renew due today, renewed by the clock while the reads are timed."""
        quiet = {}
        for target in RENEWAL_READS:
            self.settle()
            quiet[target] = self.measure(setup_file, target, 10, "quiet")
        per_customer = -(-count // RENEWAL_CUSTOMERS)
        with bus_client(self.stack.env, "payments", timeout=60) as rpc:
            owners = [self.customer(rpc, 20_000 + n, order=False) for n in range(RENEWAL_CUSTOMERS)]
            for owner in owners:  # each renewal takes 9.90: enough for all of them, and a little more
                rpc.ledger.credit_payment(owner["account_id"], {"amount": f"{per_customer * 10 + 100}.00",
                                                                "currency": "EUR"}, "month-end", "bench")
        say(f"writing {count:,} active orders due for renewal today for {len(owners)} customers (straight SQL) ...")
        marker = datetime(2000, 1, 1, tzinfo=timezone.utc)  # their created_at: how the run finds them again
        orders = create_engine(self.urls["orders"], poolclass=NullPool)
        with orders.begin() as connection:
            # paid until tomorrow (UTC): overdue tomorrow, auto-renewed today (the last paid day).
            connection.execute(text("""
                INSERT INTO orders (id, number, account_id, plan_id, period_months, status, auto_renew, fields,
                                    datacenter, currency, renewals, plan_changes, created_at, updated_at)
                SELECT md5('month-end' || g::text)::uuid::text, nextval('order_numbers'),
                       (CAST(:owners AS text[]))[1 + g % :n], 'vps-s', 1,
                       'active', true, '{"hostname": "renew.example.com", "os_template": "debian-12"}', 'WAW1',
                       'EUR', 0, 0, :marker, now()
                FROM generate_series(1, :count) AS g"""),
                {"owners": [o["account_id"] for o in owners], "n": len(owners), "count": count, "marker": marker})
            connection.execute(text("""
                INSERT INTO order_periods (order_id, starts, ends, months, paid_minor, price_minor, charged_minor,
                                           adjustment_minor, adjusted_from)
                SELECT id, CAST(d.tomorrow - interval '1 month' AS date), d.tomorrow, 1, 990, 990, 990, 0,
                       CAST(d.tomorrow - interval '1 month' AS date)
                FROM orders, (SELECT CAST(now() AT TIME ZONE 'UTC' AS date) + 1 AS tomorrow) AS d
                WHERE created_at = :marker"""), {"marker": marker})
        with orders.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE orders"))
            connection.execute(text("ANALYZE order_periods"))
        seeded = time.monotonic()
        busy = {target: [] for target in RENEWAL_READS}
        done = {"value": False}

        def reads():
            while not done["value"]:
                for target in RENEWAL_READS:
                    busy[target].append(self.measure(setup_file, target, 10, "month end"))
        reader = eventlet.spawn(reads)
        progress, first, last, last_count = [], None, None, 0
        mail, mail_at_last = create_engine(self.urls["notifier"], poolclass=NullPool), None
        sent_before = mail_counts(mail)["sent"]
        stalled = time.monotonic()
        while True:
            eventlet.sleep(2)
            with orders.connect() as connection:
                renewed = connection.execute(text("SELECT count(*) FROM orders WHERE created_at = :marker "
                                                  "AND renewals > 0"), {"marker": marker}).scalar()
            now = time.monotonic()
            if renewed and first is None:
                first = now
            if renewed != last_count:
                last, last_count, stalled = now, renewed, now
                mail_at_last = mail_counts(mail)
                say(f"month end: {renewed:,} of {count:,} renewed after {now - seeded:.0f} s; mail "
                    f"{mail_at_last['sent'] - sent_before:,} sent, {mail_at_last['pending']:,} waiting")
            progress.append((now - seeded, renewed))
            if renewed >= count or now - stalled > 120:
                break
        done["value"] = True
        reader.wait()
        orders.dispose()
        mail.dispose()
        return {"count": count, "renewed": last_count, "customers": len(owners), "first": first - seeded if first else None,
                "all": (last - seeded) if last else None,
                "rate": last_count / (last - first) if first and last and last > first else None,
                "quiet": quiet, "busy": busy,
                "mail": {"sent": mail_at_last["sent"] - sent_before, "pending": mail_at_last["pending"]}
                if mail_at_last else None}


def mail_counts(notifier) -> dict[str, int]:
    """The notifier's mails the relay took and those still waiting for it."""
    with notifier.connect() as connection:
        counts = dict(connection.execute(text(
            "SELECT state, count(*) FROM deliveries WHERE state IN ('sent', 'pending') GROUP BY state")).all())
    return {"sent": counts.get("sent", 0), "pending": counts.get("pending", 0)}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def report(run: Run, scale: dict | None, started: datetime, elapsed: float, args, month_end: dict | None = None) -> str:
    by_key = {(r["profile"], r["target"], r["clients"]): r for r in run.rows}
    lines = [f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}; PostgreSQL and RabbitMQ on the same machine, "
             f"{args.accounts} customers (an order for every {args.order_every}), {run.requests} requests per cell "
             f"({run.requests // 3} for place_order), one load-generator process per cell "
             f"(whole run {elapsed / 60:.1f} min).", "",
             "| profile | target | clients | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors | baseline | ratio | "
             "echo just before, req/s | ratio to it | target |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|"]
    for row in [r for r in run.rows if r["profile"] not in ("quiet", "month end", PAIRED)]:
        baseline, goal = MATCHING.get(row["target"], (None, None))
        base = by_key.get(("1 replica", baseline, row["clients"])) if baseline else None
        ratio = row["rps"] / base["rps"] if base else None
        before = row.get("echo_before")
        echo_rps, echo_ratio = (before["rps"], row["rps"] / before["rps"]) if before else (None, None)
        lines.append(
            f"| {row['profile']} | {row['target']} | {row['clients']} | {row['rps']:.1f} | {row['p50'] * 1000:.1f} | "
            f"{row['p95'] * 1000:.1f} | {row['p99'] * 1000:.1f} | {row['p99'] / row['p50']:.1f} | {row['errors']} | "
            f"{baseline or '–'} | {f'{ratio:.2f}' if ratio else '–'} | {f'{echo_rps:.1f}' if echo_rps else '–'} | "
            f"{f'{echo_ratio:.2f}' if echo_ratio else '–'} | {f'≥ {goal}' if goal else '–'} |")
    lines += cpu_table(run.rows)
    lines += ["", "Resident memory, the most seen after any measurement (MB):", "",
              "| process | " + " | ".join(run.memory) + " |", "|---|" + "--:|" * len(run.memory)]
    names = sorted({name for seen in run.memory.values() for name in seen})
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{seen[name]:.0f}" if name in seen else "–"
                                                   for seen in run.memory.values()) + " |")
    if scale:
        small = [k for k in scale if k[0] == "10 entries"]
        lines += ["", "Scale check, median of 100 sequential requests through the gateway, the two accounts alternating (ms):", "",
                  "| request | 10 entries | " + next(k[0] for k in scale if k[0] != "10 entries") + " | ratio |",
                  "|---|--:|--:|--:|"]
        for label, path in small:
            big = next(v for k, v in scale.items() if k[1] == path and k[0] != label)
            lines.append(f"| GET {path} | {scale[(label, path)] * 1000:.1f} | {big * 1000:.1f} | "
                         f"{big / scale[(label, path)]:.2f} |")
    if month_end:
        m = month_end
        lines += ["", f"Month end: {m['count']:,} active orders of {m['customers']} customers with auto-renew due "
                      f"today (written with SQL), renewed by the lifecycle clock (batches of "
                      f"{os.environ.get('ORDERS_CLOCK_BATCH', '500')}, ledger calls from "
                      f"{os.environ.get('ORDERS_RENEWALS_PER_CALL', '100')} renewals, "
                      f"{os.environ.get('ORDERS_RENEWALS_AT_ONCE', '4')} calls at once, "
                      f"a tick every {STACK_ENV['ORDERS_TICK_SECONDS']} s): "
                      f"{m['renewed']:,} renewed; the first {m['first']:.0f} s after the orders were written, "
                      f"the last after {m['all']:.0f} s: **{m['rate']:.0f} renewals/s** (target ≥ 500)."
                      if m["rate"] else f"Month end: {m['renewed']} of {m['count']} renewed: no rate.", "",
                  *([f"Mail by the last renewal: {m['mail']['sent']:,} sent since the renewals began, "
                     f"{m['mail']['pending']:,} waiting for the relay.", ""] if m.get("mail") else []),
                  "The panel's reads at 10 clients meanwhile, against the same reads just before (quiet):", "",
                  "| read | quiet p50 ms | quiet p99 ms | month end p50 ms | month end p99 ms | p99 ratio | "
                  "month end requests | errors |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for target, quiet in m["quiet"].items():
            cells = m["busy"][target]
            latencies = sorted(x for cell in cells for x in cell["latencies"])
            errors = sum(cell["errors"] for cell in cells)
            if not latencies:
                continue
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            lines.append(f"| {target} | {quiet['p50'] * 1000:.1f} | {quiet['p99'] * 1000:.1f} | {p50 * 1000:.1f} | "
                         f"{p99 * 1000:.1f} | {p99 / quiet['p99']:.1f} | {len(latencies)} | {errors} |")
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
    parser.add_argument("--renewals", type=int, default=100_000,
                        help="orders of the month end's renewal run (0: skip it)")
    args = parser.parse_args()
    targets = args.targets.split(",")
    os.environ["TEST_DATABASE"] = "postgres"
    preflight.require(postgres=True)
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
            # Each cell on a settled stack: the seeding's and the last cell's events, mails and PDFs are not in it.
            for target in [t for t in BASELINES if t in targets]:
                for clients in CLIENTS:
                    run.measure(setup_file, target, clients, "1 replica", cpu=True)
            for target in [t for t in SYSTEM if t in targets]:
                for clients in CLIENTS:
                    run.measure_beside_echo(setup_file, target, clients, "1 replica")
            if not args.no_replicas:
                say("starting a second orders and a second ledger")
                doubled.start(timeout=120)
                run.stack, run.settled = doubled, None
                for target in [t for t in SYSTEM if t in targets]:
                    for clients in CLIENTS:
                        run.measure_beside_echo(setup_file, target, clients, "2 replicas")
                doubled.stop(["orders-2", "ledger-2"])
                run.stack = stack
            # After the replicas' cells, which it would otherwise leave a hundred thousand mails and PDFs
            # behind to wait for, and on one replica of each service, as its figures say.
            month_end = run.month_end(setup_file, args.renewals) if args.renewals else None
            # Last: a ledger started after it would audit its million rows, written without postings.
            scale = run.scale_check(args.entries) if args.entries else None
        finally:
            if baselines:
                baselines.stop()
            doubled.stop()
    print(report(run, scale, started, time.monotonic() - clock, args, month_end))


if __name__ == "__main__":
    main()
