"""Nameko's publisher on connections kept open: an RPC request or reply without kombu's per-message setup.

Nameko's :class:`~nameko.amqp.publish.Publisher` builds a kombu ``Connection`` for every message
(its address parsed again), looks up a producer pool by it, revives a producer on a pooled
channel and wraps the publish in kombu's retry: about 150 microseconds of CPU a message on this
machine, before a byte is written (py-spy on the gateway during reads: nameko's publish 23 % of
its samples, the socket write and the confirm 11 % of them). Every read is two such messages
(the gateway's request, the service's reply), a payment and an order more.

:class:`KeptOpenPublisher` publishes the same message, with the same properties, headers and
body, on a channel it borrows from :data:`CHANNELS` (one channel per connection, lent to one
publish at a time, at most :data:`LENT_AT_ONCE` per broker address and confirm mode, as kombu's
pool). When the connection fails (a broker restart, a socket closed under it), that connection
and every idle one beside it are dropped and the message goes out through Nameko's own publish,
with kombu's reconnect and retries; the next message opens a new connection. A caller's timeout
in the middle of a publish drops the connection too. What the broker says about the message itself keeps its meaning: an unroutable
mandatory message is :class:`~nameko.amqp.publish.UndeliverableMessage` (the caller's
``UnknownService``), a refusal (``AccessRefused``, ``PreconditionFailed``) is raised as it is,
and the channel it closed is not lent again.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict

from amqp.exceptions import ChannelError, RecoverableConnectionError
from eventlet.semaphore import Semaphore
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.serialization import dumps
from nameko.amqp.publish import Publisher, UndeliverableMessage

# Publish arguments that are not the message's AMQP properties.
NOT_PROPERTIES = frozenset({"headers", "exchange", "routing_key", "serializer", "delivery_mode", "priority",
                            "compression", "retry", "retry_policy", "transport_options", "declare"})
# As many lent at once per broker address and confirm mode as kombu's producer pool lends.
LENT_AT_ONCE = 10


class OpenChannels:
    """The process's open publishing channels, by broker address and confirm mode."""

    def __init__(self, limit: int = LENT_AT_ONCE):
        self.limit = limit
        self._idle: dict[tuple, list[Connection]] = defaultdict(list)
        self._slots: dict[tuple, Semaphore] = {}
        self.opened = 0   # connections opened so far: tests count them

    @contextlib.contextmanager
    def lend(self, amqp_uri: str, confirms: bool, ssl=None, login_method=None):
        """A channel for one publish; its connection is kept for the next unless something failed."""
        key = (amqp_uri, confirms, repr(ssl), login_method)
        slots = self._slots.get(key) or self._slots.setdefault(key, Semaphore(self.limit))   # built once a key
        with slots:
            idle = self._idle[key]
            connection = idle.pop() if idle else self._open(amqp_uri, confirms, ssl, login_method)
            try:
                yield connection.default_channel
            except ChannelError:
                # Closed by the broker, or with a confirm still unread after a returned message: the
                # next publish on it could read this one's confirm as its own.
                connection.collect()
                raise
            except BaseException:
                connection.collect()
                self.forget(key)     # a connection's trouble is usually every idle one's (a broker restart)
                raise
            self._idle[key].append(connection)

    def _open(self, amqp_uri: str, confirms: bool, ssl, login_method) -> Connection:
        self.opened += 1
        # One attempt: when it fails, Nameko's publish has the retries.
        return Connection(amqp_uri, ssl=ssl, login_method=login_method, connect_timeout=5,
                          transport_options={"confirm_publish": confirms, "max_retries": 0})

    def forget(self, key: tuple | None = None) -> None:
        """Drop idle connections (all of them without ``key``) without a word to the broker."""
        for each in [key] if key is not None else list(self._idle):
            for connection in self._idle.pop(each, []):
                connection.collect()


CHANNELS = OpenChannels()


class KeptOpenPublisher(Publisher):
    """Nameko's :class:`Publisher`, publishing on a channel of :data:`CHANNELS`; see the module."""

    def publish(self, payload, **kwargs):
        if self.declare or "declare" in kwargs or self.compression:
            return super().publish(payload, **kwargs)   # RPC needs neither: Nameko's way
        unchanged = dict(kwargs)
        headers = self.publish_kwargs.get("headers", {}).copy()
        headers.update(kwargs.pop("headers", {}))
        headers.update(kwargs.pop("extra_headers", {}))
        confirms = kwargs.pop("use_confirms", self.use_confirms)
        mandatory = kwargs.pop("mandatory", self.mandatory)
        expiration = kwargs.pop("expiration", self.expiration)
        exchange = kwargs.pop("exchange", self.publish_kwargs.get("exchange"))
        routing_key = kwargs.pop("routing_key", self.publish_kwargs.get("routing_key"))
        properties = {key: value for key, value in {**self.publish_kwargs, **kwargs}.items()
                      if key not in NOT_PROPERTIES}
        properties["delivery_mode"] = kwargs.get("delivery_mode", self.delivery_mode)
        if expiration is not None:
            properties["expiration"] = str(int(expiration * 1000))   # as kombu writes it
        content_type, content_encoding, body = dumps(payload, kwargs.get("serializer", self.serializer))
        try:
            with CHANNELS.lend(self.amqp_uri, confirms, self.ssl, self.login_method) as channel:
                message = channel.prepare_message(body, kwargs.get("priority", self.priority), content_type,
                                                  content_encoding, headers, properties)
                channel.basic_publish(message, exchange=getattr(exchange, "name", exchange) or "",
                                      routing_key=routing_key or "", mandatory=mandatory)
        except ChannelError as refused:
            if "NO_ROUTE" in str(refused):
                raise UndeliverableMessage() from None
            raise
        except (OSError, RecoverableConnectionError, ConnectionError, OperationalError):
            # The connection, not the message: Nameko's publish reconnects and retries it.
            return super().publish(payload, **unchanged)
