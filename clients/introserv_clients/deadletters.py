"""Events that failed for good: list them, look at one, send them back to their handler.

A service's event handler that still fails after its retries parks the event in
``<queue>.dead``, with ``x-error``, ``x-attempts`` and ``x-original-queue`` in its headers
(services/common/events.py). This module speaks plain AMQP (no management plugin), so it needs
the names of the handlers' queues: :data:`HANDLER_QUEUES`, which a test checks against the
services' own event handlers. Replaying publishes the event to its handler's queue as it was,
attempts reset; the handler's processed-message record keeps a second effect away.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import pika
from pika.exceptions import AMQPChannelError, AMQPConnectionError, ChannelClosedByBroker, UnroutableError

from introserv_clients.rpc import broker_error

ATTEMPTS_HEADER = "x-attempts"
ERROR_HEADER = "x-error"
ORIGINAL_QUEUE_HEADER = "x-original-queue"
_NOT_FOUND = 404

# Nameko's name of a service-pool event handler's queue: evt-<source>-<event type>--<service>.<method>
HANDLER_QUEUES = (
    "evt-ledger-balance_changed--orders.on_balance_changed",
    "evt-ledger-balance_low--notifier.balance_low",
    "evt-ledger-balance_running_out--notifier.balance_running_out",
    "evt-ledger-invoice_issued--ledger_documents.on_invoice_issued",
    "evt-ledger-invoice_pdf_ready--notifier.invoice_pdf_ready",
    "evt-ledger-monthly_statement--notifier.monthly_statement",
    "evt-ledger-refund_issued--notifier.refund_issued",
    "evt-orders-order_activated--notifier.order_activated",
    "evt-orders-order_cancelled--notifier.order_cancelled",
    "evt-orders-order_closed--notifier.order_closed",
    "evt-orders-order_created--notifier.order_created",
    "evt-orders-order_overdue--notifier.order_overdue",
    "evt-orders-order_plan_changed--notifier.order_plan_changed",
    "evt-orders-order_renewed--notifier.order_renewed",
    "evt-orders-order_suspended--notifier.order_suspended",
    "evt-orders-renewal_due--notifier.renewal_due",
    "evt-profile-account_frozen--notifier.account_frozen",
    "evt-profile-account_registered--ledger.on_account_registered",
    "evt-profile-account_registered--notifier.remember_registration",
    "evt-profile-account_registered--orders.on_account_registered",
    "evt-profile-company_reviewed--ledger.on_company_reviewed",
    "evt-profile-company_reviewed--orders.on_company_reviewed",
    "evt-profile-country_changed--ledger.on_country_changed",
    "evt-profile-country_changed--orders.on_country_changed",
    "evt-profile-email_changed--notifier.email_changed",
    "evt-profile-email_changed--notifier.remember_new_email",
    "evt-profile-email_confirmation_requested--notifier.email_confirmation_requested",
    "evt-profile-ip_restriction_changed--notifier.ip_restriction_changed",
    "evt-profile-new_ip_login--notifier.new_ip_login",
    "evt-profile-notification_settings_changed--ledger.on_notification_settings_changed",
    "evt-profile-notification_settings_changed--notifier.remember_consent",
    "evt-profile-password_changed--notifier.password_changed",
    "evt-profile-password_reset_requested--notifier.password_reset_requested",
    "evt-profile-phone_changed--notifier.phone_changed",
    "evt-profile-profile_changed--ledger.on_profile_changed",
    "evt-profile-profile_changed--notifier.remember_profile_change",
    "evt-profile-profile_changed--orders.on_profile_changed",
    "evt-profile-security_code_set--notifier.security_code_set",
    "evt-profile-sessions_ended--notifier.sessions_ended",
    "evt-profile-two_factor_disabled--notifier.two_factor_disabled",
    "evt-profile-two_factor_enabled--notifier.two_factor_enabled",
    "evt-verification-phone_verified--profile.on_phone_verified",
)


@dataclass
class ParkedEvent:
    """One event in a dead-letter queue: its handler's queue, message id, failed attempts, last error."""

    queue: str
    id: str | None
    attempts: int
    error: str | None
    payload: object

    def to_dict(self) -> dict:
        return asdict(self)


class DeadLetters:
    """``with DeadLetters(amqp_uri) as dead: dead.parked(queue)``: one AMQP connection for the work."""

    def __init__(self, amqp_uri: str):
        self.parameters = pika.URLParameters(amqp_uri)
        self.parameters.client_properties = {"connection_name": "dead letters (introserv-clients)"}
        self.connection = None

    def __enter__(self) -> DeadLetters:
        try:
            self.connection = pika.BlockingConnection(self.parameters)
        except (AMQPConnectionError, OSError) as exc:
            raise broker_error(exc, self.parameters, "connecting") from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self.connection is not None and self.connection.is_open:
            try:
                self.connection.close()
            except (AMQPConnectionError, OSError):
                pass

    def waiting(self, queue: str) -> int | None:
        """How many events wait in ``<queue>.dead``; None when the queue was never declared."""
        channel = self.connection.channel()
        try:
            return channel.queue_declare(f"{queue}.dead", passive=True).method.message_count
        except ChannelClosedByBroker as exc:
            if exc.reply_code == _NOT_FOUND:
                return None
            raise broker_error(exc, self.parameters, "reading dead letters") from None
        finally:
            if channel.is_open:
                channel.close()

    def counts(self, queues: Iterable[str] = HANDLER_QUEUES) -> dict[str, int]:
        """Each queue with events parked, and how many."""
        return {queue: count for queue in queues if (count := self.waiting(queue))}

    def parked(self, queue: str) -> list[ParkedEvent]:
        """The parked events of ``queue``, oldest first; they stay parked (read, then given back)."""
        if not self.waiting(queue):
            return []
        channel = self.connection.channel()
        events = []
        try:
            while True:
                method, properties, body = channel.basic_get(f"{queue}.dead", auto_ack=False)
                if method is None:
                    break
                events.append(_parked(queue, properties, body))
        finally:
            channel.close()   # unacknowledged, every one goes back to the dead-letter queue, in its order
        return events

    def find(self, message_id: str, queues: Iterable[str] = HANDLER_QUEUES) -> ParkedEvent | None:
        for queue in queues:
            for event in self.parked(queue):
                if event.id == message_id:
                    return event
        return None

    def replay(self, queue: str, message_id: str | None = None,
               on_replayed: Callable[[ParkedEvent], None] | None = None) -> int:
        """Send parked events of ``queue`` (all, or the one with ``message_id``) back to their handler's
        queue, attempts reset; answers how many. An event whose handler's queue is gone stays parked."""
        if not self.waiting(queue):
            return 0
        channel = self.connection.channel()
        channel.confirm_delivery()
        count = 0
        try:
            while True:
                method, properties, body = channel.basic_get(f"{queue}.dead", auto_ack=False)
                if method is None:
                    break
                if message_id is not None and properties.message_id != message_id:
                    continue   # not this one: given back when the channel closes
                headers = dict(properties.headers or {})
                target = headers.pop(ORIGINAL_QUEUE_HEADER, None) or queue
                headers.pop(ATTEMPTS_HEADER, None)
                headers.pop(ERROR_HEADER, None)
                again = pika.BasicProperties(content_type=properties.content_type,
                                             content_encoding=properties.content_encoding,
                                             message_id=properties.message_id, headers=headers, delivery_mode=2)
                try:
                    channel.basic_publish("", target, body, again, mandatory=True)
                except UnroutableError:
                    continue   # no handler queue to take it (yet): it stays parked, never dropped
                channel.basic_ack(method.delivery_tag)
                count += 1
                if on_replayed is not None:
                    on_replayed(_parked(queue, properties, body))
        except (AMQPConnectionError, AMQPChannelError) as exc:
            raise broker_error(exc, self.parameters, "replaying dead letters") from None
        finally:
            if channel.is_open:
                channel.close()   # what was not replayed goes back to the dead-letter queue
        return count


def _parked(queue: str, properties, body: bytes) -> ParkedEvent:
    headers = properties.headers or {}
    try:
        payload = json.loads(body)
    except ValueError:
        payload = body.decode("utf-8", "replace")
    return ParkedEvent(queue=queue, id=properties.message_id, attempts=int(headers.get(ATTEMPTS_HEADER, 1)) - 1,
                       error=_text(headers.get(ERROR_HEADER)), payload=payload)


def _text(value) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
