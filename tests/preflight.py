"""What the integration and end-to-end tests need from this machine, checked before they start.

``python -m tests.preflight`` (run by ``make test``, ``make test-integration``, ``make test-e2e``
and ``.ci/run``), the benchmarks (bench/), and the tests' conftest at the start of a pytest session
that collected such tests. They need RabbitMQ answering on AMQP, its management API (each test makes a private vhost
through it) and, with ``TEST_DATABASE=postgres``, PostgreSQL. A management API that does not
answer on this machine is enabled with ``rabbitmq-plugins`` where this user may; anything else
missing ends the run at once with one line saying what is missing and the command that fixes it,
instead of one connection-refused traceback per test. Unit tests need none of it.

Where the servers are: ``TEST_AMQP_URI``, ``RABBIT_MANAGEMENT_URL`` and ``TEST_POSTGRES_URL``
(tests/support.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from urllib.parse import urlparse

import requests

warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")  # tests.support imports eventlet
from deploy.local import rabbit_answers  # noqa: E402
from tests.support import POSTGRES_ADMIN_URL, RABBIT_AMQP, RABBIT_API, RABBIT_AUTH, on_postgres  # noqa: E402

ENABLE_MANAGEMENT = ["rabbitmq-plugins", "enable", "--quiet", "rabbitmq_management"]
FIX_MANAGEMENT = "`rabbitmq-plugins enable rabbitmq_management` as root"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Missing(Exception):
    """What the machine lacks, said in one line with the command that fixes it."""


def check(postgres: bool | None = None, wait_seconds: float | None = None) -> None:
    """Raise :class:`Missing` unless the servers the tests need answer (enabling the management API first)."""
    ensure_rabbit(RABBIT_AMQP, RABBIT_API, wait_seconds)
    if on_postgres() if postgres is None else postgres:
        ensure_postgres(POSTGRES_ADMIN_URL)


def ensure_rabbit(amqp_uri: str, management_url: str, wait_seconds: float | None = None) -> None:
    address = _address(amqp_uri, 5672)
    if not rabbit_answers(amqp_uri):
        raise Missing(f"RabbitMQ does not answer at {address} (TEST_AMQP_URI): start it with "
                      "`rabbitmq-server -detached` (Debian: `apt-get install rabbitmq-server`)")
    answer = _management_answer(management_url)
    if answer == 200:
        return
    if answer in (401, 403):
        raise Missing(f"RabbitMQ's management API at {management_url} refuses {RABBIT_AUTH[0]}: the tests "
                      f"make a vhost per test with it; `rabbitmqctl set_user_tags {RABBIT_AUTH[0]} administrator`")
    why = "does not answer" if answer is None else f"answers {answer}"
    if urlparse(management_url).hostname not in LOCAL_HOSTS or shutil.which(ENABLE_MANAGEMENT[0]) is None:
        raise Missing(f"RabbitMQ's management API {why} at {management_url} (RABBIT_MANAGEMENT_URL); the tests "
                      f"make a vhost per test with it: run {FIX_MANAGEMENT}")
    print(f"preflight: RabbitMQ's management API {why} at {management_url}; enabling rabbitmq_management",
          file=sys.stderr)
    try:
        enabled = subprocess.run(ENABLE_MANAGEMENT, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise Missing(f"`{' '.join(ENABLE_MANAGEMENT)}` did not finish within 120 s: run {FIX_MANAGEMENT}") from None
    if enabled.returncode != 0:
        said = (enabled.stderr or enabled.stdout).strip().splitlines()
        raise Missing(f"`{' '.join(ENABLE_MANAGEMENT)}` failed ({said[-1] if said else f'exit {enabled.returncode}'}): "
                      f"run {FIX_MANAGEMENT}")
    wait_seconds = float(os.environ.get("PREFLIGHT_WAIT_SECONDS", 60)) if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + wait_seconds
    while _management_answer(management_url) != 200:
        if time.monotonic() > deadline:
            raise Missing(f"RabbitMQ's management API still {why} at {management_url} {wait_seconds:.0f} s after "
                          "rabbitmq_management was enabled; see RabbitMQ's log (/var/log/rabbitmq/)")
        time.sleep(1)


def ensure_postgres(url: str) -> None:
    import psycopg2
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Missing(f"PostgreSQL does not answer at {_address(url, 5432)} (TEST_POSTGRES_URL) for "
                      f"TEST_DATABASE=postgres: {reason}; start it (Debian: `pg_ctlcluster <version> main start`) "
                      "or run the tests on SQLite without TEST_DATABASE") from None


def _management_answer(url: str) -> int | None:
    """The status of the API's overview, or None when nothing answers."""
    try:
        return requests.get(f"{url.rstrip('/')}/overview", auth=RABBIT_AUTH, timeout=5).status_code
    except requests.RequestException:
        return None


def _address(url: str, default_port: int) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname or '127.0.0.1'}:{parsed.port or default_port}"


def require(postgres: bool | None = None) -> None:
    """:func:`check`, or end the program with its one line (the benchmarks' first step)."""
    try:
        check(postgres)
    except Missing as missing:
        sys.exit(f"preflight: {missing}")


if __name__ == "__main__":
    require()
