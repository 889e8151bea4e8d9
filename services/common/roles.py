"""Who is who on the bus: the RabbitMQ logins, the roles they are, and the sets methods allow.

RabbitMQ authenticates every connection, and every RPC request carries the AMQP ``user_id``
property, which the broker refuses unless it is the connection's login: so ``user_id`` is who
really called. Each caller logs in as its own user, named after its role: one per service (and
``ledger_documents``, the ledger's document worker, a process of its own), ``gateway``, and the
outside callers ``operator`` (support staff's tools), ``payments`` (the
payment system) and ``support_desk``. Every ``@rpc`` method names the roles it answers
(:mod:`services.common.rpc`); everyone else, ``guest`` included, is ``forbidden``.
docs/rpc-roles.md gives each method's roles and why.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import quote, unquote, urlsplit

PROFILE = frozenset({"profile"})
ORDERS = frozenset({"orders"})
LEDGER = frozenset({"ledger"})
NOTIFIER = frozenset({"notifier"})
VERIFICATION = frozenset({"verification"})
LEDGER_DOCUMENTS = frozenset({"ledger_documents"})
GATEWAY = frozenset({"gateway"})
OPERATOR = frozenset({"operator"})
PAYMENTS = frozenset({"payments"})
SUPPORT_DESK = frozenset({"support_desk"})

# The logins that serve RPC and handle events (the services and the ledger's document worker).
SERVICES = PROFILE | ORDERS | LEDGER | NOTIFIER | VERIFICATION | LEDGER_DOCUMENTS
OUTSIDE_CALLERS = OPERATOR | PAYMENTS | SUPPORT_DESK
ROLES = SERVICES | GATEWAY | OUTSIDE_CALLERS

# Support staff, through their tools or the help desk: they read what a customer sees.
STAFF = OPERATOR | SUPPORT_DESK
# Anyone with a role may ask whether a service is up (health pings).
EVERYONE = ROLES


def login_of(amqp_uri: str) -> str:
    """The user an AMQP URI logs in as (RabbitMQ's ``guest`` when it names none)."""
    return unquote(urlsplit(amqp_uri).username or "guest")


def on_loopback(amqp_uri: str) -> bool:
    """True when the URI's broker is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(amqp_uri).hostname or "localhost"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalLoginRefused(ValueError):
    """A password equal to the login was asked for a broker that is not on this machine."""


def local_login_uri(broker_uri: str, role: str) -> str:
    """The development login of ``role``: the broker and vhost of ``broker_uri``, user = password = role.

    Like RabbitMQ's own ``guest``, such a login is for a broker on the loopback only; for any
    other broker each role's URI must be given (``<ROLE>_AMQP_URI``).
    """
    if not on_loopback(broker_uri):
        raise LocalLoginRefused(
            f"{role}: a login whose password is its name is for a broker on this machine only; "
            f"set {role.upper()}_AMQP_URI for the broker at {urlsplit(broker_uri).hostname}")
    parts = urlsplit(broker_uri)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or "localhost"
    netloc = f"{quote(role)}:{quote(role)}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
