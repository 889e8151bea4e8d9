"""Error codes shared by RPC and HTTP: one table, one exception type.

A refused RPC raises :class:`DomainError`; Nameko serialises it so that the caller sees
``exc_args == [code, message, fields, details, status]`` (docs/CONTRACTS.md: ``exc_args[0]`` is the
code, ``exc_args[1]`` the message). The gateway turns the same arguments back into the
HTTP error shape with :data:`HTTP_STATUS`.
"""
from __future__ import annotations

import nameko.exceptions
from nameko.exceptions import get_module_path, registry

HTTP_STATUS = {
    # 400
    "malformed_json": 400,
    "validation_error": 400,
    # 401
    "unauthenticated": 401,
    "invalid_credentials": 401,
    "otp_required": 401,
    # 403
    "forbidden": 403,
    "ip_not_allowed": 403,
    "account_frozen": 403,
    # 404
    "not_found": 404,
    "token_unknown": 404,
    # 405
    "method_not_allowed": 405,
    # 409
    "conflict": 409,
    "login_taken": 409,
    "already_set": 409,
    "already_enabled": 409,
    "not_renewable": 409,
    "not_changeable": 409,
    "not_cancellable": 409,
    "nothing_to_confirm": 409,
    "request_in_progress": 409,  # details.retry_after: seconds (the gateway's Retry-After)
    # 410
    "token_expired": 410,
    "verification_expired": 410,
    # 411
    "length_required": 411,
    # 413
    "payload_too_large": 413,
    # 414
    "uri_too_long": 414,
    # 431
    "headers_too_large": 431,
    # 415
    "unsupported_media_type": 415,
    # 422
    "business_rule": 422,
    "weak_password": 422,
    "field_immutable": 422,
    "wrong_password": 422,
    "password_mismatch": 422,
    "would_lock_out": 422,
    "invalid_otp": 422,
    "phone_missing": 422,
    "phone_not_allowed": 422,
    "wrong_code": 422,
    "channel_not_supported": 422,
    "payments_blocked": 422,
    "postal_address_required": 422,
    "out_of_stock": 422,
    "unknown_plan": 422,
    "insufficient_funds": 422,
    "idempotency_conflict": 422,
    "method_not_offered": 422,
    "currency_mismatch": 422,
    "refund_exceeds_charge": 422,
    "invalid_vat_id": 422,
    "verification_required": 422,
    # 429
    "rate_limited": 429,
    # 500: a bug of ours, never a dependency that is down (that is 503)
    "internal_error": 500,
    # 503
    "service_unavailable": 503,
    "verification_unavailable": 503,
}


def _rebuild(*args) -> DomainError:
    return DomainError(*args)


def _register(cls) -> None:
    # Nameko rebuilds a remote exception from its exc_path and exc_args when the path is in
    # its registry; every DomainError, whatever its subclass, comes back as a DomainError.
    registry[get_module_path(cls)] = _rebuild


class DomainError(Exception):
    """A refusal with a stable machine code; safe to send over RPC."""

    code = "business_rule"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __init__(self, code: str | None = None, message: str = "", fields: dict | None = None,
                 details: dict | None = None, status: int | None = None):
        code = code or self.code
        super().__init__(code, message or code.replace("_", " "), fields or {}, details or {}, status)

    @property
    def error_code(self) -> str:
        return self.args[0]

    @property
    def message(self) -> str:
        return self.args[1]

    @property
    def fields(self) -> dict:
        return self.args[2]

    @property
    def details(self) -> dict:
        return self.args[3]

    @property
    def status(self) -> int:
        return int(self.args[4] or HTTP_STATUS.get(self.args[0], 422))

    def to_body(self) -> dict:
        """The error shape of docs/CONTRACTS.md."""
        return {"error": {"code": self.error_code, "message": self.message,
                          "fields": self.fields, "details": self.details}}


class ValidationError(DomainError):
    def __init__(self, fields: dict, message: str = "The request is not valid."):
        super().__init__("validation_error", message, fields=fields)


class NotFound(DomainError):
    def __init__(self, what: str = "resource"):
        super().__init__("not_found", f"No such {what}.")


class ServiceUnavailable(DomainError):
    def __init__(self, service: str, message: str | None = None):
        super().__init__("service_unavailable",
                         message or f"The {service} service is unavailable; try again shortly.",
                         details={"service": service})





_register(DomainError)
_stringify = nameko.exceptions.safe_for_serialization


def _json_safe(value):
    """Keep JSON's own types in exception arguments (Nameko would turn 4 into "4")."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return _stringify(value)


nameko.exceptions.safe_for_serialization = _json_safe
