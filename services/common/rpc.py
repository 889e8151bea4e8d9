"""RPC in both directions: entrypoints that refuse with DomainError, proxies that time out.

A call to another service waits at most ``RPC_TIMEOUT`` seconds; then, or when the broker
has no such service, the caller gets ``ServiceUnavailable`` naming the service, never a
hang. The request also carries a per-message TTL of the same length, so a call nobody
answered in time is not executed later by a service that comes back.
"""
from __future__ import annotations

from collections.abc import Callable

import eventlet
import structlog
from kombu.exceptions import OperationalError as BrokerUnavailable
from nameko.exceptions import UnknownService
from nameko.rpc import MethodProxy, RpcProxy
from nameko.rpc import Rpc as NamekoRpc

from services.common.config import rpc_timeout
from services.common.consumer import ResilientReplyListener, ResilientRpcConsumer
from services.common.errors import DomainError, ServiceUnavailable
from services.common.metrics import MeasuredRpc

log = structlog.get_logger(__name__)


class Rpc(MeasuredRpc, NamekoRpc):   # every call counted and timed (services/common/metrics.py)
    """Nameko's RPC entrypoint, except that a reply lost to a broker outage does not stop the service.

    Nameko lets the reply's publish error escape the worker, which kills the whole container:
    a RabbitMQ restart in the middle of a call would take the service down for good. Here the
    reply is given up instead (the caller has its timeout) and the request, never acked, is
    redelivered by the broker or expires with its TTL; calls are idempotent either way. The
    request's ack, likewise, cannot kill the service (:mod:`services.common.consumer`).
    """

    rpc_consumer = ResilientRpcConsumer()

    def handle_result(self, message, worker_ctx, result, exc_info):
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except Exception as exc:  # kombu, amqp (not builtin ConnectionError subclasses) and socket errors alike
            log.warning("could not send an RPC reply; the broker is away", error=repr(exc))
            return result, exc_info


def rpc(fn=None, **kwargs):
    """``@rpc`` whose DomainError refusals are answers, not crashes in the log."""
    kwargs.setdefault("expected_exceptions", (DomainError,))
    if fn is None:
        return Rpc.decorator(**kwargs)
    return Rpc.decorator(**kwargs)(fn)


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
        method = MethodProxy(self._worker_ctx, self._service, name, self._reply_listener, **self._options)

        def invoke(*args, **kwargs):
            return call(method, self._service, self._timeout, *args, **kwargs)
        invoke.__name__ = name
        return invoke


class ServiceRpc(RpcProxy):
    """``orders = ServiceRpc("orders")``: an RpcProxy with a timeout and an expiring request.

    ``timeout``: seconds, or a function of no arguments read for each worker (configuration
    from the environment); ``RPC_TIMEOUT`` by default.
    """

    rpc_reply_listener = ResilientReplyListener()

    def __init__(self, target_service, timeout: float | Callable[[], float] | None = None, **options):
        self.timeout = timeout
        super().__init__(target_service, **options)

    def get_dependency(self, worker_ctx):
        timeout = (self.timeout() if callable(self.timeout) else self.timeout) or rpc_timeout()
        options = dict(self.options)
        options.setdefault("expiration", timeout)
        return TimedServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener,
                                 timeout, **options)
