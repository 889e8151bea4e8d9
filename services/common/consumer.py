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
    """RPC requests, consumed through :class:`ResilientQueueConsumer`."""

    queue_consumer = ResilientQueueConsumer()
