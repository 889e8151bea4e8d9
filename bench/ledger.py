"""How fast the ledger moves money on PostgreSQL, in process and over Nameko RPC (issue 3).

Prints figures, asserts nothing. Each payment is one transaction of two postings, written
with its row lock, running balance, idempotency check and two outbox events; for each run, the
calls a second and this process's CPU a call (over RPC that is the client and the ledger's
container together, both in this process). For scale it
also measures the same run's raw Nameko RPC round trip (an ``echo`` service), so the
ratio says how much of an RPC payment is the ledger's own work.

    .venv/bin/python -m bench.ledger [--payments 2000] [--concurrency 10]

Needs RabbitMQ (management API on 15672) and PostgreSQL as for the tests
(``TEST_POSTGRES_URL``, default postgresql://postgres@127.0.0.1:5432/postgres).
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

from eventlet import GreenPool  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.rpc import rpc  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy as UnsignedClusterRpcProxy  # noqa: E402

from deploy.ports import free_port  # noqa: E402
from services.common.clock import clock  # noqa: E402
from services.common.database import UnitOfWork, make_engine  # noqa: E402
from services.common.migrations import upgrade  # noqa: E402
from services.common.rpc import ClusterRpcProxy  # noqa: E402
from services.ledger.application import Ledger  # noqa: E402
from services.ledger.models import Base  # noqa: E402
from services.ledger.tax import Seller  # noqa: E402
from tests import preflight  # noqa: E402
from tests.fakes import profile_event  # noqa: E402
from tests.support import databases, rabbit_vhost, role_uri  # noqa: E402

POSTINGS_PER_PAYMENT = 2


class Echo:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


class NoProfile:
    """Payments without a method to accounts the ledger knows (:func:`registered`) never ask profile."""

    def get(self, account_id):
        raise AssertionError("the benchmark should not need profile")


def registered(ledger: Ledger, account_id: str) -> None:
    """The account as profile's ``account_registered`` leaves it in the ledger: a balance, and a copy of
    the customer (a payment's description is worded in their language)."""
    ledger.account_registered(profile_event(account_id))


def eur(cents: int) -> dict:
    return {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": "EUR"}


def timed(label: str, calls: int, run) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{label:<44} {calls:>6} calls in {elapsed:6.2f} s = {calls / elapsed:8.1f} calls/s, "
          f"{cpu / calls * 1000:5.2f} ms of this process's CPU a call")
    return calls / elapsed


def in_process(uow, payments: int, concurrency: int) -> float:
    ledger = Ledger(uow, NoProfile(), clock, Seller.from_env({}))
    accounts = [f"bench-{uuid.uuid4()}" for _ in range(concurrency)]
    for account in accounts:
        registered(ledger, account)
    pool = GreenPool(concurrency)

    def pay(n):
        ledger.credit_payment(accounts[n % concurrency], eur(100 + n % 50), f"p-{n}", f"P-{n}")
    return timed("in process, payments", payments, lambda: list(pool.imap(pay, range(payments))))


def over_rpc(client, accounts, payments: int, concurrency: int) -> float:
    def run():
        in_flight = []
        for n in range(payments):
            in_flight.append(client.ledger.credit_payment.call_async(
                accounts[n % len(accounts)], eur(100 + n % 50), f"r-{n}", f"R-{n}"))
            if len(in_flight) >= concurrency:
                in_flight.pop(0).result()
        for reply in in_flight:
            reply.result()
    return timed("over RPC, payments", payments, run)


def echo(client, calls: int, concurrency: int) -> float:
    def run():
        in_flight = []
        for n in range(calls):
            in_flight.append(client.echo.echo.call_async(n))
            if len(in_flight) >= concurrency:
                in_flight.pop(0).result()
        for reply in in_flight:
            reply.result()
    return timed("over RPC, raw Nameko echo", calls, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    os.environ["TEST_DATABASE"] = "postgres"
    preflight.require(postgres=True)
    os.environ.setdefault("OUTBOX_POLL_SECONDS", "0.5")
    from services.ledger.service import LedgerService

    with rabbit_vhost() as amqp, databases(Path(tempfile.mkdtemp()), services=("ledger",)) as urls:
        url = urls["ledger"]
        upgrade("ledger", url)
        os.environ["LEDGER_DATABASE_URL"] = url
        uow = UnitOfWork(make_engine(url), "ledger", Base.metadata)
        print(f"PostgreSQL, {args.payments} payments of {POSTINGS_PER_PAYMENT} postings each, "
              f"{args.concurrency} at a time\n")
        local = in_process(uow, args.payments, args.concurrency)

        config = {"AMQP_URI": amqp, "serializer": "json", "max_workers": args.concurrency,
                  "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
        # The ledger logs in as itself and is paid by the payment system's login; the echo, bare
        # Nameko, as guest.
        containers = [ServiceContainer(LedgerService, {**config, "AMQP_URI": role_uri(amqp, "ledger")}),
                      ServiceContainer(Echo, config)]
        for container in containers:
            container.start()
        try:
            accounts = [f"bench-rpc-{uuid.uuid4()}" for _ in range(args.concurrency)]
            for account in accounts:
                registered(Ledger(uow, NoProfile(), clock, Seller.from_env({})), account)
            payments = {"AMQP_URI": role_uri(amqp, "payments"), "serializer": "json"}
            with ClusterRpcProxy(payments, timeout=30) as client:
                remote = over_rpc(client, accounts, args.payments, args.concurrency)
            with UnsignedClusterRpcProxy({"AMQP_URI": amqp, "serializer": "json"}, timeout=30) as client:
                raw = echo(client, args.payments, args.concurrency)
            problems = Ledger(uow, NoProfile(), clock, Seller.from_env({})).audit()
        finally:
            for container in containers:
                container.stop()
            uow.engine.dispose()

    print()
    print(f"postings/s in process : {local * POSTINGS_PER_PAYMENT:8.1f}")
    print(f"postings/s over RPC   : {remote * POSTINGS_PER_PAYMENT:8.1f}")
    print(f"raw RPC echo calls/s  : {raw:8.1f}")
    print(f"RPC payments / RPC echo = {remote / raw:.2f}; RPC / in process = {remote / local:.2f}")
    print(f"audit after the run: {'sound' if not problems else problems[:3]}")


if __name__ == "__main__":
    main()
