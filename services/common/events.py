"""Event handlers that retry with backoff and finally dead-letter, never drop.

Nameko acks and drops an event whose handler raised (or, with ``requeue_on_error``,
redelivers it at once, forever). :func:`handle_event` instead republishes a failed event
to ``<queue>.delayed`` with a growing per-message TTL; that queue dead-letters it back to
the handler's queue when the TTL expires. Every hop goes through the service's own
``<service>.parking`` exchange, never the default exchange: a login that may publish to the
default exchange (or declare a queue that dead-letters to it) can put a message into any
queue by its name, a forged event included, so none may. After ``EVENT_MAX_ATTEMPTS`` it goes to
``<queue>.dead``, where an operator lists and replays it (``introserv-ops deadletters``, clients/).
The message behind it is never blocked: the failed one is acked once it is safely parked.
"""
from __future__ import annotations

import structlog
from amqp.exceptions import NotFound as QueueMissing
from kombu import Connection, Exchange, Queue, binding
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler

from services.common.config import env_float, env_int
from services.common.consumer import ResilientQueueConsumer
from services.common.metrics import EVENTS

log = structlog.get_logger(__name__)

ATTEMPTS_HEADER = "x-attempts"


def backoff(attempt: int, first: float, longest: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``first``, doubling, at most ``longest``.

    Every retry schedule is this one, with its own two numbers (events here, mail in the notifier).
    """
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    return float(min(first * 2 ** (attempt - 1), longest))


def retry_delay(attempt: int) -> float:
    """Seconds before an event handler's retry number ``attempt``: 1, 2, 4, ... at most 60 (configurable)."""
    return backoff(attempt, env_float("EVENT_RETRY_BASE_SECONDS", 1.0), env_float("EVENT_RETRY_MAX_SECONDS", 60.0))


def parking_exchange(service: str) -> Exchange:
    return Exchange(f"{service}.parking", type="direct", durable=True)


def retry_queue(queue_name: str, exchange: Exchange) -> Queue:
    # Not "<queue>.retry": queues of that name dead-letter through the default exchange, and a
    # queue cannot be declared again with other arguments.
    return Queue(f"{queue_name}.delayed", exchange=exchange, routing_key=f"{queue_name}.delayed",
                 durable=True, queue_arguments={"x-dead-letter-exchange": exchange.name,
                                                "x-dead-letter-routing-key": queue_name})


def dead_letter_queue(queue_name: str, exchange: Exchange) -> Queue:
    return Queue(f"{queue_name}.dead", exchange=exchange, routing_key=f"{queue_name}.dead", durable=True)


class ReliableEventHandler(EventHandler):
    queue_consumer = ResilientQueueConsumer()   # an ack lost to a broker restart is redelivered, not fatal

    def setup(self):
        super().setup()
        name = self.queue.name
        self.parking_exchange = parking_exchange(self.container.service_name)
        self.retry = retry_queue(name, self.parking_exchange)
        self.dead = dead_letter_queue(name, self.parking_exchange)
        # An expired retry comes back to the handler's queue through the parking exchange. (kombu
        # declares a queue with bindings of its own through those only: the event's binding too.)
        event = self.queue
        self.queue = Queue(name, bindings=[binding(event.exchange, routing_key=event.routing_key),
                                           binding(self.parking_exchange, routing_key=name)],
                           durable=event.durable, auto_delete=event.auto_delete, exclusive=event.exclusive)
        self.max_attempts = env_int("EVENT_MAX_ATTEMPTS", 6)
        self.parking = Publisher(self.container.config["AMQP_URI"], use_confirms=True,
                                 declare=[self.retry, self.dead])

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            self.count("handled")
            return
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 1))
        headers = dict(message.headers or {})
        headers[ATTEMPTS_HEADER] = attempts + 1
        error = f"{exc_info[0].__name__}: {exc_info[1]}"[:500]
        try:
            if attempts < self.max_attempts:
                delay = retry_delay(attempts)
                log.warning("event handler failed; retrying", queue=self.queue.name,
                            attempt=attempts, retry_in=delay, error=error)
                self.parking.publish(message.payload, exchange=self.parking_exchange,
                                     routing_key=self.retry.name, headers=headers,
                                     expiration=delay, message_id=message.properties.get("message_id"))
                self.count("retried")
            else:
                headers["x-error"] = error
                headers["x-original-queue"] = self.queue.name
                log.error("event handler failed for good; dead-lettered", queue=self.queue.name,
                          attempts=attempts, error=error)
                self.parking.publish(message.payload, exchange=self.parking_exchange,
                                     routing_key=self.dead.name, headers=headers,
                                     message_id=message.properties.get("message_id"))
                self.count("dead_lettered")
        except Exception as exc:  # KombuError, amqp's connection errors, OSError: none may kill the service
            # Could not park it: give it back to the broker rather than lose it.
            log.error("could not park a failed event; requeueing", error=repr(exc))
            self.queue_consumer.requeue_message(message)
            self.count("requeued")
            return
        self.queue_consumer.ack_message(message)

    def count(self, outcome: str) -> None:
        EVENTS.labels(self.container.service_name, self.queue.name, outcome).inc()


def dead_letters_waiting(handlers: list[ReliableEventHandler]) -> dict[str, int]:
    """Events waiting in each handler's ``<queue>.dead`` (0 for one never declared), for ``/metrics``.

    One connection and a passive declare per queue: it asks the broker for the count and
    creates nothing.
    """
    waiting = {}
    with Connection(handlers[0].container.config["AMQP_URI"], connect_timeout=2) as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        channel = connection.channel()
        for handler in handlers:
            try:
                _, waiting[handler.queue.name], _ = channel.queue_declare(handler.dead.name, passive=True)
            except QueueMissing:
                waiting[handler.queue.name] = 0  # nothing was ever dead-lettered there
                channel = connection.channel()  # the broker closed the last one with its 404
    return waiting


handle_event = ReliableEventHandler.decorator
