"""Every refusal as a Python exception, chosen by its code.

A service refuses a call with a remote error whose ``exc_args`` are ``[code, message, fields,
details, ...]`` (the same ``code`` as the HTTP API's error shape). :func:`from_remote` turns it
into an :class:`IntroservError` subclass, so callers write ``except NotFound:`` instead of
reading codes; the code itself stays on ``error.code`` for whatever the classes do not name.
Failures of the transport (no such service, no answer in time, the broker gone) are
:class:`ServiceUnavailable` too, with the code ``service_unavailable``.
"""
from __future__ import annotations

import re


class IntroservError(Exception):
    """A refused or failed call: ``code`` (stable, machine-readable), ``message``, ``fields``, ``details``."""

    def __init__(self, code: str, message: str = "", fields: dict | None = None, details: dict | None = None):
        self.code = code
        self.message = message or code.replace("_", " ")
        self.fields = fields or {}
        self.details = details or {}
        super().__init__(code, self.message, self.fields, self.details)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_body(self) -> dict:
        """The error shape of the HTTP API: ``{"error": {code, message, fields, details}}``."""
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields,
                          "details": self.details}}


class ValidationError(IntroservError):
    """The arguments are not valid (``fields`` names each one); nothing changed."""


class NotFound(IntroservError):
    """No such account, order, invoice ... (also another customer's)."""


class Forbidden(IntroservError):
    """This caller may not do this (its role on the bus, or the account's state)."""


class Refused(IntroservError):
    """A business rule refused the call (insufficient_funds, method_not_offered ...); nothing changed."""


class Conflict(Refused):
    """The current state does not allow it (already cancelled, in progress ...)."""


class IdempotencyConflict(Refused):
    """This idempotency key was used before with other arguments; nothing moved."""


class RateLimited(Refused):
    """Too many attempts; ``details["retry_after"]`` seconds, where the service says."""


class ServiceUnavailable(IntroservError):
    """The service (or one it needs) is down, did not answer in time, or the broker is away.

    Whether the call took effect is unknown when it timed out or the connection dropped: repeat
    it with the same idempotency key, which moves nothing twice.
    """

    def __init__(self, code: str = "service_unavailable", message: str = "", fields: dict | None = None,
                 details: dict | None = None):
        super().__init__(code, message, fields, details)


class UnknownService(ServiceUnavailable):
    """No queue takes this service's calls: it is not running (or the name is wrong). Known at once."""


class CallTimedOut(ServiceUnavailable):
    """No answer within the timeout. The request expires unanswered in the broker after the same time."""


class BrokerUnavailable(ServiceUnavailable):
    """RabbitMQ cannot be reached, or the connection dropped during the call; the next call reconnects."""


class RemoteFailure(IntroservError):
    """The service failed in a way that is not a refusal (a bug, or a method it does not have)."""


# One class per code family; codes not named here are refusals by a business rule (HTTP 422).
# tests/unit/test_clients.py checks this table against the services' own code table.
_CLASSES = {
    ValidationError: ("validation_error", "malformed_json"),
    Forbidden: ("forbidden", "unauthenticated", "invalid_credentials", "otp_required", "ip_not_allowed",
                "account_frozen"),
    NotFound: ("not_found", "token_unknown"),
    Conflict: ("conflict", "login_taken", "already_set", "already_enabled", "not_renewable", "not_changeable",
               "not_cancellable", "nothing_to_confirm"),
    IdempotencyConflict: ("idempotency_conflict",),
    RateLimited: ("rate_limited",),
    RemoteFailure: ("internal_error",),
    ServiceUnavailable: ("service_unavailable", "verification_unavailable"),
}
BY_CODE = {code: cls for cls, codes in _CLASSES.items() for code in codes}
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def error_class(code: str) -> type[IntroservError]:
    return BY_CODE.get(code, Refused)


def from_remote(error: dict) -> IntroservError:
    """The exception for the ``error`` of a Nameko reply (``{exc_type, exc_path, exc_args, value}``)."""
    args = list(error.get("exc_args") or [])
    if len(args) >= 2 and isinstance(args[0], str) and _CODE.match(args[0]) and isinstance(args[1], str):
        fields = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
        details = args[3] if len(args) > 3 and isinstance(args[3], dict) else {}
        return error_class(args[0])(args[0], args[1], fields, details)
    exc_type = error.get("exc_type") or "RemoteError"
    code = "method_not_found" if exc_type == "MethodNotFound" else "internal_error"
    return RemoteFailure(code, f"{exc_type}: {error.get('value', '')}".rstrip(": "),
                         details={"exc_type": exc_type, "exc_path": error.get("exc_path")})
