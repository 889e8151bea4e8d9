"""The queue consumer every entrypoint and reply listener shares, made to outlive a broker restart.

Nameko's ``QueueConsumer`` acks a message after its worker finished and lets a socket error
from that ack escape (it only catches amqp's own ``ConnectionError``). When RabbitMQ goes
away while a worker runs, the ack meets ``ConnectionResetError`` and the error kills the
whole container: the process exits and the service is gone until someone starts it again.

Here such an ack or requeue is given up instead. The broker returns an unacknowledged
message to its queue when the connection drops, so it is delivered again once the consumer
has reconnected; every handler is idempotent (processed-message records, idempotency keys).
"""
from __future__ import annotations

import structlog
from amqp.exceptions import AMQPError
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, LOGIN_METHOD_CONFIG_KEY
from nameko.messaging import QueueConsumer
from nameko.rpc import ReplyListener, Responder, RpcConsumer, get_rpc_exchange

from services.common.publisher import KeptOpenPublisher

log = structlog.get_logger(__name__)


class ResilientQueueConsumer(QueueConsumer):
    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            # Read when the consumer starts (basic.consume), after this callback returns.
            consumer.no_ack = getattr(provider, "auto_ack", False)
        return consumers

    def ack_message(self, message):
        try:
            super().ack_message(message)
        except (AMQPError, OSError) as exc:
            log.warning("could not ack a message; the broker will deliver it again", error=repr(exc))

    def requeue_message(self, message):
        try:
            super().requeue_message(message)
        except (AMQPError, OSError) as exc:
            log.warning("could not requeue a message; the broker will deliver it again", error=repr(exc))


class ResilientReplyListener(ReplyListener):
    """RPC replies, consumed through :class:`ResilientQueueConsumer` like everything else, without
    acks: the broker counts a reply delivered as it sends it. A reply is transient and its queue
    lives only as long as this process, so an ack would guard nothing; it cost every call a frame
    written before its waiting worker was woken (Nameko's listener acks first), and kombu makes
    that ack a no-op for such a consumer."""

    queue_consumer = ResilientQueueConsumer()
    auto_ack = True


# AMQP delivery mode 1: kept in memory only, never written to the broker's disk.
TRANSIENT = 1


class ReplyPublisher(KeptOpenPublisher):
    """An RPC reply: transient and unconfirmed, on a connection kept open. The caller waits for it
    with a timeout and its request is acked only after the reply was handed over: a reply lost with
    a broker restart costs a retry the timeout already covers, and persisting it (an fsync) or
    waiting for the broker's confirm would cost every call a wait for nothing."""

    use_confirms = False
    delivery_mode = TRANSIENT


class ReplyResponder(Responder):
    publisher_cls = ReplyPublisher


class TransientReplies(RpcConsumer):
    """Nameko's RPC consumer, its replies sent by :class:`ReplyPublisher`."""

    def handle_result(self, message, result, exc_info):
        # nameko's RpcConsumer.handle_result, with our responder
        config = self.container.config
        responder = ReplyResponder(config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                                   config.get("serializer", "json"), message,
                                   ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class ResilientRpcConsumer(TransientReplies):
    """RPC requests, consumed through :class:`ResilientQueueConsumer`, whose replies cannot kill the service.

    Nameko lets a reply's publish error escape (from a worker, or from a refusal before any
    worker, such as ``forbidden``): it would kill the whole container. The reply is given up
    instead (the caller has its timeout); the request, never acked, is redelivered by the
    broker or expires with its TTL.
    """

    queue_consumer = ResilientQueueConsumer()

    def handle_result(self, message, result, exc_info):
        try:
            return super().handle_result(message, result, exc_info)
        except Exception as exc:  # kombu, amqp (not builtin ConnectionError subclasses) and socket errors alike
            log.warning("could not send an RPC reply; the broker is away", error=repr(exc))
            return result, exc_info

