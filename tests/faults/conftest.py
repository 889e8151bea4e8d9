"""The fault suite's world: a RabbitMQ node and a PostgreSQL cluster of its own, and the whole stack on them.

The machine's shared broker and database serve other people's tests at the same time, so the
tests that restart the broker or stop the database do it to private instances started here, on
free ports, in a temporary directory, and removed afterwards.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from deploy.bus import Rabbitmqctl, provision_local_logins
from deploy.local import DEV_PORTS, Stack
from deploy.ports import free_port
from services.common.config import HEALTH_PORTS, ROOT, SERVICES
from services.common.roles import ROLES
from tests.support import Api, bus_client

# Debian's layout; the newest installed major version.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), default=None)

STACK_ENV = {
    "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192",
    "OUTBOX_POLL_SECONDS": "0.2", "ORDERS_TICK_SECONDS": "1", "NOTIFIER_TICK_SECONDS": "0.5",
    "LOG_FORMAT": "json", "RPC_TIMEOUT": "5", "DB_POOL_SIZE": "5",
    # Retries that outlast a restarted service (about 30 s), so a handler that needs it is not dead-lettered.
    "EVENT_MAX_ATTEMPTS": "8", "EVENT_RETRY_BASE_SECONDS": "0.5", "EVENT_RETRY_MAX_SECONDS": "8",
    # Room for every order of a full-size run (FAULTS_FULL=1 places about 2,000): the shipped
    # documentation ranges hold about 500 VPS addresses, and an exhausted pool answers out_of_stock.
    "ORDERS_IP_POOLS": "WAW1=10.10.0.0/20;FRA1=10.20.0.0/20;AMS1=10.30.0.0/20",
    # Shorter than production's, so what a killed worker held comes back within a test's patience.
    "ORDERS_LEASE_SECONDS": "15", "NOTIFIER_SEND_BATCH": "10", "NOTIFIER_LEASE_SECONDS": "30",
    # The month end's renewals in small ledger calls, so that a kill lands between and inside them.
    "ORDERS_RENEWALS_PER_CALL": "10",
}


def _wait_port(port: int, up: bool, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} within {seconds} s")


class Rabbit:
    """A RabbitMQ node of our own: ``stop()`` and ``start()`` restart it like an outage would."""

    def __init__(self, base: Path):
        self.base = base
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"faults-{uuid.uuid4().hex[:8]}@localhost"
        plugins = base / "enabled_plugins"
        plugins.write_text("[].\n")   # no management listener: the shared node has port 15672
        self.env = {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(base / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
                    "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"), "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
                    "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf")}
        # Our own files, not /etc/rabbitmq's: those name the shared node and its port.
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (base / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        for path in (base, *base.iterdir()):  # the server drops to the rabbitmq user
            shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, start_new_session=True)
        subprocess.run(["rabbitmqctl", "-n", self.node, "wait", str(self.base / "rabbit.pid"), "--timeout", "90"],
                       env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, up=True, seconds=60)

    def provision(self) -> None:
        """Every role's login (password = name) and permissions, as ``make run`` makes them, through
        ``rabbitmqctl``: the node has no management API of its own."""
        provision_local_logins(self.amqp_uri, sorted(ROLES), broker=Rabbitmqctl(self.node, self.env))

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        _wait_port(self.port, up=False, seconds=30)


class Postgres:
    """A PostgreSQL cluster of our own (trust auth), to stop and start under a running stack."""

    def __init__(self, base: Path):
        self.data = base / "pgdata"
        self.port = free_port()
        base.mkdir(parents=True, exist_ok=True)
        shutil.chown(base, "postgres", "postgres")
        self.base = base
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])

    def _as_postgres(self, argv: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def start(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "pg.log"), "-w",
                           "-o", f"-p {self.port} -k {self.base} -c max_connections=300 -c fsync=off", "start"])

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def world(request):
    """RabbitMQ, PostgreSQL and the stack on them; yields an object with all three.

    When a test failed, the services' logs are kept in ``var/faults-logs/<time>/`` (the rest of
    the temporary directory goes).
    """
    # Not under pytest's tmp (0700): the broker and the database run as their own users.
    base = Path(tempfile.mkdtemp(prefix="faults-"))
    os.chmod(base, 0o755)
    (base / "rabbit").mkdir()
    rabbit, postgres = Rabbit(base / "rabbit"), None
    rabbit.start()
    rabbit.provision()
    stack = None
    try:
        postgres = Postgres(base / "pg")
        postgres.start()
        admin = create_engine(postgres.url("postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for service in SERVICES:
                connection.execute(text(f'CREATE DATABASE "{service}"'))
        admin.dispose()
        var = base / "stack"
        ports = {name: free_port() for name in (*HEALTH_PORTS, *DEV_PORTS)}
        env = {"AMQP_URI": rabbit.amqp_uri, "CLOCK_FILE": str(var / "clock"), **STACK_ENV,
               **{f"{s.upper()}_DATABASE_URL": postgres.url(s) for s in SERVICES}}
        stack = Stack(var, env=env, ports=ports)
        stack.migrate()
        stack.start(timeout=180)
        yield World(stack, rabbit, postgres)
    finally:
        if stack is not None:
            stack.stop()
        if postgres is not None:
            try:
                postgres.stop()
            except subprocess.SubprocessError:
                pass
        rabbit.stop()
        if request.session.testsfailed and (base / "stack" / "log").is_dir():
            kept = ROOT / "var" / "faults-logs" / time.strftime("%Y%m%dT%H%M%S")
            shutil.copytree(base / "stack" / "log", kept, dirs_exist_ok=True)
            print(f"\nthe stack's logs of this failed run: {kept}")
        shutil.rmtree(base, ignore_errors=True)


class World:
    def __init__(self, stack: Stack, rabbit: Rabbit, postgres: Postgres):
        self.stack, self.rabbit, self.postgres = stack, rabbit, postgres
        self.api = Api(stack.gateway_url)
        self.accounts: list[dict] = []     # every customer of the session: the invoice numbers span them all

    def rpc(self, role: str = "operator"):
        """An RPC client logged in as ``role``: support staff's tools unless told."""
        return bus_client(self.stack.env, role, timeout=30)
