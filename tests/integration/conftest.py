"""Integration fixtures: a private RabbitMQ vhost, a real database, services in-process."""
from __future__ import annotations

import pytest
from contextlib import ExitStack

from nameko.containers import ServiceContainer

from deploy.ports import free_port
from services.common.migrations import upgrade
from services.common.roles import ROLES
from services.common.rpc import ClusterRpcProxy
from tests.support import database_env, databases, kill_together, rabbit_vhost, role_uri


@pytest.fixture
def amqp_uri():
    with rabbit_vhost() as uri:
        yield uri


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory):
    """Every service's database migrated once for the session; tests get copies of them."""
    with databases(tmp_path_factory.mktemp("migrated")) as urls:
        for service, url in urls.items():
            upgrade(service, url)
        yield urls


@pytest.fixture
def service_databases(tmp_path, migrated_databases):
    """One fresh, migrated database per service (SQLite files, or PostgreSQL with TEST_DATABASE=postgres)."""
    with databases(tmp_path, copies_of=migrated_databases) as urls:
        yield urls


@pytest.fixture
def run_service(amqp_uri, service_databases, monkeypatch, tmp_path):
    """``run_service(ServiceClass, **env)`` starts the service in this process on its fresh database,
    logged in to the broker as itself (a test's own service, which is no role, as ``guest``)."""
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ARGON2_MEMORY_KIB", "8192")
    for name, value in database_env(service_databases).items():
        monkeypatch.setenv(name, value)
    containers = []

    def start(service_cls, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        login = role_uri(amqp_uri, service_cls.name) if service_cls.name in ROLES else amqp_uri
        container = ServiceContainer(service_cls, {
            "AMQP_URI": login, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
            "serializer": "json", "max_workers": 10})
        container.start()
        containers.append(container)
        return container

    yield start
    kill_together(containers)


@pytest.fixture
def rpc_as(amqp_uri):
    """``rpc_as("payments")``: a standalone RPC client logged in as that role, like another
    Introserv system would use (10 s timeout); closed after the test."""
    with ExitStack() as clients:
        def client(role: str):
            return clients.enter_context(ClusterRpcProxy(
                {"AMQP_URI": role_uri(amqp_uri, role), "serializer": "json"}, timeout=10))
        yield client


@pytest.fixture
def rpc_client(rpc_as):
    """The support staff's tools (``operator``): the operator methods and every read."""
    return rpc_as("operator")


@pytest.fixture
def payment_system(rpc_as):
    """The payment system (``payments``): it credits payments and reads balances."""
    return rpc_as("payments")


def web_address(container) -> str:
    return f"http://{container.config['WEB_SERVER_ADDRESS']}"
