"""Event handlers that retry with backoff and finally dead-letter, never drop.

Nameko acks and drops an event whose handler raised (or, with ``requeue_on_error``,
redelivers it at once, forever). :func:`handle_event` instead republishes a failed event
to ``<queue>.retry`` with a growing per-message TTL; the retry queue dead-letters it back
to the handler's queue when the TTL expires. After ``EVENT_MAX_ATTEMPTS`` it goes to
``<queue>.dead``, where an operator lists and replays it (``introserv-ops deadletters``, clients/).
The message behind it is never blocked: the failed one is acked once it is safely parked.
"""
from __future__ import annotations

import structlog
from amqp.exceptions import NotFound as QueueMissing
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler

from services.common.config import env_float, env_int
from services.common.consumer import ResilientQueueConsumer
from services.common.metrics import EVENTS

log = structlog.get_logger(__name__)

ATTEMPTS_HEADER = "x-attempts"
DEFAULT_EXCHANGE = Exchange("", type="direct")


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


def retry_queue(queue_name: str) -> Queue:
    return Queue(f"{queue_name}.retry", exchange=DEFAULT_EXCHANGE, routing_key=f"{queue_name}.retry",
                 durable=True, queue_arguments={"x-dead-letter-exchange": "",
                                                "x-dead-letter-routing-key": queue_name})


def dead_letter_queue(queue_name: str) -> Queue:
    return Queue(f"{queue_name}.dead", exchange=DEFAULT_EXCHANGE, routing_key=f"{queue_name}.dead",
                 durable=True)


class ReliableEventHandler(EventHandler):
    queue_consumer = ResilientQueueConsumer()   # an ack lost to a broker restart is redelivered, not fatal

    def setup(self):
        super().setup()
        name = self.queue.name
        self.retry = retry_queue(name)
        self.dead = dead_letter_queue(name)
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
                self.parking.publish(message.payload, exchange=DEFAULT_EXCHANGE,
                                     routing_key=self.retry.name, headers=headers,
                                     expiration=delay, message_id=message.properties.get("message_id"))
                self.count("retried")
            else:
                headers["x-error"] = error
                headers["x-original-queue"] = self.queue.name
                log.error("event handler failed for good; dead-lettered", queue=self.queue.name,
                          attempts=attempts, error=error)
                self.parking.publish(message.payload, exchange=DEFAULT_EXCHANGE,
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
