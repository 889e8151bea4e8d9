"""What the tests share: a private vhost, databases, an HTTP client, a throw-away HTTP server,
waiting, refusals."""
from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import requests
from eventlet import GreenPool
from nameko.containers import ServiceContainer
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from deploy.bus import ManagementApi, definitions
from services.common.config import SERVICES
from services.common.database import make_engine
from services.common.errors import DomainError
from services.common.roles import ROLES, local_login_uri
from services.common.rpc import ClusterRpcProxy

RABBIT_AMQP = os.environ.get("TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
RABBIT_API = os.environ.get("RABBIT_MANAGEMENT_URL", "http://127.0.0.1:15672/api")
RABBIT_AUTH = ("guest", "guest")
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def on_postgres() -> bool:
    """``TEST_DATABASE=postgres`` runs the integration and e2e tests on PostgreSQL."""
    return os.environ.get("TEST_DATABASE", "sqlite") == "postgres"


_ROLE_USERS_MADE = False


@contextmanager
def rabbit_vhost(topic_permissions: bool = True):
    """A RabbitMQ vhost of our own (management API), deleted afterwards; yields its URI as ``guest``.

    Every role's login (user = password = role, as ``make run`` makes them; users are global, so
    they are created once per session) gets its permissions and topic permissions in it
    (:mod:`deploy.bus`); ``guest`` keeps every permission, as on a developer's broker, and no
    role. ``role_uri(uri, role)`` is a role's login to the vhost. ``topic_permissions=False``
    leaves the broker's second layer out, so that only the services' own check refuses callers.
    """
    global _ROLE_USERS_MADE
    name = f"test-{uuid.uuid4().hex[:10]}"
    document = definitions(name, None if _ROLE_USERS_MADE else {role: role for role in ROLES},
                           topic=topic_permissions,
                           extra_permissions=({"user": "guest", "configure": ".*", "write": ".*", "read": ".*"},))
    ManagementApi(RABBIT_API, RABBIT_AUTH).import_definitions(document)
    _ROLE_USERS_MADE = True
    try:
        yield RABBIT_AMQP.rstrip("/") + f"/{name}"
    finally:
        requests.delete(f"{RABBIT_API}/vhosts/{quote(name, safe='')}", auth=RABBIT_AUTH, timeout=10)


def role_uri(vhost_uri: str, role: str) -> str:
    """``role``'s login to the vhost of ``vhost_uri`` (password = role name)."""
    return local_login_uri(vhost_uri, role)


def bus_client(env: dict, role: str, timeout: float = 10) -> ClusterRpcProxy:
    """A standalone RPC client (a context manager) logged in as ``role`` to a running stack's broker
    (``env``: the stack's environment, which names each role's login)."""
    return ClusterRpcProxy({"AMQP_URI": env[f"{role.upper()}_AMQP_URI"], "serializer": "json"}, timeout=timeout)


@contextmanager
def postgres_database(metadata):
    """A PostgreSQL database of our own with ``metadata``'s tables, dropped afterwards: its engine as
    the services make it, an administrator's engine (to end its connections), and its name."""
    name = f"t{uuid.uuid4().hex[:8]}_db"
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    metadata.create_all(engine)
    try:
        yield engine, admin, name
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def databases(var_dir: Path, services=SERVICES, copies_of: dict | None = None):
    """One database per service: SQLite files under ``var_dir`` or fresh PostgreSQL databases.

    ``copies_of`` (service: URL of an already migrated database) makes each one a copy of it: a
    file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL. Copying is much quicker
    than running every migration again for each test.
    """
    copies_of = copies_of or {}
    if not on_postgres():
        urls = {s: f"sqlite:///{var_dir / f'{s}.db'}" for s in services}
        for service, template in copies_of.items():
            shutil.copyfile(make_url(template).database, make_url(urls[service]).database)
        yield urls
        return
    prefix = f"t{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    urls = {s: f"{base}/{prefix}_{s}" for s in services}
    with admin.connect() as connection:
        for service in services:
            template = f' TEMPLATE "{make_url(copies_of[service]).database}"' if service in copies_of else ""
            connection.execute(text(f'CREATE DATABASE "{prefix}_{service}"{template}'))
    try:
        yield urls
    finally:
        with admin.connect() as connection:
            for service in services:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)'))
        admin.dispose()


def kill_together(containers) -> None:
    """End in-process service containers at once, the test being over.

    A graceful ``stop()`` waits about 2 s for kombu's consume loop to notice (it drains once a
    second); one stop after another was most of the integration suite's time.
    """
    for _ in GreenPool().imap(ServiceContainer.kill, list(containers)):
        pass


def database_env(urls: dict) -> dict:
    return {f"{service.upper()}_DATABASE_URL": url for service, url in urls.items()}


class Api:
    """A small HTTP client for the gateway; ``as_customer(token)`` adds the bearer token."""

    def __init__(self, base_url: str, token: str | None = None, profile: dict | None = None,
                 password: str | None = None):
        self.base_url = base_url
        self.token = token
        self.profile = profile
        self.password = password
        self.http = requests.Session()

    def as_customer(self, token: str, profile: dict | None = None, password: str | None = None) -> "Api":
        return Api(self.base_url, token, profile, password)

    def request(self, method: str, path: str, json=None, headers: dict | None = None, **kwargs):
        headers = dict(headers or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.http.request(method, self.base_url + path, json=json, headers=headers, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.request("PUT", path, json=json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path, json=None, **kwargs):
        return self.request("DELETE", path, json=json, **kwargs)


@contextmanager
def http_server(handler):
    """``handler`` (a ``BaseHTTPRequestHandler`` class) answering on a free local port, in a thread,
    for the block; yields the server (its ``server_port``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def error_code(response) -> str:
    """The API error code of a response, asserting the error shape on the way."""
    body = response.json()
    assert set(body) == {"error"}, body
    # field_codes: each of `fields`' messages as a stable code (docs/CONTRACTS.md, Errors)
    assert set(body["error"]) == {"code", "message", "fields", "details", "field_codes"}, body
    return body["error"]["code"]


def eventually(probe, timeout: float = 30.0, interval: float = 0.2):
    """Ask ``probe`` until it answers something truthy and return that; fail after ``timeout`` seconds.

    For what another process or a timer does in its own time (a mail sent, an order paid).
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer or time.monotonic() > deadline:
            assert answer, f"still {answer!r} after {timeout:.0f} s"
            return answer
        time.sleep(interval)


def passes_eventually(check, timeout: float = 20.0, interval: float = 0.3):
    """Run ``check`` until it returns without an AssertionError and return its answer; after ``timeout``
    seconds its last AssertionError is the test's failure (for checks that assert several things).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def transactions_begun(engine):
    """A list that gains an entry for each database transaction ``engine`` begins inside the block."""
    return _recorded(engine, "begin", lambda connection: 1)


def statements_compiled(engine):
    """Each statement ``engine`` sends inside the block, as (its first line, upper case; its compiled form):
    the same compiled object twice is SQLAlchemy's cache at work."""
    return _each_statement(engine, lambda line, context: (line, context.compiled))


def statements_sent(engine):
    """The SQL statements ``engine`` sends inside the block, each as its first line, upper case."""
    return _each_statement(engine, lambda line, context: line)


def statements_executed(engine):
    """The statement objects ``engine`` executes inside the block (SQLAlchemy's, before compiling):
    the same object on every call is a statement built once, whose cache key is kept with it."""
    return _recorded(engine, "before_execute",
                     lambda conn, clauseelement, multiparams, params, execution_options: clauseelement)


def _each_statement(engine, entry):
    return _recorded(engine, "before_cursor_execute",
                     lambda conn, cursor, statement, parameters, context, executemany:
                     entry(statement.lstrip().split("\n")[0].upper(), context))


@contextmanager
def _recorded(engine, name: str, entry):
    """A list of ``entry(*arguments)`` for each of ``engine``'s ``name`` events inside the block."""
    seen = []

    def record(*arguments):
        seen.append(entry(*arguments))
    event.listen(engine, name, record)
    try:
        yield seen
    finally:
        event.remove(engine, name, record)


def refusal_of(call, *args) -> DomainError | None:
    """The refusal a customer would be answered with (a DomainError), or None: the request goes through."""
    try:
        call(*args)
    except DomainError as refused:
        return refused
    return None
