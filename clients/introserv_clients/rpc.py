"""A blocking RPC client that speaks Nameko's RPC protocol over pika.

What a Nameko service expects of a caller (nameko/rpc.py, nameko/amqp/publish.py):
- the request goes to the ``nameko-rpc`` topic exchange with the routing key
  ``<service>.<method>``, the body ``{"args": [...], "kwargs": {...}}`` in JSON;
- ``reply_to`` is a routing key on the same exchange, to which the caller's own queue is bound,
  and ``correlation_id`` pairs the answer with its request;
- the header ``nameko.call_id_stack`` carries the call ids, so the services' logs can follow a call;
- the answer is ``{"result": ..., "error": {exc_type, exc_path, exc_args, value} | null}``.

On top of that, this client publishes each request as mandatory with publisher confirms, so a
service with no queue bound (not running, or misspelt) is :class:`UnknownService` at once rather
than a timeout; gives each request a TTL equal to its timeout, so a call nobody answered in time
is never executed later by a service that comes back; sets the AMQP ``user_id`` to the login of
its connection (RabbitMQ checks it, so the services know who calls); and reconnects on the next
call after the broker restarted or closed the connection. One client per thread: pika's
connections are not thread-safe.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pika
from pika.exceptions import (AMQPChannelError, AMQPConnectionError, AuthenticationError, ChannelClosedByBroker,
                             NackError, ProbableAccessDeniedError, ProbableAuthenticationError, UnroutableError)

from introserv_clients.errors import (BrokerUnavailable, CallTimedOut, Forbidden, IntroservError, UnknownService,
                                      from_remote)
from introserv_clients.money import to_json

RPC_EXCHANGE = "nameko-rpc"
CALL_ID_STACK_HEADER = "nameko.call_id_stack"
DEFAULT_TIMEOUT = 5.0
_ACCESS_REFUSED = 403
_NOT_FOUND = 404


def amqp_uri_for(role: str) -> str:
    """``<ROLE>_AMQP_URI`` (``PAYMENTS_AMQP_URI``, ``SUPPORT_DESK_AMQP_URI``, ``OPERATOR_AMQP_URI``), else
    the role's local development login (its password is its name, as ``make run`` provisions it)."""
    variable = f"{role.upper()}_AMQP_URI"
    return os.environ.get(variable) or f"amqp://{role}:{role}@127.0.0.1:5672/"


class RpcClient:
    """``RpcClient(uri).call("ledger", "get_balance", [account_id])``; a context manager closes it."""

    def __init__(self, amqp_uri: str, timeout: float = DEFAULT_TIMEOUT, name: str | None = None):
        self.parameters = pika.URLParameters(amqp_uri)
        self.user_id = self.parameters.credentials.username
        self.name = name or self.user_id
        self.timeout = timeout
        self.parameters.client_properties = {"connection_name": f"{self.name} (introserv-clients)",
                                             "product": "introserv-clients"}
        self._connection = None
        self._channel = None
        self._reply_to = None
        self._waiting: set[str] = set()
        self._replies: dict[str, dict] = {}

    @classmethod
    def for_role(cls, role: str, **options) -> RpcClient:
        """A client logged in as ``role`` (``payments``, ``support_desk``, ``operator``) from the environment."""
        return cls(amqp_uri_for(role), name=options.pop("name", role), **options)

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._drop()

    # -- calling

    def call(self, service: str, method: str, args=(), kwargs: dict | None = None,
             timeout: float | None = None):
        """Call ``service.method(*args, **kwargs)`` and wait at most ``timeout`` seconds for its answer.

        Money values are :class:`~introserv_clients.money.Money` or ``{amount, currency}`` dicts. A
        refusal raises the :class:`~introserv_clients.errors.IntroservError` of its code.
        """
        timeout = self.timeout if timeout is None else timeout
        body = json.dumps({"args": list(args), "kwargs": kwargs or {}}, default=to_json).encode()
        deadline = time.monotonic() + timeout
        self._connect(service)
        correlation_id = str(uuid.uuid4())
        properties = pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8", delivery_mode=2,
            reply_to=self._reply_to, correlation_id=correlation_id, user_id=self.user_id,
            expiration=str(max(1, round(timeout * 1000))),
            headers={CALL_ID_STACK_HEADER: [f"{self.name}.{service}.{method}.{uuid.uuid4()}"]})
        self._waiting.add(correlation_id)
        try:
            self._publish(service, method, body, properties)
            reply = self._wait_for(correlation_id, deadline, service, method, timeout)
        finally:
            self._waiting.discard(correlation_id)
            self._replies.pop(correlation_id, None)
        if reply.get("error"):
            raise from_remote(reply["error"])
        return reply.get("result")

    def _publish(self, service: str, method: str, body: bytes, properties) -> None:
        try:
            self._channel.basic_publish(RPC_EXCHANGE, f"{service}.{method}", body, properties, mandatory=True)
        except UnroutableError:
            raise UnknownService(message=f"No {service} service is running (nothing takes its calls).",
                                 details={"service": service}) from None
        except NackError:
            raise BrokerUnavailable(message=f"The broker did not accept the call to {service}.",
                                    details={"service": service}) from None
        except (AMQPConnectionError, AMQPChannelError, OSError) as exc:
            self._drop()
            raise broker_error(exc, self.parameters, f"sending a call to {service}", service=service) from None

    def _wait_for(self, correlation_id: str, deadline: float, service: str, method: str, timeout: float) -> dict:
        while correlation_id not in self._replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallTimedOut(message=f"The {service} service did not answer {method} within {timeout:g} s; "
                                           "whether it took effect is unknown.",
                                   details={"service": service, "method": method, "timeout": timeout})
            try:
                self._connection.process_data_events(time_limit=remaining)
            except (AMQPConnectionError, AMQPChannelError, OSError) as exc:
                self._drop()
                raise BrokerUnavailable(
                    message=f"The connection to RabbitMQ was lost while waiting for {service}.{method}; whether it "
                            "took effect is unknown. The next call reconnects.",
                    details={"service": service, "method": method, "reason": str(exc) or type(exc).__name__}) from None
        return self._replies[correlation_id]

    def _on_reply(self, channel, deliver, properties, body) -> None:
        if properties.correlation_id in self._waiting:   # a late answer to a call that timed out is dropped
            self._replies[properties.correlation_id] = json.loads(body)

    # -- the connection

    def _connect(self, service: str) -> None:
        """Make sure there is a live connection with a reply queue; a dead one is replaced."""
        if self._connection is not None:
            try:
                self._connection.process_data_events(time_limit=0)   # notices a close the broker sent meanwhile
            except (AMQPConnectionError, AMQPChannelError, OSError):
                self._drop()
        if self._connection is not None and self._connection.is_open and self._channel.is_open:
            return
        self._drop()
        try:
            connection = pika.BlockingConnection(self.parameters)
        except (AMQPConnectionError, OSError) as exc:
            raise broker_error(exc, self.parameters, "connecting", service=service) from None
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            # passive: a caller needs no right to create the exchange; it exists once any service has run
            channel.exchange_declare(RPC_EXCHANGE, passive=True)
            reply_to = str(uuid.uuid4())
            queue = f"rpc.reply-{self.user_id}-{reply_to}"
            channel.queue_declare(queue, exclusive=True, auto_delete=True)
            channel.queue_bind(queue, RPC_EXCHANGE, routing_key=reply_to)
            channel.basic_consume(queue, self._on_reply, auto_ack=True)
        except (AMQPConnectionError, AMQPChannelError, OSError) as exc:
            try:
                connection.close()
            except (AMQPConnectionError, OSError):
                pass
            if isinstance(exc, ChannelClosedByBroker) and exc.reply_code == _NOT_FOUND:
                raise UnknownService(message=f"No service has ever run on this broker: {service} is not there.",
                                     details={"service": service}) from None
            raise broker_error(exc, self.parameters, "opening the reply queue", service=service) from None
        self._connection, self._channel, self._reply_to = connection, channel, reply_to

    def _drop(self) -> None:
        """Close and forget the connection (a failed one too); the next call opens a new one."""
        connection, self._connection, self._channel = self._connection, None, None
        self._replies.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (AMQPConnectionError, AMQPChannelError, OSError):
                pass   # already gone: forgetting it is all that is left


def broker_error(exc: Exception, parameters: pika.ConnectionParameters, doing: str, **details) -> IntroservError:
    """What a failure of RabbitMQ itself means to the caller: a refused login or right, or the broker away."""
    login = parameters.credentials.username
    if isinstance(exc, (AuthenticationError, ProbableAuthenticationError)):
        return Forbidden("forbidden", f"RabbitMQ refused the login {login!r} (wrong user or password).",
                         details={"login": login, **details})
    if isinstance(exc, ProbableAccessDeniedError) or (
            isinstance(exc, ChannelClosedByBroker) and exc.reply_code == _ACCESS_REFUSED):
        return Forbidden("forbidden", f"RabbitMQ does not let {login!r} do this: {exc}",
                         details={"login": login, **details})
    broker = f"{parameters.host}:{parameters.port} (vhost {parameters.virtual_host})"
    reason = "; ".join(str(arg) or repr(arg) for arg in exc.args) or type(exc).__name__   # pika's str() is often ""
    return BrokerUnavailable(message=f"RabbitMQ at {broker} failed while {doing}: {reason}",
                             details={"broker": broker, **details})
