"""The ledger and its document worker over real RabbitMQ and a real database: each invoice's PDF is
rendered once by the worker, announced once, and downloaded from the ledger without rendering there.

Run on PostgreSQL with ``TEST_DATABASE=postgres`` for the race between the event's rendering and a
download's; on SQLite it still passes, one writer at a time.
"""
from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections import Counter

import pytest

from services.common.errors import DomainError
from services.ledger.documents.service import LedgerDocumentsService
from services.ledger.service import LedgerService
from tests.fakes import FakeProfile
from tests.integration.test_ledger_service import eur, ledger_events

pytestmark = pytest.mark.integration

PROFILE = FakeProfile(anyone=True, language="pl")


def pdf_ready(events) -> list[dict]:
    return [payload for kind, payload in events if kind == "invoice_pdf_ready"]


def issue(rpc_as, count: int) -> tuple[str, list[str]]:
    """A paid account and its invoices: money from the payment system, charges from the orders service."""
    account = f"acct-{uuid.uuid4()}"
    rpc_as("payments").ledger.credit_payment(account, eur("100.00"), "pay", "P-1")
    invoices = [rpc_as("orders").ledger.charge(account, eur("1.00"), f"c{n}", f"order-{n}", "VPS S")["invoice_id"]
                for n in range(count)]
    return account, invoices


def test_each_invoice_is_announced_once_with_its_pdf_and_downloads_read_the_same_bytes(run_service, rpc_client,
                                                                                      rpc_as, amqp_uri):
    run_service(PROFILE.service())
    run_service(LedgerService, OUTBOX_POLL_SECONDS="0.2")
    run_service(LedgerDocumentsService)
    with ledger_events(amqp_uri) as collect:
        account, invoices = issue(rpc_as, 10)
        # Downloads race the worker's own rendering of the same invoices.
        replies = [rpc_client.ledger.get_invoice_pdf.call_async(invoice_id, account) for invoice_id in invoices]
        downloads = [reply.result() for reply in replies]
        events = collect(20, until=lambda seen: len(pdf_ready(seen)) >= len(invoices))
        time.sleep(1)   # a second announcement would be on its way by now
        events = collect(0.5)
    ready = pdf_ready(events)
    assert Counter(e["invoice_id"] for e in ready) == Counter(invoices)
    by_invoice = {e["invoice_id"]: e for e in ready}
    for invoice_id, download in zip(invoices, downloads):
        content = base64.b64decode(download["content"])
        assert content.startswith(b"%PDF")
        assert hashlib.sha256(content).hexdigest() == download["sha256"] == by_invoice[invoice_id]["sha256"]
        assert rpc_client.ledger.get_invoice_pdf(invoice_id) == download   # the same bytes every time


def test_with_the_worker_away_a_download_is_unavailable_and_the_ledger_renders_nothing(run_service, rpc_client,
                                                                                      rpc_as):
    run_service(PROFILE.service())
    run_service(LedgerService, OUTBOX_POLL_SECONDS="0.2", RPC_TIMEOUT="2")
    account, [invoice_id] = issue(rpc_as, 1)
    started = time.monotonic()
    with pytest.raises(DomainError) as refused:
        rpc_client.ledger.get_invoice_pdf(invoice_id, account)
    assert refused.value.error_code == "service_unavailable" and time.monotonic() - started < 5
    run_service(LedgerDocumentsService)   # back: it renders what it missed, and the download works
    content = base64.b64decode(rpc_client.ledger.get_invoice_pdf(invoice_id, account)["content"])
    assert content.startswith(b"%PDF")


def test_the_worker_gives_the_notifier_the_pdf_the_ledger_gives_and_no_other_customers(run_service, rpc_as):
    run_service(PROFILE.service())
    run_service(LedgerService, OUTBOX_POLL_SECONDS="0.2")
    run_service(LedgerDocumentsService)
    account, [first, second] = issue(rpc_as, 2)
    notifier = rpc_as("notifier")
    # Asked before or after its event rendered it, the worker answers the stored PDF: the ledger's bytes.
    given = [notifier.ledger_documents.get_invoice_pdf(invoice_id, account) for invoice_id in (first, second)]
    for answer in given:
        assert base64.b64decode(answer["content"]).startswith(b"%PDF")
        assert answer == notifier.ledger.get_invoice_pdf(answer["invoice_id"], account)
    with pytest.raises(DomainError) as refused:
        notifier.ledger_documents.get_invoice_pdf(first, f"acct-{uuid.uuid4()}")
    assert refused.value.error_code == "not_found"
    with pytest.raises(DomainError) as refused:   # the notifier's alone: the gateway asks the ledger
        rpc_as("gateway").ledger_documents.get_invoice_pdf(first, account)
    assert refused.value.error_code == "forbidden"
