"""The local runner: the whole stack as background processes on one machine.

``python -m deploy.local start|stop|status`` (``make run`` / ``make stop``). The same
:class:`Stack` starts private stacks for the end-to-end tests and the benchmark, on free
ports, a RabbitMQ vhost and a var/ directory of their own.

Each process logs in to RabbitMQ as its own role (``<ROLE>_AMQP_URI``). On a broker on this
machine (``AMQP_URI``, the broker and vhost) a role with no URI of its own gets a login whose
password is its name, which ``make run`` creates (deploy/bus.py); for any other broker every
role's URI must be given.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from deploy.bus import ProvisioningFailed, provision_local_logins
from deploy.ports import free_port
from deploy.serve import RUN_ENV, RUNS, nameko_argv
from services.common.config import HEALTH_PORTS, ROOT, amqp_uri, var_dir
from services.common.roles import ROLES, LocalLoginRefused, local_login_uri, on_loopback

DEV_PORTS = {"mail_smtp": 1025, "mail_http": 8025, "telephony_primary": 8010, "telephony_fallback": 8011}
GATEWAY_METRICS_PORT = 8006   # the gateway's /metrics, away from its public port


@dataclass
class Process:
    name: str
    argv: list[str]
    health_url: str | None
    env: dict = field(default_factory=dict)


class Stack:
    """Five services, the ledger's document worker, the gateway and the dev stand-ins, started and stopped together."""

    def __init__(self, var_dir: Path, env: dict | None = None, ports: dict | None = None,
                 replicas: dict | None = None):
        self.var_dir = Path(var_dir)
        self.ports = {**HEALTH_PORTS, **DEV_PORTS, **(ports or {})}
        # A private stack (its ports chosen) must not take the default one of `make run`.
        self.ports.setdefault("gateway_metrics", GATEWAY_METRICS_PORT if ports is None else free_port())
        self.replicas = replicas or {}
        self.replica_ports: dict[str, int] = {}  # chosen once: wait_healthy and stop list processes again
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("VAR_DIR", str(self.var_dir))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        # argon2 hashing runs in eventlet's thread pool; a few threads and malloc arenas keep a
        # burst of logins from leaving hundreds of MB resident in the profile service, and a fixed
        # mmap threshold hands each hash's 19 MB buffer back to the system when it is freed (glibc
        # otherwise raises the threshold after the first one and keeps the next ones on its heap).
        self.env.setdefault("EVENTLET_THREADPOOL_SIZE", "4")
        self.env.setdefault("MALLOC_ARENA_MAX", "2")
        self.env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env.setdefault("SMTP_HOST", "127.0.0.1")
        self.env.setdefault("SMTP_PORT", str(self.ports["mail_smtp"]))
        self.env.setdefault("TELEPHONY_PRIMARY_URL", f"http://127.0.0.1:{self.ports['telephony_primary']}")
        self.env.setdefault("TELEPHONY_FALLBACK_URL", f"http://127.0.0.1:{self.ports['telephony_fallback']}")
        self.env.setdefault("PANEL_URL", f"http://127.0.0.1:{self.ports['gateway']}")
        for name in RUNS:
            self.env.setdefault(f"{name.upper()}_HTTP_ADDRESS", f"127.0.0.1:{self.ports[name]}")
        self.env.setdefault("GATEWAY_METRICS_ADDRESS", f"127.0.0.1:{self.ports['gateway_metrics']}")
        broker = self.env.setdefault("AMQP_URI", amqp_uri())
        # The roles that log in with password = name (make run creates them): those without a URI.
        self.local_logins = [role for role in sorted(ROLES) if not self.env.get(f"{role.upper()}_AMQP_URI")]
        if on_loopback(broker):
            for role in self.local_logins:
                self.env[f"{role.upper()}_AMQP_URI"] = local_login_uri(broker, role)

    def missing_logins(self) -> list[str]:
        """The roles with no login: a broker not on this machine needs ``<ROLE>_AMQP_URI`` for each."""
        return [role for role in sorted(ROLES) if not self.env.get(f"{role.upper()}_AMQP_URI")]

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def processes(self) -> list[Process]:
        python = sys.executable
        items = [
            Process("mail", [python, "-m", "deploy.dev.mail", "--smtp-port", str(self.ports["mail_smtp"]),
                             "--http-port", str(self.ports["mail_http"])], f"{self.url('mail_http')}/health"),
            Process("telephony-primary", [python, "-m", "deploy.dev.telephony", "--name", "primary",
                                          "--port", str(self.ports["telephony_primary"])],
                    f"{self.url('telephony_primary')}/health"),
            Process("telephony-fallback", [python, "-m", "deploy.dev.telephony", "--name", "fallback",
                                           "--port", str(self.ports["telephony_fallback"])],
                    f"{self.url('telephony_fallback')}/health"),
        ]
        for name in RUNS:
            items.extend(self._nameko(name))
        return items

    def _nameko(self, name: str) -> list[Process]:
        argv = nameko_argv(name)
        first = Process(name, argv, f"{self.url(name)}/health", env=dict(RUN_ENV.get(name, {})))
        extra = []
        for index in range(2, self.replicas.get(name, 1) + 1):
            port = self.replica_ports.setdefault(f"{name}-{index}", free_port())
            env = {**RUN_ENV.get(name, {}), f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{port}"}
            if name == "gateway":
                metrics_port = self.replica_ports.setdefault(f"{name}-{index}-metrics", free_port())
                env["GATEWAY_METRICS_ADDRESS"] = f"127.0.0.1:{metrics_port}"
            extra.append(Process(f"{name}-{index}", argv, f"http://127.0.0.1:{port}/health", env=env))
        return [first, *extra]

    # -- lifecycle
    def migrate(self) -> None:
        subprocess.run([sys.executable, "-m", "deploy.migrate"], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self, timeout: float = 90.0) -> list[str]:
        """Start whatever is not running yet; wait until every /health answers 200."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = []
        for process in self.processes():
            if self.pid(process.name):
                continue
            self.spawn(process)
            started.append(process.name)
        self.wait_healthy(timeout)
        return started

    def spawn(self, process: Process) -> int:
        log = open(self.log_dir / f"{process.name}.log", "ab")
        child = subprocess.Popen(process.argv, cwd=ROOT, env={**self.env, **process.env}, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (self.run_dir / f"{process.name}.pid").write_text(str(child.pid))
        return child.pid

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` if it is running (and is ours)."""
        path = self.run_dir / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ProcessLookupError, PermissionError, FileNotFoundError):
            path.unlink(missing_ok=True)
            return None
        return pid if b"deploy.process" in cmdline or b"deploy.dev" in cmdline else None

    def wait_healthy(self, timeout: float, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = {p.name: p.health_url for p in self.processes() if names is None or p.name in names}
        while pending and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                try:
                    if requests.get(url, timeout=2).status_code == 200:
                        del pending[name]
                except requests.RequestException:
                    pass
            if pending:
                time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not healthy after {timeout:.0f} s: {', '.join(pending)}; "
                               f"see {self.log_dir}/<name>.log\n" + self.last_words(pending))

    def last_words(self, names, lines: int = 15) -> str:
        """Whether each of ``names`` still runs, and the end of its log: why a stack did not start."""
        said = []
        for name in names:
            log = self.log_dir / f"{name}.log"
            tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            state = "running" if self.pid(name) else "not running"
            said.append(f"== {name} ({state}), the end of its log:\n" + "\n".join(tail))
        return "\n".join(said)

    def stop(self, names: list[str] | None = None, sig: int = signal.SIGTERM) -> list[str]:
        """Stop exactly what this stack started (by its pid files)."""
        stopped = []
        for process in reversed(self.processes()):
            if names is not None and process.name not in names:
                continue
            pid = self.pid(process.name)
            if pid is None:
                continue
            os.killpg(pid, sig)
            stopped.append((process.name, pid))
        deadline = time.monotonic() + 15
        for name, pid in stopped:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        return [name for name, _ in stopped]

    def kill(self, name: str) -> None:
        """``kill -9`` one process (fault tests)."""
        pid = self.pid(name)
        if pid:
            os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        process = next(p for p in self.processes() if p.name == name)
        if not self.pid(name):
            self.spawn(process)
        self.wait_healthy(timeout, [name])


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def rabbit_answers(amqp_uri: str) -> bool:
    parsed = urlparse(amqp_uri)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def ensure_rabbit(amqp_uri: str) -> None:
    if rabbit_answers(amqp_uri):
        return
    server = "rabbitmq-server"
    if subprocess.run(["which", server], capture_output=True).returncode != 0:
        sys.exit(f"No RabbitMQ answers at {amqp_uri} and rabbitmq-server is not installed.\n"
                 "Install it (Debian: apt-get install rabbitmq-server) or point AMQP_URI at a broker.")
    print("RabbitMQ is not running; starting rabbitmq-server on the loopback ...")
    # On the loopback only: the development logins have their names for passwords.
    subprocess.run([server, "-detached"], check=False, env={**os.environ, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not rabbit_answers(amqp_uri):
        time.sleep(1)
    if not rabbit_answers(amqp_uri):
        sys.exit("rabbitmq-server did not come up within 60 s; see its log in /var/log/rabbitmq/.")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local")
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    stack = Stack(var_dir())
    if args.command == "start":
        broker = stack.env["AMQP_URI"]
        if stack.missing_logins():
            sys.exit(f"The broker {urlparse(broker).hostname} is not on this machine: give each role its own "
                     "login, " + ", ".join(f"{role.upper()}_AMQP_URI" for role in stack.missing_logins()))
        ensure_rabbit(broker)
        try:
            provision_local_logins(broker, stack.local_logins)
        except (LocalLoginRefused, ProvisioningFailed) as exc:
            sys.exit(f"Could not create the RabbitMQ logins: {exc}")
        if stack.local_logins:
            print(f"RabbitMQ logins (password = name, this machine only): {', '.join(stack.local_logins)}; "
                  "guest has no role")
        stack.migrate()
        started = stack.start()
        print(f"started: {', '.join(started) or 'nothing (all were running)'}")
        print(f"gateway:  {stack.gateway_url}  (OpenAPI: {stack.gateway_url}/api/v1/openapi.json)")
        for name in RUNS:
            print(f"health:   {stack.url(name)}/health  ({name})")
        print(f"metrics:  /metrics on each service's health port; the gateway's: {stack.url('gateway_metrics')}/metrics")
        print(f"mail:     {stack.url('mail_http')}/messages   telephony: {stack.url('telephony_primary')}/calls, "
              f"{stack.url('telephony_fallback')}/calls")
        print(f"logs in {stack.log_dir}; stop with: make stop")
    elif args.command == "stop":
        stopped = stack.stop()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    else:
        for process in stack.processes():
            pid = stack.pid(process.name)
            print(f"{process.name:20s} {'running pid ' + str(pid) if pid else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
