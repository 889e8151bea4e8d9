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

Which logins exist and what each may do on the broker is deploy/bus.py's, derived from the
services' own declarations (each method's roles, each service's event handlers): the same
permissions and topic permissions as ``make run``, the tests and docker-compose give.
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from deploy.bus import RPC_EXCHANGE, password_hash, permissions, topic_permissions
from services.common.config import ROOT, SERVICES
from services.common.roles import ROLES as ROLE_SET

ROLES = tuple(sorted(ROLE_SET))   # every login of the bus, but the administrator
ADMIN = "admin"
SECRETS = ROOT / "deploy" / "k8s" / "overlays" / "production" / "secrets"


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
        "policies": [{"vhost": vhost, "name": "retry-queues-dead-letter-at-least-once", "pattern": r"\.delayed$",
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
