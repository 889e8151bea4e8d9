"""RabbitMQ's definitions for a deployment: the bus roles' logins, the vhost, what each may touch.

    python -m deploy.bus_definitions [--secrets deploy/k8s/overlays/production/secrets]
                                     [--host rabbitmq] [--vhost introserv]

writes, into the secrets folder (never committed; deploy/k8s/overlays/production/secrets/README.md):
- ``bus-passwords.env``: one random password per role and for ``admin``, made once and kept;
  the other files follow from it, so running this again changes nothing but what is missing;
- ``amqp.env``: ``<ROLE>_AMQP_URI=amqp://<role>:<password>@<host>:5672/<vhost>`` for each role;
- ``definitions.json``: what RabbitMQ imports at boot (users with salted SHA-256 password
  hashes, never a password; the vhost with quorum queues by default; permissions; topic
  permissions on ``nameko-rpc``; the exchanges; a policy for the retry queues);
- ``erlang.cookie``: the secret RabbitMQ's nodes share to form one cluster.

THE ROLE TABLE BELOW is the one place in the deployment that says which logins exist and what
each may do on the broker; the services' own check of who may call which method is
services/common's. Keep the two in step (tests/unit/test_k8s_manifests.py checks this table
against the services' code: whom each calls, whose events each consumes).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import secrets
import sys
from pathlib import Path

from services.common.config import ROOT, SERVICES

# -- the role table ---------------------------------------------------------------------------
# Every login of the bus. The five services serve RPC and publish their own events; the ledger's
# document worker serves RPC to the ledger and handles its events (its own events go out through the
# ledger's outbox and the ledger's login); the rest only call (the gateway; the operator's tools;
# the payment system; the support desk).
WORKERS = ("ledger_documents",)
SERVERS = (*SERVICES, *WORKERS)   # the logins that serve RPC and consume events
ROLES = (*SERVERS, "gateway", "operator", "payments", "support_desk")
CALLS = {  # role: the services whose RPC methods it may call (each method's roles are checked in the service)
    "profile": ("verification", "ledger"),
    "orders": ("ledger", "profile"),
    "ledger": ("profile", "ledger_documents"),
    "ledger_documents": (),
    "notifier": ("profile", "ledger"),
    "verification": (),
    "gateway": SERVICES,
    "operator": SERVICES,
    "payments": ("ledger",),
    "support_desk": ("profile", "orders", "ledger", "notifier"),
}
CONSUMES = {  # service: the services whose events it handles
    "profile": ("verification",),
    "orders": ("ledger",),
    "ledger": ("profile",),
    "notifier": ("orders", "ledger", "profile"),
    "verification": (),
    "ledger_documents": ("ledger",),
}
# --------------------------------------------------------------------------------------------

RPC_EXCHANGE = "nameko-rpc"
ADMIN = "admin"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"   # a reply queue's routing key
SECRETS = ROOT / "deploy" / "k8s" / "overlays" / "production" / "secrets"


def _either(*names: str) -> str:
    return "|".join(re.escape(name) for name in names)


def permissions(role: str) -> dict:
    """The role's configure, write and read regexes (RabbitMQ's resource permissions) in the vhost.

    A caller declares its reply queue (``rpc.reply-<role>-<uuid>``) and binds it to
    ``nameko-rpc``; a service also declares and consumes ``rpc-<service>`` and its event
    queues (``evt-<source>-<type>--<service>.<method>`` with ``.retry`` and ``.dead``),
    declares the exchanges it publishes to or binds from (Nameko declares every exchange it
    uses), publishes to ``nameko-rpc`` (requests and replies) and to its own ``<service>.events``,
    and parks failed events through the default exchange (``amq.default``).
    """
    reply = rf"rpc\.reply-{re.escape(role)}-.*"
    if role not in SERVERS:
        mine = rf"{re.escape(RPC_EXCHANGE)}|{reply}"
        if role == "operator":   # lists and replays dead-lettered events (introserv-ops deadletters)
            return {"configure": f"^({mine})$", "write": rf"^({mine}|amq\.default)$",
                    "read": rf"^({mine}|evt-.*\.dead)$"}
        return {"configure": f"^({mine})$", "write": f"^({mine})$", "read": f"^({mine})$"}
    own_queues = rf"rpc-{re.escape(role)}|{reply}|evt-.*--{re.escape(role)}\..*"
    sources = _either(*(f"{source}.events" for source in CONSUMES[role]))
    exchanges = _either(RPC_EXCHANGE, f"{role}.events", *(f"{source}.events" for source in CONSUMES[role]))
    return {
        "configure": f"^({exchanges}|{own_queues})$",
        "write": rf"^({_either(RPC_EXCHANGE, f'{role}.events')}|amq\.default|{own_queues})$",
        "read": f"^({_either(RPC_EXCHANGE)}{'|' + sources if sources else ''}|{own_queues})$",
    }


def topic_permissions(role: str) -> list[dict]:
    """Routing keys the role may publish to and bind from, per topic exchange (``nameko-rpc``).

    A request's routing key is ``<service>.<method>``; a reply's is the caller's reply queue
    key, a UUID. A caller publishes requests to the services it calls and binds its reply
    queue; a service also replies and binds ``<service>.*``.
    """
    calls = CALLS[role]
    requests = rf"({_either(*calls)})\.[a-z_]+" if calls else None
    if role in SERVERS:
        write = "|".join(filter(None, [requests, UUID]))
        read = rf"{re.escape(role)}\.\*|{UUID}"
    else:
        write, read = requests, UUID
    return [{"exchange": RPC_EXCHANGE, "write": f"^({write})$", "read": f"^({read})$"}]


def password_hash(user: str, password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password)).

    The 4-byte salt follows from the user and the password, so the same passwords give the same
    file (no needless change of the Secret, no restart of the broker) while two users with one
    password still get different hashes.
    """
    salt = hashlib.sha256(f"{user}:{password}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(passwords: dict[str, str], vhost: str) -> dict:
    """The document RabbitMQ imports at boot (``load_definitions``)."""
    users = [{"name": role, "password_hash": password_hash(role, passwords[role]),
              "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []} for role in ROLES]
    users.append({"name": ADMIN, "password_hash": password_hash(ADMIN, passwords[ADMIN]),
                  "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]})
    exchange = {"vhost": vhost, "type": "topic", "durable": True, "auto_delete": False, "internal": False,
                "arguments": {}}
    description = "Introserv billing panel: Nameko RPC and events"
    return {
        "users": users,
        # Quorum queues for every durable, non-exclusive queue Nameko declares without a type
        # (a policy cannot change a queue's type; a vhost's default type can).
        "vhosts": [{"name": vhost, "description": description, "tags": [], "default_queue_type": "quorum",
                    "metadata": {"description": description, "tags": [], "default_queue_type": "quorum"}}],
        "permissions": [{"user": role, "vhost": vhost, **permissions(role)} for role in ROLES]
        + [{"user": ADMIN, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "topic_permissions": [{"user": role, "vhost": vhost, **grant}
                              for role in ROLES for grant in topic_permissions(role)],
        "exchanges": [{"name": RPC_EXCHANGE, **exchange}]
        + [{"name": f"{service}.events", **exchange} for service in SERVICES],
        "queues": [],
        "bindings": [],
        "parameters": [],
        "global_parameters": [],
        # A retry queue dead-letters each event back to its handler when its wait is over:
        # at-least-once (the default for quorum queues is at-most-once), which needs reject-publish.
        "policies": [{"vhost": vhost, "name": "retry-queues-dead-letter-at-least-once", "pattern": r"\.retry$",
                      "apply-to": "queues", "priority": 1,
                      "definition": {"dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}}],
    }


def read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bus_definitions")
    parser.add_argument("--secrets", type=Path, default=SECRETS, help="the overlay's secrets folder")
    parser.add_argument("--host", default="rabbitmq", help="the broker's address as the services see it")
    parser.add_argument("--vhost", default="introserv")
    args = parser.parse_args(argv)
    args.secrets.mkdir(parents=True, exist_ok=True)
    kept = read_env(args.secrets / "bus-passwords.env")
    passwords = {name: kept.get(name) or secrets.token_urlsafe(24) for name in (*ROLES, ADMIN)}
    write(args.secrets / "bus-passwords.env",
          "# The bus logins' passwords, made once by python -m deploy.bus_definitions; never commit.\n"
          + "".join(f"{name}={password}\n" for name, password in passwords.items()))
    write(args.secrets / "amqp.env", "".join(
        f"{role.upper()}_AMQP_URI=amqp://{role}:{passwords[role]}@{args.host}:5672/{args.vhost}\n" for role in ROLES))
    write(args.secrets / "definitions.json", json.dumps(definitions(passwords, args.vhost), indent=2) + "\n")
    cookie = args.secrets / "erlang.cookie"
    if not cookie.exists():
        write(cookie, secrets.token_hex(32))
    print(f"wrote {args.secrets}/: bus-passwords.env, amqp.env, definitions.json, erlang.cookie")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
