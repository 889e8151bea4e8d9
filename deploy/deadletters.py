"""The operator's view of events that failed for good: list them, replay them.

An event handler that still fails after ``EVENT_MAX_ATTEMPTS`` parks the event in
``<queue>.dead`` (services/common/events.py) with the error and its original queue in the
headers. This tool speaks AMQP only (no management plugin needed); it finds the queues from
the services' own event handlers, so it knows every dead-letter queue there can be.

    python -m deploy.deadletters list [--queue NAME]           # what is parked, and why
    python -m deploy.deadletters replay --queue NAME [--id ID]  # back to its handler, attempts reset
    python -m deploy.deadletters replay --all

``AMQP_URI`` chooses the broker (and vhost), as for the services. Replaying sends the event to
the handler's queue as it was; the handler's processed-message record keeps a second effect away.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys

from kombu import Connection
from amqp.exceptions import NotFound as QueueMissing
from nameko.events import SERVICE_POOL, EventHandler

from services.common.config import SERVICES, amqp_uri
from services.common.events import ATTEMPTS_HEADER, DEFAULT_EXCHANGE


def handler_queues() -> list[str]:
    """The queue of every event handler of every service (nameko's names for service-pool handlers)."""
    names = []
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.service")
        cls = getattr(module, f"{service.capitalize()}Service")
        for method_name, method in inspect.getmembers(cls, inspect.isfunction):
            for entrypoint in getattr(method, "nameko_entrypoints", ()):
                if isinstance(entrypoint, EventHandler) and entrypoint.handler_type == SERVICE_POOL:
                    names.append(f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{cls.name}.{method_name}")
    return sorted(names)


def dead_count(connection: Connection, queue: str) -> int | None:
    """How many events wait in ``<queue>.dead``; None when the queue was never declared."""
    channel = connection.channel()
    try:
        _, count, _ = channel.queue_declare(f"{queue}.dead", passive=True)
        return count
    except QueueMissing:
        return None
    finally:
        try:
            channel.close()
        except Exception:  # a passive declare of a missing queue closes the channel already
            pass


def _queue_exists(connection: Connection, name: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(name, passive=True)
        return True
    except QueueMissing:
        return False
    finally:
        try:
            channel.close()
        except Exception:  # already closed by the broker's refusal
            pass


def parked(connection: Connection, queue: str) -> list[dict]:
    """The parked events of ``queue``, oldest first; they stay parked (read, then given back)."""
    channel = connection.channel()
    messages, items = [], []
    try:
        while True:
            message = channel.basic_get(f"{queue}.dead", no_ack=False)
            if message is None:
                break
            messages.append(message)
            headers = message.headers or {}
            items.append({"queue": queue, "id": message.properties.get("message_id"),
                          "attempts": int(headers.get(ATTEMPTS_HEADER, 1)) - 1, "error": headers.get("x-error"),
                          "payload": json.loads(message.body)})
    finally:
        channel.close()  # unacked messages go back to the queue, in their order
    return items


def replay(connection: Connection, queue: str, message_id: str | None = None) -> int:
    """Send parked events (all, or the one with ``message_id``) back to their handler's queue."""
    channel = connection.channel()
    producer = connection.Producer(channel=channel)
    replayed = 0
    try:
        seen = []
        while True:
            message = channel.basic_get(f"{queue}.dead", no_ack=False)
            if message is None:
                break
            if message_id is not None and message.properties.get("message_id") != message_id:
                seen.append(message)
                continue
            headers = {k: v for k, v in (message.headers or {}).items()
                       if k not in (ATTEMPTS_HEADER, "x-error", "x-original-queue")}
            target = (message.headers or {}).get("x-original-queue", queue)
            if not _queue_exists(connection, target):
                seen.append(message)  # no handler queue to take it (yet): it stays parked, never dropped
                continue
            producer.publish(message.body, exchange=DEFAULT_EXCHANGE, routing_key=target, headers=headers,
                             content_type=message.content_type, content_encoding=message.content_encoding,
                             message_id=message.properties.get("message_id"), delivery_mode=2)
            channel.basic_ack(message.delivery_tag)
            replayed += 1
    finally:
        channel.close()  # what was not replayed goes back to the dead-letter queue
    return replayed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.deadletters")
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--queue", help="a handler's queue, e.g. evt-orders-order_created--notifier.order_created")
    parser.add_argument("--id", help="replay only the event with this message id")
    parser.add_argument("--all", action="store_true", help="replay every parked event of every queue")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    args = parser.parse_args(argv)
    queues = [args.queue] if args.queue else handler_queues()
    if args.command == "replay" and not (args.queue or args.all):
        parser.error("replay needs --queue NAME or --all")
    with Connection(amqp_uri()) as connection:
        if args.command == "list":
            for queue in queues:
                if not dead_count(connection, queue):
                    continue
                for item in parked(connection, queue):
                    if args.json:
                        print(json.dumps(item))
                    else:
                        print(f"{item['queue']}  {item['id']}  attempts={item['attempts']}  {item['error']}")
        else:
            total = sum(replay(connection, queue, args.id) for queue in queues if dead_count(connection, queue))
            print(f"replayed {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
