"""A broker that goes away while a worker runs must not take the service down with it."""
from __future__ import annotations

import pytest
from nameko.containers import ServiceContainer
from nameko.messaging import QueueConsumer
from structlog.testing import capture_logs

from gateway.service import Gateway
from services.common.consumer import ResilientQueueConsumer
from services.ledger.documents.service import LedgerDocumentsService
from services.ledger.service import LedgerService
from services.notifier.service import NotifierService
from services.orders.service import OrdersService
from services.profile.service import ProfileService
from services.verification.service import VerificationService


class _Channel:
    connection = object()   # alive as far as the consumer can tell: the socket has just been reset


class _MessageOnAResetSocket:
    channel = _Channel()

    def ack(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    requeue = ack


def test_nameko_s_own_consumer_lets_a_reset_socket_escape_from_an_ack():
    # What killed a whole service during a RabbitMQ restart (the fault suite's broker test).
    with pytest.raises(ConnectionResetError):
        QueueConsumer().ack_message(_MessageOnAResetSocket())


def test_an_ack_or_requeue_on_a_reset_socket_is_given_up_for_the_broker_to_redeliver():
    consumer = ResilientQueueConsumer()
    with capture_logs() as logged:
        consumer.ack_message(_MessageOnAResetSocket())      # returns: the worker's service lives on
        consumer.requeue_message(_MessageOnAResetSocket())
    assert [(entry["log_level"], entry["event"]) for entry in logged] == [
        ("warning", "could not ack a message; the broker will deliver it again"),
        ("warning", "could not requeue a message; the broker will deliver it again")]


@pytest.mark.parametrize("service", [Gateway, LedgerService, LedgerDocumentsService, NotifierService, OrdersService,
                                     ProfileService, VerificationService])
def test_every_consumer_of_every_service_is_the_resilient_one(service):
    container = ServiceContainer(service, {"AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/"})
    consumers = {type(extension) for extension in container.extensions if isinstance(extension, QueueConsumer)}
    assert ResilientQueueConsumer in consumers   # the gateway's session events have one of their own, a subclass
    assert all(issubclass(consumer, ResilientQueueConsumer) for consumer in consumers)
