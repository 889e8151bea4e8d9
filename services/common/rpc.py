"""RPC in both directions: entrypoints that answer only their roles, proxies that time out.

An entrypoint answers only the roles it names (``@rpc(roles=GATEWAY | OPERATOR)``, roles in
:mod:`services.common.roles`): the caller is the request's AMQP ``user_id``, which RabbitMQ
refuses unless it is the login of the connection that sent it, so it cannot be forged. Any other
caller, or a request without ``user_id``, gets ``forbidden``; a method naming no roles stops
its service from starting. Every request a proxy here sends carries ``user_id``.

A call to another service waits at most ``RPC_TIMEOUT`` seconds; then, or when the broker
has no such service, the caller gets ``ServiceUnavailable`` naming the service, never a
hang. The request also carries a per-message TTL of the same length, so a call nobody
answered in time is not executed later by a service that comes back.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import eventlet
import structlog
from amqp.exceptions import AccessRefused
from kombu.exceptions import OperationalError as BrokerUnavailable
from nameko.constants import AMQP_URI_CONFIG_KEY, HEADER_PREFIX
from nameko.exceptions import ConfigurationError, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import MethodProxy, RpcProxy, ServiceProxy
from nameko.rpc import Rpc as NamekoRpc
from nameko.standalone import rpc as standalone

from services.common.config import rpc_timeout
from services.common.consumer import TRANSIENT, ResilientReplyListener, ResilientRpcConsumer
from services.common.errors import DomainError, ServiceUnavailable
from services.common.metrics import RPC_CALLS, MeasuredRpc
from services.common.publisher import KeptOpenPublisher
from services.common.roles import ROLES, login_of

log = structlog.get_logger(__name__)

# worker_ctx.data: the broker-authenticated login of the RPC request a worker serves.
CALLER = "caller"
# Nameko names a reply queue's binding with a UUID; the services may publish replies to no other key.
REPLY_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Rpc(MeasuredRpc, NamekoRpc):   # every call counted and timed (services/common/metrics.py)
    """Nameko's RPC entrypoint, answering only its roles, and outliving a broker outage.

    The caller's role is checked before any worker starts. Nameko lets the reply's publish
    error escape the worker, which kills the whole container: a RabbitMQ restart in the middle
    of a call would take the service down for good. Here the reply is given up instead
    (:class:`services.common.consumer.ResilientRpcConsumer`: the caller has its timeout) and the
    request, never acked, is redelivered by the broker or expires with its TTL; calls are
    idempotent either way. The request's ack, likewise, cannot kill the service.
    """

    rpc_consumer = ResilientRpcConsumer()

    def __init__(self, roles=None, **kwargs):
        self.roles = frozenset(roles or ())
        super().__init__(**kwargs)

    @property
    def qualified_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def setup(self):
        if not self.roles:
            raise ConfigurationError(f"{self.qualified_name} names no roles: give it @rpc(roles=...) "
                                     "and a line in docs/rpc-roles.md")
        if self.roles - ROLES:
            raise ConfigurationError(f"{self.qualified_name} names unknown roles: {sorted(self.roles - ROLES)}")
        super().setup()

    def handle_message(self, body, message):
        caller = message.properties.get("user_id")
        if not REPLY_KEY.match(str(message.properties.get("reply_to"))):
            # The broker would refuse our reply (services publish replies to reply keys only) and
            # the request would wait unacked for ever: it is dropped, and nothing runs.
            log.warning("RPC request dropped: reply_to is not a reply queue's key",
                        method=self.qualified_name, caller=caller)
            self.rpc_consumer.queue_consumer.ack_message(message)
            return
        if caller not in self.roles:
            log.warning("RPC refused: the caller has no role for it", method=self.qualified_name, caller=caller)
            RPC_CALLS.labels(self.container.service_name, self.method_name, "refused", "forbidden").inc()
            raise DomainError("forbidden", f"{caller or 'A request without user_id'} may not call "
                                           f"{self.qualified_name}.")
        super().handle_message(body, message)

    def unpack_message_headers(self, message):
        data = super().unpack_message_headers(message)
        data[CALLER] = message.properties["user_id"]   # the broker's word, whatever headers a caller wrote
        return data


def rpc(fn=None, *, roles=None, **kwargs):
    """``@rpc(roles=...)``: an entrypoint for these roles, whose DomainError refusals are answers, not crashes."""
    kwargs.setdefault("expected_exceptions", (DomainError,))
    if fn is None:
        return Rpc.decorator(roles=roles, **kwargs)
    return Rpc.decorator(roles=roles, **kwargs)(fn)


class Caller(DependencyProvider):
    """``caller = Caller()``: who called the RPC being served (its broker login), for the record."""

    def get_dependency(self, worker_ctx):
        if isinstance(worker_ctx.entrypoint, Rpc):
            return worker_ctx.data.get(CALLER)
        return None


class SignedMethodProxy(MethodProxy):
    """Nameko's method proxy; its publisher adds ``user_id`` (the proxy's options), and a
    request the broker refuses to this login (topic permissions) is ``forbidden``. Requests go
    out on connections kept open (:mod:`services.common.publisher`)."""

    publisher_cls = KeptOpenPublisher

    def get_message_headers(self, worker_ctx):
        headers = super().get_message_headers(worker_ctx)
        headers.pop(f"{HEADER_PREFIX}.{CALLER}", None)   # who called us is not who calls them
        return headers

    def _call(self, *args, **kwargs):
        try:
            return super()._call(*args, **kwargs)
        except AccessRefused:
            raise DomainError("forbidden", f"The broker refused this login's request to "
                                           f"{self.service_name}.{self.method_name}.") from None


def call(method: MethodProxy, service: str, timeout: float, *args, **kwargs):
    """Call and wait at most ``timeout``; remote refusals come back as DomainError (see errors.py)."""
    try:
        with eventlet.Timeout(timeout):
            return method.call_async(*args, **kwargs).result()
    except eventlet.Timeout:
        raise ServiceUnavailable(service, f"The {service} service did not answer in time; try again shortly.") from None
    except (UnknownService, BrokerUnavailable, ConnectionError):
        raise ServiceUnavailable(service) from None


class TimedServiceProxy:
    def __init__(self, worker_ctx, service, reply_listener, timeout, **options):
        self._worker_ctx = worker_ctx
        self._service = service
        self._reply_listener = reply_listener
        self._timeout = timeout
        self._options = options

    def with_timeout(self, seconds: float) -> "TimedServiceProxy":
        """The same proxy with a shorter wait (health pings)."""
        options = dict(self._options, expiration=seconds)
        return TimedServiceProxy(self._worker_ctx, self._service, self._reply_listener, seconds, **options)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        method = SignedMethodProxy(self._worker_ctx, self._service, name, self._reply_listener, **self._options)

        def invoke(*args, **kwargs):
            return call(method, self._service, self._timeout, *args, **kwargs)
        invoke.__name__ = name
        return invoke


class ServiceRpc(RpcProxy):
    """``orders = ServiceRpc("orders")``: an RpcProxy with a timeout and an expiring request,
    signed with the service's login (``user_id``).

    ``timeout``: seconds, or a function of no arguments read for each worker (configuration
    from the environment); ``RPC_TIMEOUT`` by default.

    Requests are transient (never written to the broker's disk): one that a broker restart loses
    is a timeout the caller already handles, and it would expire with its TTL anyway. They are
    still confirmed: a confirm on a transient message costs one round trip, not an fsync, and it
    is how a call to a service that never declared its queue (``ServiceUnavailable`` at once)
    or one the broker refuses to this login (``forbidden``) is told apart from a slow one.
    Replies: :class:`services.common.consumer.ReplyPublisher`.
    """

    rpc_reply_listener = ResilientReplyListener()
    login = None

    def __init__(self, target_service, timeout: float | Callable[[], float] | None = None, **options):
        self.timeout = timeout
        super().__init__(target_service, **options)

    def setup(self):
        self.login = login_of(self.container.config[AMQP_URI_CONFIG_KEY])

    def get_dependency(self, worker_ctx):
        timeout = (self.timeout() if callable(self.timeout) else self.timeout) or rpc_timeout()
        options = dict(self.options)
        options.setdefault("expiration", timeout)
        options.setdefault("delivery_mode", TRANSIENT)   # see the class's docstring
        options["user_id"] = self.login
        return TimedServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener,
                                 timeout, **options)


class ClusterRpcProxy(standalone.ClusterRpcProxy):
    """Nameko's standalone cluster proxy for callers outside the services (tools, tests).

    Its requests carry ``user_id`` (the login of ``config["AMQP_URI"]``) and its reply queue is
    named after that login (``rpc.reply-<login>-<uuid>``), the one reply queue the broker lets
    it read; a request the broker refuses to it is ``forbidden``.
    """

    def __init__(self, config, context_data=None, timeout=None, **kwargs):
        login = login_of(config[AMQP_URI_CONFIG_KEY])

        class Container(standalone.StandaloneProxyBase.ServiceContainer):
            service_name = login   # names the reply queue

        self.ServiceContainer = Container
        super().__init__(config, context_data, timeout, **kwargs)
        self._proxy = _SignedClusterProxy(self._worker_ctx, self._reply_listener, user_id=login)


class _SignedServiceProxy(ServiceProxy):
    def __getattr__(self, name):
        return SignedMethodProxy(self.worker_ctx, self.service_name, name, self.reply_listener, **self.options)


class _SignedClusterProxy(standalone.ClusterProxy):
    def __init__(self, worker_ctx, reply_listener, **options):
        super().__init__(worker_ctx, reply_listener)
        self._options = options

    def __getattr__(self, name):
        if name not in self._proxies:
            self._proxies[name] = _SignedServiceProxy(self._worker_ctx, name, self._reply_listener, **self._options)
        return self._proxies[name]
