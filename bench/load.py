"""The load generator: one target, N concurrent clients, a fixed number of requests.

Runs in its own process (``bench.run`` starts one per measurement) so that the client's
CPU is not the measured service's. Prints one JSON line: the latency of every request in
seconds, the number of errors, the first few error texts, the wall time and the CPU time
the requests took in this process.

    python -m bench.load --target balance --clients 10 --requests 300 --setup setup.json
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import http.client  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from nameko.rpc import ServiceProxy  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy as UnsignedClusterRpcProxy  # noqa: E402
from sqlalchemy import text  # noqa: E402

from services.common.database import make_engine  # noqa: E402
from services.common.rpc import ClusterRpcProxy  # noqa: E402

BURST = 10  # requests a simulated customer makes before the next one takes over
# Targets that change what a customer's reads return: they take their customers from the other end
# of the list, so that the reads measured after them (the second replicas') read the customers as
# seeded, not with the orders placed here (a customer holding the 20 orders of two cells is a
# heavier read, not the same one).
WRITES = frozenset({"place_order", "credit_payment"})
VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "bench.example.com", "os_template": "debian-12"}}


class HttpClient:
    """One keep-alive connection per simulated customer, as a browser tab would hold.

    Plain ``http.client``: the load generator shares the machine's two cores with the stack it
    measures, and ``requests`` spent 0.8 ms of CPU a request more than this (a loop against a
    local hello, both in one process), as much as the gateway's own work on a read.
    """

    def __init__(self, setup):
        self.gateway = self._connect(setup["gateway"])
        self.hello = self._connect(setup["hello"])

    @staticmethod
    def _connect(url):
        parts = urlsplit(url)
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def get(self, path, headers=None):
        return self._request(self.gateway, "GET", path, None, headers or {})

    def get_hello(self):
        return self._request(self.hello, "GET", "/hello", None, {})

    def post(self, path, document, headers):
        return self._request(self.gateway, "POST", path, json.dumps(document).encode(),
                             {**headers, "Content-Type": "application/json"})

    @staticmethod
    def _request(connection, method, path, body, headers):
        """(status, body); a keep-alive connection the server has closed is opened again, once."""
        for attempt in (1, 2):
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if attempt == 2:
                    raise

    def close(self):
        self.gateway.close()
        self.hello.close()


class RpcClient:
    """One standalone Nameko proxy (its own reply queue) per simulated caller: bare Nameko, as guest."""

    def __init__(self, setup):
        self.proxy = UnsignedClusterRpcProxy({"AMQP_URI": setup["amqp"], "serializer": "json"}, timeout=30)
        self.rpc = self.proxy.start()

    def close(self):
        self.proxy.stop()


class TransientRpcClient(RpcClient):
    """The echo as the services call each other: requests transient (delivery mode 1), with confirms."""

    options = {"delivery_mode": 1, "use_confirms": True}

    def __init__(self, setup):
        self.proxy = UnsignedClusterRpcProxy({"AMQP_URI": setup["amqp"], "serializer": "json"}, timeout=30)
        self.proxy.start()
        # the standalone proxy passes no publish options: its parts, put together with them
        self.rpc = SimpleNamespace(tuned_echo=ServiceProxy(self.proxy._worker_ctx, "tuned_echo",
                                                           self.proxy._reply_listener, **self.options))


class UnconfirmedRpcClient(TransientRpcClient):
    """Requests transient and unconfirmed."""

    options = {"delivery_mode": 1, "use_confirms": False}


class StaffClient(RpcClient):
    """Support staff's tools: the operator's login."""

    def __init__(self, setup):
        self.proxy = ClusterRpcProxy({"AMQP_URI": setup["operator_amqp"], "serializer": "json"}, timeout=30)
        self.rpc = self.proxy.start()


class PaymentsClient(RpcClient):
    """The payment system: its own login, each request signed with it."""

    def __init__(self, setup):
        self.proxy = ClusterRpcProxy({"AMQP_URI": setup["payments_amqp"], "serializer": "json"}, timeout=30)
        self.rpc = self.proxy.start()


class DbClient:
    def __init__(self, setup):
        self.engine = setup["engine"]

    def close(self):
        pass


def _get(path):
    def call(client, account, n):
        status, body = client.get(path, {"Authorization": f"Bearer {account['token']}"})
        return status == 200 or body[:200].decode(errors="replace")
    return call


def place_order(client, account, n):
    status, body = client.post("/api/v1/orders", VPS, {
        "Authorization": f"Bearer {account['token']}", "Idempotency-Key": str(uuid.uuid4())})
    return (status == 201 and json.loads(body)["status"] == "active") or body[:200].decode(errors="replace")


def hello(client, account, n):
    status, body = client.get_hello()
    return status == 200 or body[:200].decode(errors="replace")


def credit_payment(client, account, n):
    client.rpc.ledger.credit_payment(account["account_id"], {"amount": "1.00", "currency": "EUR"},
                                     f"bench-{uuid.uuid4()}", f"bank-{n}")
    return True


def echo(client, account, n):
    return client.rpc.echo.echo({"n": n, "account_id": account["account_id"]})["n"] == n


def tuned_echo(client, account, n):
    return client.rpc.tuned_echo.echo({"n": n, "account_id": account["account_id"]})["n"] == n


def profile_rpc(client, account, n):
    return client.rpc.profile.get(account["account_id"])["id"] == account["account_id"]


def insert(client, account, n):
    with client.engine.begin() as connection:
        connection.execute(text("INSERT INTO bench_rows (account_id, n, at) VALUES (:a, :n, now())"),
                           {"a": account["account_id"], "n": n})
    return True


TARGETS = {
    "profile": (HttpClient, _get("/api/v1/profile")),
    "orders": (HttpClient, _get("/api/v1/orders")),
    "balance": (HttpClient, _get("/api/v1/balance")),
    "place_order": (HttpClient, place_order),
    "credit_payment": (PaymentsClient, credit_payment),
    "http_hello": (HttpClient, hello),
    "rpc_echo": (RpcClient, echo),
    "rpc_echo_transient": (TransientRpcClient, tuned_echo),
    "rpc_echo_unconfirmed": (UnconfirmedRpcClient, tuned_echo),
    "db_insert": (DbClient, insert),
    "profile_rpc": (StaffClient, profile_rpc),
}


def run(target: str, clients: int, total: int, setup: dict) -> dict:
    make_client, request = TARGETS[target]
    accounts = setup["accounts"][::-1] if target in WRITES else setup["accounts"]
    if make_client is DbClient:
        setup["engine"] = make_engine(setup["database"])
    pool = eventlet.GreenPool(clients)
    connections = list(pool.imap(lambda _: make_client(setup), range(clients)))
    numbers = itertools.count()
    latencies, errors = [], []

    def customer(index_and_client):
        index, client = index_and_client
        made = 0
        while (n := next(numbers)) < total:
            # Like a customer's page load: a burst of requests with one token, then the next customer.
            account = accounts[(index + clients * (made // BURST)) % len(accounts)]
            made += 1
            started = time.perf_counter()
            try:
                outcome = request(client, account, n)
            except Exception as exc:  # a benchmark counts failures, it does not stop at them
                outcome = f"{type(exc).__name__}: {exc}"[:200]
            latencies.append(time.perf_counter() - started)
            if outcome is not True:
                errors.append(str(outcome))

    started, cpu = time.perf_counter(), _cpu_seconds()
    list(pool.imap(customer, enumerate(connections)))
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    for client in connections:
        client.close()
    return {"target": target, "clients": clients, "requests": total, "elapsed": elapsed, "cpu": cpu,
            "latencies": latencies, "errors": len(errors), "error_samples": errors[:3]}


def _cpu_seconds() -> float:
    """This process's CPU so far: the requests' own, without the imports and connections before them."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--setup", required=True, help="JSON: gateway, hello, amqp, database, accounts")
    args = parser.parse_args()
    with open(args.setup) as file:
        setup = json.load(file)
    print(json.dumps(run(args.target, args.clients, args.requests, setup)))


if __name__ == "__main__":
    main()
