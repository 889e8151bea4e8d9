"""The broker's side of the roles: a login per role and what RabbitMQ lets each one do.

The services check every RPC's caller themselves (``@rpc(roles=...)``); RabbitMQ is the second
layer and the only one for events. From the services' own declarations this module derives,
per login and vhost:

- permissions (configure, write, read): its own queues and reply queues (``rpc-<service>``,
  ``rpc.reply-<login>-<uuid>``, its event queues and their ``.delayed``/``.dead``), the
  ``nameko-rpc`` exchange, and, for a service, its own ``<service>.events`` exchange to publish
  to (no other login may, so a forged event is refused) and the event exchanges it listens to;
- topic permissions on ``nameko-rpc``: the ``service.method`` routing keys the login's roles
  may call (and, for a service, the reply keys it answers on), and the bindings it may make
  (its own ``<service>.*`` and reply keys: no login can bind ``#`` and read everyone's calls);
  on each event exchange a service listens to, the event types it handles.

The result is a RabbitMQ definitions document, imported into a running broker through the
management API or ``rabbitmqctl import_definitions`` (``make run``, the tests), or written to
a file that RabbitMQ loads at boot (``python -m deploy.bus definitions``, docker-compose;
deploy/bus_definitions.py writes Kubernetes' from the same permissions).

    python -m deploy.bus definitions [--vhost /] [--out FILE]   # passwords from <ROLE>_AMQP_URI
    python -m deploy.bus roles                                   # every RPC method and its roles
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from functools import cache
from urllib.parse import unquote, urlsplit

import requests
from nameko.events import EventHandler

from services.common.roles import ROLES, login_of
from services.common.roles import SERVICES as SERVICE_ROLES

RPC_EXCHANGE = "nameko-rpc"
# Nameko binds a reply queue with a UUID (its routing key and the tail of its name).
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def service_classes() -> dict[str, type]:
    """Every process that serves RPC or handles events (deploy/serve.py's, but the gateway)."""
    from deploy.serve import RUNS
    classes = {}
    for name, target in RUNS.items():
        if name != "gateway":
            module, _, cls = target.partition(":")
            classes[name] = getattr(importlib.import_module(module), cls)
    return classes


def _entrypoints(cls):
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            yield name, entrypoint


@cache
def rpc_methods() -> dict[str, frozenset[str]]:
    """Every RPC method of every service (``"ledger.adjust"``) and the roles it answers."""
    from services.common.rpc import Rpc
    return {f"{cls.name}.{name}": entrypoint.roles
            for cls in service_classes().values()
            for name, entrypoint in _entrypoints(cls) if isinstance(entrypoint, Rpc)}


def gateway_class() -> type:
    from deploy.serve import RUNS
    module, _, cls = RUNS["gateway"].partition(":")
    return getattr(importlib.import_module(module), cls)


@cache
def subscriptions() -> dict[str, dict[str, frozenset[str]]]:
    """For each service (and the gateway), the event types it handles by the service that publishes them."""
    found: dict[str, dict[str, set[str]]] = {}
    for cls in (*service_classes().values(), gateway_class()):
        for _, entrypoint in _entrypoints(cls):
            if isinstance(entrypoint, EventHandler):
                found.setdefault(cls.name, {}).setdefault(entrypoint.source_service, set()).add(entrypoint.event_type)
    return {service: {source: frozenset(types) for source, types in sources.items()}
            for service, sources in found.items()}


def _one_of(patterns) -> str:
    return "^(" + "|".join(patterns) + ")$" if patterns else "^$"


def permissions(role: str) -> dict:
    """What ``role``'s login may configure, write and read in a vhost (RabbitMQ's three regexes)."""
    name = re.escape(role)
    shared = [re.escape(RPC_EXCHANGE), rf"rpc\.reply-{name}-{UUID}"]
    sources = [rf"{re.escape(source)}\.events" for source in sorted(subscriptions().get(role, {}))]
    if role not in SERVICE_ROLES:
        # The gateway: a queue of each replica's own for the events it hears (Nameko's BROADCAST).
        own = [rf"evt-[a-z_]+-[a-z_]+--{name}\.[a-z_]+-[0-9a-f]{{32}}"] if sources else []
        return {"configure": _one_of(shared + own + sources), "write": _one_of(shared + own),
                "read": _one_of(shared + own + sources)}
    own = [rf"rpc-{name}", rf"{name}\.parking", rf"evt-[a-z_]+-[a-z_]+--{name}\.[a-z_]+(\.delayed|\.dead)?"]
    events = [rf"{name}\.events"]
    return {"configure": _one_of(shared + own + events + sources),
            "write": _one_of(shared + own + events),
            "read": _one_of(shared + own + sources)}


def _routing_keys(methods) -> list[str]:
    by_service: dict[str, list[str]] = {}
    for method in sorted(methods):
        service, _, name = method.partition(".")
        by_service.setdefault(service, []).append(re.escape(name))
    return [rf"{re.escape(service)}\.({'|'.join(names)})" for service, names in by_service.items()]


def topic_permissions(role: str) -> list[dict]:
    """The routing keys ``role``'s login may publish and bind, per topic exchange."""
    callable_ = [method for method, roles in rpc_methods().items() if role in roles]
    write, read = _routing_keys(callable_), [UUID]
    if role in SERVICE_ROLES:
        write.append(UUID)                      # its replies
        read.append(rf"{re.escape(role)}\.\*")  # its request queue's binding
    found = [{"exchange": RPC_EXCHANGE, "write": _one_of(write), "read": _one_of(read)}]
    for source, types in sorted(subscriptions().get(role, {}).items()):
        found.append({"exchange": f"{source}.events", "write": "^$",
                      "read": _one_of(sorted(re.escape(t) for t in types))})
    return found


def password_hash(user: str, password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password)).

    The 4-byte salt follows from the user and the password, so the same passwords give the same
    file (no needless change of a Secret, no restart of the broker) while two users with one
    password still get different hashes.
    """
    salt = hashlib.sha256(f"{user}:{password}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost: str, passwords: dict[str, str] | None = None, *, roles=ROLES, topic: bool = True,
                extra_permissions: tuple[dict, ...] = ()) -> dict:
    """A RabbitMQ definitions document: the vhost, the permissions and topic permissions in it of
    each of ``roles`` (all by default), and the users of ``passwords`` (role: password), whose
    hashes it computes."""
    document = {
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": role, "vhost": vhost, **permissions(role)} for role in sorted(roles)]
                       + [{"vhost": vhost, **extra} for extra in extra_permissions],
        "topic_permissions": [{"user": role, "vhost": vhost, **grant}
                              for role in sorted(roles) for grant in topic_permissions(role)] if topic else [],
    }
    if passwords:
        document["users"] = [{"name": role, "password_hash": password_hash(role, password),
                              "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
                             for role, password in sorted(passwords.items())]
    return document


# -- putting them into a running broker -----------------------------------------------------

class ProvisioningFailed(RuntimeError):
    pass


def vhost_of(amqp_uri: str) -> str:
    path = urlsplit(amqp_uri).path
    return unquote(path[1:]) if len(path) > 1 else "/"


class ManagementApi:
    """RabbitMQ's management HTTP API (``http://host:15672/api``), as an administrator."""

    def __init__(self, url: str, auth: tuple[str, str]):
        self.url = url.rstrip("/")
        self.auth = auth

    @classmethod
    def for_broker(cls, amqp_uri: str) -> "ManagementApi":
        """``RABBIT_MANAGEMENT_URL``, else port 15672 of the broker, with ``amqp_uri``'s credentials."""
        parts = urlsplit(amqp_uri)
        url = os.environ.get("RABBIT_MANAGEMENT_URL") or f"http://{parts.hostname or '127.0.0.1'}:15672/api"
        return cls(url, (unquote(parts.username or "guest"), unquote(parts.password or "guest")))

    def listeners(self) -> list[tuple[str, int]]:
        """The node's AMQP listeners: (address, port)."""
        overview = requests.get(f"{self.url}/overview", auth=self.auth, timeout=10)
        overview.raise_for_status()
        return [(item["ip_address"], int(item["port"])) for item in overview.json().get("listeners", [])
                if item.get("protocol") == "amqp"]

    def import_definitions(self, document: dict) -> None:
        answer = requests.post(f"{self.url}/definitions", auth=self.auth, json=document, timeout=30)
        if answer.status_code >= 300:
            raise ProvisioningFailed(f"the management API refused the definitions: {answer.status_code} {answer.text}")


class Rabbitmqctl:
    """``rabbitmqctl`` on this machine (as root or the broker's own user), for a node without the management API."""

    def __init__(self, node: str | None = None, env: dict | None = None):
        self.node = node
        self.env = env

    def _run(self, tool: str, *argv, stdin: str | None = None) -> str:
        command = [tool, *(["-n", self.node] if self.node else []), "-q", *argv]
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, env=self.env, timeout=120)
        except FileNotFoundError:
            raise ProvisioningFailed(f"{tool} is not installed") from None
        if done.returncode != 0:
            raise ProvisioningFailed(f"{' '.join(command)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def listeners(self) -> list[tuple[str, int]]:
        answer = json.loads(self._run("rabbitmq-diagnostics", "listeners", "--formatter", "json"))
        return [(item["interface"], int(item["port"])) for item in answer.get("listeners", [])
                if item.get("protocol") == "amqp"]

    def import_definitions(self, document: dict) -> None:
        self._run("rabbitmqctl", "import_definitions", "--format", "json", stdin=json.dumps(document))


def _loopback_only(address: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def provision_local_logins(broker_uri: str, roles, broker=None) -> None:
    """Give each of ``roles`` a login on the broker of ``broker_uri`` whose password is its name,
    with its permissions in the URI's vhost; refused unless the broker listens on the loopback only.

    ``broker``: a :class:`ManagementApi` or :class:`Rabbitmqctl`; by default the management API
    of ``broker_uri``'s host when it answers and is that broker (its AMQP port is the URI's), else
    ``rabbitmqctl`` for the local node.
    """
    from services.common.roles import local_login_uri
    if not roles:
        return
    for role in roles:
        local_login_uri(broker_uri, role)   # refuses a broker that is not on the loopback
    port = urlsplit(broker_uri).port or 5672
    candidates = [broker] if broker is not None else [ManagementApi.for_broker(broker_uri), Rabbitmqctl()]
    problems = []
    for candidate in candidates:
        try:
            listeners = [address for address, listening in candidate.listeners() if listening == port]
        except (requests.RequestException, ProvisioningFailed) as exc:
            problems.append(f"{type(candidate).__name__}: {exc}")
            continue
        if not listeners:
            problems.append(f"{type(candidate).__name__}: that node does not listen on port {port}")
            continue
        public = [address for address in listeners if not _loopback_only(address)]
        if public:
            raise ProvisioningFailed(
                f"RabbitMQ listens on {', '.join(public)} port {port}, not only on the loopback: logins whose "
                "password is their name would be open to the network. Bind it to the loopback "
                f"(rabbitmq.conf: listeners.tcp.local = 127.0.0.1:{port}) or give every role its own "
                "login with <ROLE>_AMQP_URI.")
        candidate.import_definitions(definitions(vhost_of(broker_uri), {role: role for role in roles}, roles=roles))
        return
    raise ProvisioningFailed("could not reach the broker's management API or rabbitmqctl to create the logins: "
                             + "; ".join(problems))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bus")
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("definitions", help="a RabbitMQ definitions file: users from <ROLE>_AMQP_URI")
    made.add_argument("--vhost", default="/")
    made.add_argument("--out", help="write here (mode 0640) instead of standard output")
    made.add_argument("--admin", metavar="USER", help="also an administrator, password from RABBITMQ_ADMIN_PASSWORD")
    commands.add_parser("roles", help="every RPC method and the roles it answers")
    args = parser.parse_args(argv)
    if args.command == "roles":
        for method, roles in sorted(rpc_methods().items()):
            print(f"{method:40s} {', '.join(sorted(roles))}")
        return 0
    passwords = {}
    for role in sorted(ROLES):
        uri = os.environ.get(f"{role.upper()}_AMQP_URI")
        if not uri or login_of(uri) != role or not urlsplit(uri).password:
            parser.error(f"{role.upper()}_AMQP_URI must be set, log in as {role} and carry its password")
        passwords[role] = unquote(urlsplit(uri).password)
    document = definitions(args.vhost, passwords)
    if args.admin:
        secret = os.environ.get("RABBITMQ_ADMIN_PASSWORD")
        if not secret:
            parser.error("--admin needs RABBITMQ_ADMIN_PASSWORD")
        document["users"].append({"name": args.admin, "password_hash": password_hash(args.admin, secret),
                                  "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]})
        document["permissions"].append({"user": args.admin, "vhost": args.vhost,
                                        "configure": ".*", "write": ".*", "read": ".*"})
    text = json.dumps(document, indent=2)
    if args.out:
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
