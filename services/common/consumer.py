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
from nameko.messaging import QueueConsumer
from nameko.rpc import ReplyListener, RpcConsumer

log = structlog.get_logger(__name__)


class ResilientQueueConsumer(QueueConsumer):
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
    """RPC replies, consumed through :class:`ResilientQueueConsumer` like everything else."""

    queue_consumer = ResilientQueueConsumer()


class ResilientRpcConsumer(RpcConsumer):
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
