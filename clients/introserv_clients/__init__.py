"""Call the Introserv billing services from outside Nameko: ``RpcClient``, one facade per service,
``Money``, and the exceptions of each refusal. The operator CLI is ``introserv-ops``."""
from introserv_clients.errors import (BrokerUnavailable, CallTimedOut, Conflict, Forbidden, IdempotencyConflict,
                                      IntroservError, NotFound, RateLimited, Refused, RemoteFailure,
                                      ServiceUnavailable, UnknownService, ValidationError)
from introserv_clients.money import Money
from introserv_clients.rpc import RpcClient, amqp_uri_for
from introserv_clients.services import Ledger, Notifier, Orders, Page, Profile, Verification

__all__ = [
    "RpcClient", "amqp_uri_for", "Money", "Page",
    "Profile", "Ledger", "Orders", "Notifier", "Verification",
    "IntroservError", "ValidationError", "NotFound", "Forbidden", "Refused", "Conflict", "IdempotencyConflict",
    "RateLimited", "ServiceUnavailable", "UnknownService", "CallTimedOut", "BrokerUnavailable", "RemoteFailure",
]
