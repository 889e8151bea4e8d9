"""The check before the integration and end-to-end tests (tests/preflight.py), on a machine without
what they need: pointed at closed ports and stand-ins, never at the shared servers' settings.

Each case runs ``python -m tests.preflight`` as `make test` does and reads what a newcomer would
read: one line naming what is missing and the command that fixes it, and the exit status.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from deploy.ports import free_port
from services.common.config import ROOT
from tests.support import http_server

SETTINGS = ("TEST_AMQP_URI", "RABBIT_MANAGEMENT_URL", "TEST_DATABASE", "TEST_POSTGRES_URL", "PREFLIGHT_WAIT_SECONDS")


def preflight(path: str = os.defpath, **settings) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env.update(settings, PATH=path)
    return subprocess.run([sys.executable, "-m", "tests.preflight"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def closed_port() -> int:
    return free_port()  # free a moment ago, and nothing listens on it


@contextmanager
def broker_port():
    """A port that accepts connections, as a running RabbitMQ does on 5672 (nothing more is asked of it)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield listening.getsockname()[1]


@contextmanager
def management_api(answers_once: Path):
    """The management API's overview: 503 until ``answers_once`` exists (the plugin is enabled), then 200."""
    class Overview(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if answers_once.exists() and self.path == "/api/overview" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Overview) as server:
        yield f"http://127.0.0.1:{server.server_port}/api"


def fake_rabbitmq_plugins(bin_dir: Path, script: str) -> Path:
    bin_dir.mkdir()
    command = bin_dir / "rabbitmq-plugins"
    command.write_text("#!/bin/sh\n" + script)
    command.chmod(0o755)
    return command


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


def test_a_broker_that_does_not_answer_stops_the_tests_in_one_line_with_the_command_that_starts_it():
    port = closed_port()
    result = preflight(TEST_AMQP_URI=f"amqp://guest:guest@127.0.0.1:{port}/")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"preflight: RabbitMQ does not answer at 127.0.0.1:{port} (TEST_AMQP_URI)")
    assert "`rabbitmq-server -detached`" in line


def test_a_management_api_that_does_not_answer_and_cannot_be_enabled_here_names_the_plugin_command(tmp_path):
    management = f"http://127.0.0.1:{closed_port()}/api"
    with broker_port() as amqp:
        # No rabbitmq-plugins on this PATH: the preflight cannot enable the plugin itself.
        result = preflight(path=str(tmp_path), TEST_AMQP_URI=f"amqp://guest:guest@127.0.0.1:{amqp}/",
                           RABBIT_MANAGEMENT_URL=management)
    assert result.returncode == 1
    assert one_line(result) == (
        f"preflight: RabbitMQ's management API does not answer at {management} (RABBIT_MANAGEMENT_URL); "
        "the tests make a vhost per test with it: run `rabbitmq-plugins enable rabbitmq_management` as root")


def test_a_management_api_that_is_off_is_enabled_with_rabbitmq_plugins_and_waited_for(tmp_path):
    enabled, called = tmp_path / "enabled", tmp_path / "called"
    fake_rabbitmq_plugins(tmp_path / "bin", f'echo "$@" > {called}\ntouch {enabled}\n')
    with broker_port() as amqp, management_api(enabled) as management:
        result = preflight(path=f"{tmp_path / 'bin'}:{os.defpath}", TEST_AMQP_URI=f"amqp://127.0.0.1:{amqp}/",
                           RABBIT_MANAGEMENT_URL=management)
    assert result.returncode == 0, result.stderr
    assert called.read_text().split() == ["enable", "--quiet", "rabbitmq_management"]
    assert result.stderr.strip() == (f"preflight: RabbitMQ's management API answers 503 at {management}; "
                                     "enabling rabbitmq_management")


def test_enabling_the_plugin_without_the_right_to_stops_in_one_line_with_what_rabbitmq_plugins_said(tmp_path):
    fake_rabbitmq_plugins(tmp_path / "bin", 'echo "Error: unable to perform an operation on node" >&2\nexit 69\n')
    with broker_port() as amqp, management_api(tmp_path / "never") as management:
        result = preflight(path=f"{tmp_path / 'bin'}:{os.defpath}", TEST_AMQP_URI=f"amqp://127.0.0.1:{amqp}/",
                           RABBIT_MANAGEMENT_URL=management)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("enabling rabbitmq_management"), result.stderr
    assert lines[1] == ("preflight: `rabbitmq-plugins enable --quiet rabbitmq_management` failed (Error: unable to "
                        "perform an operation on node): run `rabbitmq-plugins enable rabbitmq_management` as root")


def test_postgres_that_does_not_answer_stops_a_postgres_run_in_one_line(tmp_path):
    port = closed_port()
    with broker_port() as amqp, management_api(tmp_path) as management:  # the broker's side is fine
        result = preflight(TEST_AMQP_URI=f"amqp://127.0.0.1:{amqp}/", RABBIT_MANAGEMENT_URL=management,
                           TEST_DATABASE="postgres", TEST_POSTGRES_URL=f"postgresql://postgres@127.0.0.1:{port}/postgres")
        on_sqlite = preflight(TEST_AMQP_URI=f"amqp://127.0.0.1:{amqp}/", RABBIT_MANAGEMENT_URL=management,
                              TEST_POSTGRES_URL=f"postgresql://postgres@127.0.0.1:{port}/postgres")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"preflight: PostgreSQL does not answer at 127.0.0.1:{port} (TEST_POSTGRES_URL) "
                           "for TEST_DATABASE=postgres:")
    assert "pg_ctlcluster" in line
    assert on_sqlite.returncode == 0 and on_sqlite.stderr == ""


def test_a_plain_pytest_run_of_the_integration_tests_stops_at_once_in_one_line_not_one_error_per_test():
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env["TEST_AMQP_URI"] = f"amqp://guest:guest@127.0.0.1:{closed_port()}/"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/integration/test_profile_security.py", "tests/unit/test_common.py"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: preflight: RabbitMQ does not answer at"), result.stderr
    assert "passed" not in result.stdout and "ECONNREFUSED" not in result.stdout + result.stderr


@pytest.mark.parametrize("benchmark", ["bench.run", "bench.ledger", "bench.pinned"])
def test_a_benchmark_on_a_machine_without_what_it_needs_stops_in_one_line_before_it_starts_anything(
        benchmark, tmp_path):
    management = f"http://127.0.0.1:{closed_port()}/api"
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env.update(PATH=str(tmp_path), RABBIT_MANAGEMENT_URL=management, PYTHONWARNINGS="ignore")
    with broker_port() as amqp:
        env["TEST_AMQP_URI"] = f"amqp://guest:guest@127.0.0.1:{amqp}/"
        result = subprocess.run([sys.executable, "-m", benchmark], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"preflight: RabbitMQ's management API does not answer at {management} (RABBIT_MANAGEMENT_URL); "
        "the tests make a vhost per test with it: run `rabbitmq-plugins enable rabbitmq_management` as root")
    assert "Traceback" not in result.stderr
