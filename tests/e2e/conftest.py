"""End-to-end fixtures: the whole stack as processes, on free ports and a private vhost."""
from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest

from deploy.local import DEV_PORTS, Stack
from deploy.ports import free_port
from services.common.clock import move_clock
from services.common.config import HEALTH_PORTS
from tests.support import Api, bus_client, database_env, databases, rabbit_vhost

STACK_ENV = {
    "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192",   # cheap hashing in tests
    "OUTBOX_POLL_SECONDS": "0.2", "EVENT_RETRY_BASE_SECONDS": "0.2",
    "ORDERS_TICK_SECONDS": "1", "NOTIFIER_TICK_SECONDS": "0.5", "LEDGER_STATEMENT_SECONDS": "1",
    "LOG_FORMAT": "json", "RPC_TIMEOUT": "5",
}


@contextmanager
def running_stack(var, **extra_env):
    """A whole stack in ``var`` on free ports, a private vhost and fresh databases, stopped after."""
    ports = {name: free_port() for name in (*HEALTH_PORTS, *DEV_PORTS)}
    with rabbit_vhost() as amqp, databases(var) as urls:
        env = {"AMQP_URI": amqp, "CLOCK_FILE": str(var / "clock"), **STACK_ENV, **database_env(urls),
               **extra_env}
        running = Stack(var, env=env, ports=ports)
        running.migrate()
        try:
            running.start(timeout=120)
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="session")
def api(stack):
    return Api(stack.gateway_url)


@pytest.fixture(scope="session")
def staff(stack):
    """Support staff's tools over RPC (the ``operator`` login): the operator methods and every read."""
    with bus_client(stack.env, "operator") as client:
        yield client


@pytest.fixture(scope="session")
def payments(stack):
    """The payment system over RPC (the ``payments`` login): it credits payments."""
    with bus_client(stack.env, "payments") as client:
        yield client


@pytest.fixture
def customer(api):
    """``customer(**overrides)`` registers a new customer and logs in; returns an Api bound to it."""
    def make(**overrides):
        login = overrides.pop("login", f"c{uuid.uuid4().hex[:12]}")
        password = overrides.pop("password", "a long and unusual passphrase 7")
        body = {"login": login, "password": password, "email": f"{login}@example.com",
                "first_name": "Anna", "last_name": "Nowak", "city": "Warszawa",
                "address": "ul. Prosta 1", "country": "PL", **overrides}
        response = api.post("/api/v1/accounts", body)
        assert response.status_code == 201, response.text
        session = api.post("/api/v1/sessions", {"login": login, "password": password})
        assert session.status_code == 201, session.text
        return api.as_customer(session.json()["token"], profile=response.json(), password=password)
    return make


@pytest.fixture
def move_time(stack):
    """``move_time(days=3)`` moves the whole stack's clock forward; put back afterwards."""
    offset = {"seconds": 0.0}

    def move(**delta):
        import datetime
        offset["seconds"] += datetime.timedelta(**delta).total_seconds()
        move_clock(stack.env["CLOCK_FILE"], offset["seconds"])
    yield move
    move_clock(stack.env["CLOCK_FILE"], 0.0)
