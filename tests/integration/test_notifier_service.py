"""The notifier service in-process, fed real events over RabbitMQ, sending to the mail stand-in.

Profile, the ledger and its document worker are the shared fakes (tests/fakes.py) answering
``notification_settings`` and ``get_invoice_pdf``; the mail relay is the team's stand-in as its own process, broken on
purpose with ``PUT /control``. Retries wait on the shared clock, which the tests move.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from nameko.standalone.events import event_dispatcher

from services.common.clock import clock, move_clock
from services.common.errors import DomainError
from services.notifier.mailer import MAX_ATTEMPTS
from services.notifier.service import NotifierService
from tests.fakes import FakeLedger, FakeProfile, MailRelay
from tests.support import eventually

PDF = b"%PDF-1.4\n" + b"invoice body " * 50
PROFILE = FakeProfile()   # answers notification_settings for the customers the tests add
LEDGER = FakeLedger()     # answers get_invoice_pdf, as the ledger and as its document worker
LEDGER.invoice_pdfs["inv-77"] = PDF


@pytest.fixture(scope="module")
def relay():
    with MailRelay() as stand_in:
        yield stand_in


@pytest.fixture
def support_desk(rpc_as):
    """The help desk system: it sends support replies and abuse reports."""
    return rpc_as("support_desk")


@pytest.fixture
def mailbox(relay):
    relay.reset()
    yield relay
    relay.refuse("ok")


@pytest.fixture
def time_machine(tmp_path, monkeypatch):
    """``time_machine(seconds)`` moves this process's clock forward (the sender's backoff reads it)."""
    path = str(tmp_path / "clock")
    monkeypatch.setattr(clock, "offset_file", path)
    moved = {"seconds": 0.0}

    def forward(seconds):
        moved["seconds"] += seconds
        move_clock(path, moved["seconds"])
    return forward


@pytest.fixture
def notifier(without_documents, run_service):
    run_service(LEDGER.documents_service())
    return without_documents


@pytest.fixture
def without_documents(run_service, relay, amqp_uri, time_machine):
    """The notifier, profile and the ledger, without the ledger's document worker."""
    run_service(PROFILE.service())
    run_service(LEDGER.service())
    run_service(NotifierService, SMTP_PORT=relay.port, SMTP_TIMEOUT=5, RPC_TIMEOUT=2)
    return event_dispatcher({"AMQP_URI": amqp_uri, "serializer": "json"})


def customer(language: str = "en", newsletter: bool = False, **emails) -> str:
    """A customer profile knows; ``emails`` are its invoices, support and complaints addresses."""
    return PROFILE.add(language=language, newsletter=newsletter, emails=emails)


def main_email(account_id):
    return PROFILE.accounts[account_id]["email"]


def event(account_id, **fields):
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2026-11-29T10:00:00Z", "account_id": account_id,
            **fields}


def password_changed(account_id):
    return event(account_id, at="2026-11-29T10:00:00Z", ip_address="203.0.113.7")


def order_created(account_id):
    return event(account_id, order_id="ord-1042", plan_name="VPS S", period_months=1,
                 cost={"amount": "24.48", "currency": "EUR"}, status="active")


def sent(rpc_client, account_id):
    return rpc_client.notifier.list_sent(account_id)["items"]


def settled(rpc_client, account_id, count=1):
    """The list of sent mail once ``count`` messages are no longer pending."""
    def probe():
        items = sent(rpc_client, account_id)
        return items if len(items) >= count and all(i["state"] != "pending" for i in items) else None
    return eventually(probe)


# --- exactly once, to the right address ------------------------------------------------------------

def test_a_duplicated_event_sends_one_email(notifier, rpc_client, mailbox):
    account = customer()
    payload = password_changed(account)
    notifier("profile", "password_changed", payload)
    notifier("profile", "password_changed", payload)
    [item] = settled(rpc_client, account)
    time.sleep(2.5)  # another tick of the sender: nothing more goes out
    [mail] = mailbox.to(main_email(account))
    assert "password" in mail["subject"].lower()
    assert "203.0.113.7" in mail["text"]
    assert item["state"] == "sent" and item["to"] == main_email(account) and item["kind"] == "password_changed"
    assert len(sent(rpc_client, account)) == 1


def test_order_mail_goes_to_the_invoices_address_and_security_mail_to_the_main_one(notifier, rpc_client, mailbox):
    account = customer(invoices="billing@firma.example")
    notifier("orders", "order_created", order_created(account))
    notifier("profile", "password_changed", password_changed(account))
    items = settled(rpc_client, account, count=2)
    assert {(i["kind"], i["to"]) for i in items} == {("order_created", "billing@firma.example"),
                                                     ("password_changed", main_email(account))}
    [order_mail] = mailbox.to("billing@firma.example")
    assert "ord-1042" in order_mail["text"] and "24.48" in order_mail["text"]
    [security_mail] = mailbox.to(main_email(account))
    assert "ord-1042" not in security_mail["text"]


def test_the_email_changed_notice_goes_to_the_old_address(notifier, rpc_client, mailbox):
    account = customer()
    notifier("profile", "email_changed", event(account, old_email="old@example.com", new_email="new@example.com",
                                               at="2026-11-29T10:00:00Z"))
    [item] = settled(rpc_client, account)
    assert item["to"] == "old@example.com"
    assert len(mailbox.to("old@example.com")) == 1 and mailbox.to("new@example.com") == []


def test_a_change_confirmation_goes_to_the_new_address_in_the_customers_language(notifier, rpc_client, mailbox):
    account = customer(language="pl")
    notifier("profile", "email_confirmation_requested",
             event(account, to="nowy@example.com", token="tok-123", purpose="change", new_email="nowy@example.com"))
    [item] = settled(rpc_client, account)
    assert (item["kind"], item["to"]) == ("email_change_requested", "nowy@example.com")
    [mail] = mailbox.to("nowy@example.com")
    assert "tok-123" in mail["text"] and "Dzień dobry" in mail["text"]
    assert mailbox.to(main_email(account)) == []


def test_the_invoice_mail_waits_for_the_pdf_and_carries_it(notifier, rpc_client, mailbox):
    account = customer()
    given = LEDGER.pdfs_given.copy()
    invoice = dict(invoice_id="inv-77", number="2026/000123", kind="invoice",
                   gross={"amount": "24.48", "currency": "EUR"}, issued_at="2026-11-29T10:00:00Z",
                   order_id="ord-1042")
    notifier("ledger", "invoice_issued", event(account, **invoice))
    time.sleep(1.5)
    assert sent(rpc_client, account) == []   # not before the ledger's worker has stored its PDF
    notifier("ledger", "invoice_pdf_ready", event(account, **invoice, sha256="0" * 64))
    [item] = settled(rpc_client, account)
    [mail] = mailbox.to(main_email(account))
    assert item["kind"] == "invoice_issued" and mail["subject"] == "Invoice 2026/000123"
    assert mail["attachments"] == [{"filename": "invoice-2026-000123.pdf", "content_type": "application/pdf",
                                    "size": len(PDF)}]
    # From the document worker that stored it, not from the ledger's RPC process.
    assert LEDGER.pdfs_given - given == Counter({"ledger_documents": 1})


def test_with_the_document_worker_away_the_invoice_mail_takes_the_pdf_from_the_ledger(
        without_documents, rpc_client, mailbox):
    account = customer()
    given = LEDGER.pdfs_given.copy()
    without_documents("ledger", "invoice_pdf_ready", event(
        account, invoice_id="inv-77", number="2026/000125", kind="invoice", sha256="0" * 64,
        gross={"amount": "24.48", "currency": "EUR"}, issued_at="2026-11-29T10:00:00Z"))
    [item] = eventually(lambda: [i for i in sent(rpc_client, account) if i["state"] == "sent"] or None, timeout=30)
    [mail] = mailbox.to(main_email(account))
    assert item["kind"] == "invoice_issued" and mail["attachments"][0]["size"] == len(PDF)
    assert LEDGER.pdfs_given - given == Counter({"ledger": 1})


def test_the_invoice_mail_goes_without_a_pdf_the_ledger_does_not_have(notifier, rpc_client, mailbox):
    account = customer()
    notifier("ledger", "invoice_pdf_ready", event(account, invoice_id="inv-404", number="2026/000124",
                                                  kind="invoice", gross={"amount": "9.90", "currency": "EUR"},
                                                  issued_at="2026-11-29T10:00:00Z"))
    [item] = settled(rpc_client, account)
    [mail] = mailbox.to(main_email(account))
    assert item["state"] == "sent" and "2026/000124" in mail["subject"] and mail["attachments"] == []


def test_an_event_for_an_account_profile_does_not_know_sends_nothing(notifier, rpc_client, mailbox):
    stranger = str(uuid.uuid4())
    notifier("profile", "password_changed", password_changed(stranger))
    account = customer()  # a later event for a known account shows the first one was handled
    notifier("profile", "password_changed", password_changed(account))
    settled(rpc_client, account)
    assert mailbox.to(f"{stranger[:8]}@example.com") == []
    with pytest.raises(DomainError) as refused:
        rpc_client.notifier.list_sent(stranger)
    assert refused.value.error_code == "not_found"


def registered(notifier, account_id, email, **fields):
    """Profile's registration event for an account, as the copy learns it."""
    notifier("profile", "account_registered", event(account_id, login="x", email=email, first_name="Anna",
                                                    language="en", country="PL", **fields))


def test_money_mail_is_addressed_from_the_copy_and_security_mail_by_profile(notifier, rpc_client, mailbox):
    # Profile's fake does not know this account: only its events do. Money mail needs no call to
    # profile; security mail still asks it, and profile's not_found sends nothing.
    account = str(uuid.uuid4())
    registered(notifier, account, "ola@example.com")
    time.sleep(1.0)
    notifier("orders", "order_created", order_created(account))
    [item] = settled(rpc_client, account)
    assert (item["kind"], item["to"]) == ("order_created", "ola@example.com")
    notifier("profile", "notification_settings_changed",
             event(account, newsletter=False, emails={"invoices": "billing@ola.example", "support": None,
                                                      "complaints": None}, occurred_at="2026-11-29T10:05:00Z"))
    time.sleep(1.0)
    notifier("orders", "order_created", order_created(account))
    notifier("profile", "password_changed", password_changed(account))
    items = settled(rpc_client, account, count=2)
    assert sorted((i["kind"], i["to"]) for i in items) == [("order_created", "billing@ola.example"),
                                                           ("order_created", "ola@example.com")]
    assert PROFILE.settings_asked[account] == 1   # the security mail's question, answered not_found
    assert len(mailbox.to("ola@example.com")) == 1 and len(mailbox.to("billing@ola.example")) == 1


def test_without_a_copy_profile_is_asked_once_and_its_answer_kept_until_an_event(notifier, rpc_client, mailbox):
    account = customer(invoices="billing@firma.example")   # older than the copy: no event about it yet
    notifier("orders", "order_created", order_created(account))
    settled(rpc_client, account)
    asked = PROFILE.settings_asked[account]   # the mail's question (and list_sent's, before it was written)
    assert asked >= 1
    notifier("orders", "order_created", order_created(account))
    items = settled(rpc_client, account, count=2)
    assert [i["to"] for i in items] == ["billing@firma.example"] * 2
    # Any event replaces what the answer said, even one dated before it.
    notifier("profile", "notification_settings_changed",
             event(account, newsletter=False, emails={"invoices": "ksiegowosc@firma.example", "support": None,
                                                      "complaints": None}))
    time.sleep(1.0)
    notifier("orders", "order_created", order_created(account))
    items = settled(rpc_client, account, count=3)
    assert sorted(i["to"] for i in items) == ["billing@firma.example"] * 2 + ["ksiegowosc@firma.example"]
    assert PROFILE.settings_asked[account] == asked


def test_a_late_registration_does_not_undo_newer_settings(notifier, rpc_client, mailbox):
    account = str(uuid.uuid4())
    notifier("profile", "notification_settings_changed",
             event(account, newsletter=False, emails={"invoices": "billing@late.example", "support": None,
                                                      "complaints": None}, occurred_at="2026-11-29T10:05:00Z"))
    time.sleep(1.0)
    registered(notifier, account, "late@example.com")   # dated 10:00, handled after the change
    time.sleep(1.0)
    notifier("orders", "order_created", order_created(account))
    [item] = settled(rpc_client, account)
    assert item["to"] == "billing@late.example"
    assert PROFILE.settings_asked[account] == 0


def test_two_replicas_send_each_message_once(notifier, run_service, relay, rpc_client, mailbox):
    run_service(NotifierService, SMTP_PORT=relay.port, SMTP_TIMEOUT=5)
    accounts = [customer() for _ in range(8)]
    for account in accounts:
        notifier("profile", "password_changed", password_changed(account))
    for account in accounts:
        settled(rpc_client, account)
    time.sleep(2.5)
    assert [len(mailbox.to(main_email(account))) for account in accounts] == [1] * len(accounts)


# --- delivery: temporary failures retried, permanent ones recorded ---------------------------------

def test_smtp_down_then_up_delivers_exactly_once(notifier, rpc_client, mailbox, time_machine):
    account = customer()
    mailbox.refuse("tempfail")
    notifier("profile", "password_changed", password_changed(account))
    [waiting] = eventually(lambda: [i for i in sent(rpc_client, account) if i["attempts"] >= 1])
    assert waiting["state"] == "pending" and "451" in waiting["error"]
    mailbox.refuse("ok")
    time.sleep(2.5)
    assert mailbox.to(main_email(account)) == []  # the backoff holds it until its time comes
    time_machine(31)
    [item] = settled(rpc_client, account)
    time.sleep(2.5)
    assert item["state"] == "sent" and item["attempts"] == 2
    assert len(mailbox.to(main_email(account))) == 1


def test_a_5xx_is_recorded_as_failed_and_never_retried(notifier, rpc_client, mailbox, time_machine):
    account = customer()
    mailbox.refuse("permfail")
    notifier("profile", "password_changed", password_changed(account))
    [item] = settled(rpc_client, account)
    assert item["state"] == "failed" and item["attempts"] == 1 and "550" in item["error"]
    mailbox.refuse("ok")
    time_machine(3600)
    time.sleep(2.5)
    assert mailbox.to(main_email(account)) == []
    assert sent(rpc_client, account)[0]["state"] == "failed"


def test_after_the_last_retry_a_message_is_dead_and_visible(notifier, rpc_client, mailbox, time_machine):
    account = customer()
    mailbox.refuse("tempfail")
    notifier("profile", "password_changed", password_changed(account))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        eventually(lambda: sent(rpc_client, account) and sent(rpc_client, account)[0]["attempts"] >= attempt)
        time_machine(3601)
    [item] = sent(rpc_client, account)
    assert item["state"] == "dead" and item["attempts"] == MAX_ATTEMPTS
    mailbox.refuse("ok")
    time_machine(3601)
    time.sleep(2.5)
    assert mailbox.to(main_email(account)) == []


# --- the newsletter: only with consent -----------------------------------------------------------

def test_the_newsletter_goes_only_to_customers_who_consented(notifier, rpc_client, mailbox):
    keen, reluctant, withdrawn = customer(), customer(), customer()
    for account in (keen, reluctant, withdrawn):
        notifier("profile", "account_registered", event(account, login="x", email=main_email(account),
                                                        first_name="Anna", language="pl", country="PL"))
    notifier("profile", "notification_settings_changed", event(keen, newsletter=True))
    notifier("profile", "notification_settings_changed",
             event(withdrawn, newsletter=False, occurred_at="2026-11-29T11:00:00Z"))
    # An older consent arriving late changes nothing.
    notifier("profile", "notification_settings_changed",
             event(withdrawn, newsletter=True, occurred_at="2026-11-29T09:00:00Z"))
    time.sleep(1.5)
    result = rpc_client.notifier.send_newsletter("Nowości w grudniu", "Nowe serwery w Warszawie.\n\nZespół")
    assert result["recipients"] >= 1
    [item] = settled(rpc_client, keen)
    assert item["kind"] == "newsletter" and item["subject"] == "Nowości w grudniu"
    [mail] = mailbox.to(main_email(keen))
    assert "Nowe serwery w Warszawie." in mail["text"]
    assert mailbox.to(main_email(reluctant)) == [] and mailbox.to(main_email(withdrawn)) == []


def test_a_burst_of_consent_events_for_one_customer_ends_with_the_newest(notifier, rpc_client, mailbox):
    # The notifier's workers take these together. Without the row lock two of them read the same
    # consent time on PostgreSQL, and the older consent, written last, brought the newsletter back.
    withdrawn = [customer() for _ in range(4)]
    for account in withdrawn:
        notifier("profile", "account_registered", event(account, login="x", email=main_email(account),
                                                        first_name="Anna", language="en", country="PL"))
    time.sleep(1.5)
    for account in withdrawn:
        notifier("profile", "notification_settings_changed",
                 event(account, newsletter=False, occurred_at="2026-11-29T11:00:00Z"))
        for minute in range(8):
            notifier("profile", "notification_settings_changed",
                     event(account, newsletter=True, occurred_at=f"2026-11-29T09:{minute:02d}:00Z"))
    time.sleep(2.5)
    rpc_client.notifier.send_newsletter("News", "Hello.")
    time.sleep(1.5)
    for account in withdrawn:
        assert mailbox.to(main_email(account)) == []
        assert rpc_client.notifier.list_sent(account)["items"] == []


def test_a_newsletter_sent_twice_with_one_key_goes_out_once_and_the_key_is_refused_for_another(
        notifier, rpc_client, mailbox):
    keen = customer()
    notifier("profile", "account_registered", event(keen, login="x", email=main_email(keen), first_name="Anna",
                                                    language="en", country="PL"))
    notifier("profile", "notification_settings_changed", event(keen, newsletter=True))
    time.sleep(1.5)
    first = rpc_client.notifier.send_newsletter("News", "Hello.", idempotency_key="2026-12")
    again = rpc_client.notifier.send_newsletter("News", "Hello.", idempotency_key="2026-12")
    assert first == again
    with pytest.raises(DomainError) as refused:
        rpc_client.notifier.send_newsletter("Other news", "Hello again.", idempotency_key="2026-12")
    assert refused.value.error_code == "idempotency_conflict"
    settled(rpc_client, keen)
    assert [message["subject"] for message in mailbox.to(main_email(keen))] == ["News"]


BAD_NEWSLETTERS = [
    ("", "Hello.", "subject"),
    ("News", "   ", "text"),
    ("x" * 201, "Hello.", "subject"),
    ("News", "y" * 50_001, "text"),
    (12, "Hello.", "subject"),
    ("News", None, "text"),
]


def test_a_bad_newsletter_is_refused_and_nothing_is_written(notifier, rpc_client, mailbox):
    keen = customer()
    notifier("profile", "account_registered", event(keen, login="x", email=main_email(keen), first_name="Anna",
                                                    language="en", country="PL"))
    notifier("profile", "notification_settings_changed", event(keen, newsletter=True))
    time.sleep(1.5)
    for subject, text, field in BAD_NEWSLETTERS:
        with pytest.raises(DomainError) as refused:
            rpc_client.notifier.send_newsletter(subject, text)
        assert refused.value.error_code == "validation_error" and field in refused.value.fields, (subject, text)
    time.sleep(2.5)
    assert sent(rpc_client, keen) == [] and mailbox.to(main_email(keen)) == []


# --- mail the support desk asks for (N3b, N3c) -----------------------------------------------------

REPLY = {"ticket_id": "T-5521", "ticket_subject": "Server unreachable", "reply": "We have restarted the switch."}
ABUSE = {"report_id": "AB-77", "ip_address": "203.0.113.9", "summary": "Port scans reported by CERT.",
         "respond_by": "2026-12-03", "order_id": "ord-1042"}


def test_support_replies_and_abuse_reports_go_to_their_own_addresses_once(notifier, rpc_client, mailbox, support_desk):
    account = customer(support="helpdesk@firma.example", complaints="abuse@firma.example")
    reply = support_desk.notifier.notify(account, "support_reply", REPLY, "desk-reply-1")
    assert support_desk.notifier.notify(account, "support_reply", REPLY, "desk-reply-1") == reply  # a replay
    report = support_desk.notifier.notify(account, "abuse_report", ABUSE, "desk-abuse-1")
    assert (reply["kind"], reply["to"], report["kind"], report["to"]) == (
        "support_reply", "helpdesk@firma.example", "abuse_report", "abuse@firma.example")
    settled(rpc_client, account, count=2)
    [answer] = mailbox.to("helpdesk@firma.example")
    assert "[Request T-5521] Server unreachable" in answer["subject"] and "restarted the switch" in answer["text"]
    [complaint] = mailbox.to("abuse@firma.example")
    assert "203.0.113.9" in complaint["subject"] and "ord-1042" in complaint["text"]
    assert mailbox.to(main_email(account)) == []


def test_a_key_used_again_for_another_reply_is_refused(notifier, rpc_client, mailbox, support_desk):
    account = customer()
    reply = support_desk.notifier.notify(account, "support_reply", REPLY, "desk-reply-2")
    with pytest.raises(DomainError) as refused:
        support_desk.notifier.notify(account, "support_reply", {**REPLY, "reply": "Something else."}, "desk-reply-2")
    assert refused.value.error_code == "idempotency_conflict"
    assert [item["id"] for item in sent(rpc_client, account)] == [reply["id"]]


def test_without_a_support_address_the_reply_goes_to_the_main_email(notifier, mailbox, support_desk):
    account = customer()
    assert support_desk.notifier.notify(account, "support_reply", REPLY, "k")["to"] == main_email(account)


BAD_REQUESTS = [
    ("password_changed", REPLY, "kind"),          # only the support desk's kinds
    ("support_reply", {**REPLY, "reply": "  "}, "data.reply"),
    ("support_reply", {**REPLY, "reply": "x" * 20_001}, "data.reply"),
    ("support_reply", {**REPLY, "extra": 1}, "data.extra"),
    ("abuse_report", {**ABUSE, "ip_address": "999.1.1.1"}, "data.ip_address"),
    ("abuse_report", {**ABUSE, "respond_by": "soon"}, "data.respond_by"),
    ("abuse_report", {key: value for key, value in ABUSE.items() if key != "summary"}, "data.summary"),
    ("support_reply", "not an object", "data"),
]


def test_a_bad_request_for_mail_is_refused_and_nothing_is_written(notifier, rpc_client, mailbox, support_desk):
    account = customer()
    for kind, data, field in BAD_REQUESTS:
        with pytest.raises(DomainError) as refused:
            support_desk.notifier.notify(account, kind, data, f"key-{field}")
        assert refused.value.error_code == "validation_error" and field in refused.value.fields, (kind, field)
    for nobody in (str(uuid.uuid4()), "x" * 64):
        with pytest.raises(DomainError) as unknown:
            support_desk.notifier.notify(nobody, "support_reply", REPLY, "k")
        assert unknown.value.error_code == "not_found", nobody
    time.sleep(2.5)
    assert sent(rpc_client, account) == [] and mailbox.to(main_email(account)) == []


# --- list_sent: pages and refusals --------------------------------------------------------------

def test_list_sent_pages_newest_first(notifier, rpc_client, mailbox):
    account = customer()
    for _ in range(3):
        notifier("profile", "password_changed", password_changed(account))
    settled(rpc_client, account, count=3)
    first = rpc_client.notifier.list_sent(account, limit=2)
    second = rpc_client.notifier.list_sent(account, limit=2, cursor=first["next_cursor"])
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert len(set(ids)) == 3
    assert [i["at"] for i in first["items"] + second["items"]] == sorted(
        (i["at"] for i in first["items"] + second["items"]), reverse=True)


BAD_PAGES = [{"limit": 0}, {"limit": 101}, {"limit": "10"}, {"limit": True}, {"cursor": "not-a-cursor"},
             {"cursor": "c2VudHx4fDE"}, {"cursor": "x" * 10_000}, {"cursor": 5}]


def test_list_sent_refuses_bad_paging(notifier, rpc_client):
    for arguments in BAD_PAGES:
        with pytest.raises(DomainError) as refused:
            rpc_client.notifier.list_sent(customer(), **arguments)
        assert refused.value.error_code == "validation_error", arguments
