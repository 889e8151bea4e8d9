"""How the notifier reads events and relay answers: which message, to which address, what happens next."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from types import SimpleNamespace

from services.notifier.dispatch import (addressee_from_copy, after_attempt, from_the_copy, invoice_filename,
                                        occasion_for, pdf_from_base64, settings_from)
from services.notifier.domain import KINDS, IncompleteEvent, Route, UnknownKind, recipient_for
from services.notifier.mailer import MAX_ATTEMPTS

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)
SETTINGS = {"account_id": "acc-1", "email": "anna@example.com", "email_confirmed": True, "first_name": "Anna",
            "last_name": "Nowak", "language": "pl", "newsletter": False, "low_balance_threshold": None,
            "emails": {"invoices": "billing@firma.example", "support": "it@firma.example",
                       "complaints": "abuse@firma.example"}}
EXPECTED_ADDRESS = {Route.INVOICES: "billing@firma.example", Route.SUPPORT: "it@firma.example",
                    Route.COMPLAINTS: "abuse@firma.example", Route.MAIN: "anna@example.com"}


def address_for(event_type, payload, settings=SETTINGS):
    occasion = occasion_for(event_type, {"account_id": "acc-1", **payload})
    return occasion.kind, recipient_for(occasion.kind, settings_from(settings).settings, occasion.named_address)


@pytest.mark.parametrize("kind", [k.name for k in KINDS.values() if k.route in EXPECTED_ADDRESS])
def test_each_event_goes_to_the_address_its_kind_is_routed_to(kind):
    assert address_for(kind, {}) == (kind, EXPECTED_ADDRESS[KINDS[kind].route])


@pytest.mark.parametrize("kind", [k.name for k in KINDS.values() if k.route in (Route.INVOICES, Route.SUPPORT,
                                                                                  Route.COMPLAINTS)])
def test_routed_mail_falls_back_to_the_main_address_when_the_customer_named_none(kind):
    empty = {**SETTINGS, "emails": {"invoices": None, "support": "", "complaints": None}}
    assert address_for(kind, {}, empty) == (kind, "anna@example.com")


def test_a_registration_confirmation_goes_to_the_address_being_confirmed():
    assert address_for("email_confirmation_requested", {"to": "new-customer@example.com", "token": "t",
                                                         "purpose": "registration"}) == \
        ("email_confirmation", "new-customer@example.com")


def test_a_change_confirmation_goes_to_the_new_address_and_names_it():
    occasion = occasion_for("email_confirmation_requested",
                            {"account_id": "acc-1", "to": "new@example.com", "token": "t", "purpose": "change"})
    assert (occasion.kind, occasion.named_address) == ("email_change_requested", "new@example.com")
    assert occasion.data["new_email"] == "new@example.com"


def test_the_email_changed_notice_goes_to_the_old_address_never_the_invoices_one():
    assert address_for("email_changed", {"old_email": "old@example.com", "new_email": "anna@example.com"}) == \
        ("email_changed", "old@example.com")


def test_the_invoice_mail_goes_out_when_the_ledger_has_the_invoices_pdf_to_the_invoices_address():
    assert address_for("invoice_pdf_ready", {"invoice_id": "inv-1", "number": "2026/000001", "kind": "invoice"}) == \
        ("invoice_issued", "billing@firma.example")


@pytest.mark.parametrize("event_type, payload", [
    ("password_changed", {"account_id": None}),
    ("password_changed", {"account_id": ""}),
    ("email_changed", {"account_id": "acc-1", "new_email": "n@example.com"}),
    ("email_confirmation_requested", {"account_id": "acc-1", "token": "t", "to": "not an address"}),
])
def test_an_event_that_cannot_say_whom_it_is_for_is_incomplete(event_type, payload):
    with pytest.raises(IncompleteEvent):
        occasion_for(event_type, payload)


def test_an_event_the_notifier_has_no_message_for_is_refused():
    with pytest.raises(UnknownKind):
        occasion_for("balance_changed", {"account_id": "acc-1"})


def test_a_language_the_panel_does_not_write_in_reads_as_english():
    assert settings_from({**SETTINGS, "language": "de"}).language == "en"
    assert settings_from({**SETTINGS, "language": None}).language == "en"
    assert settings_from(SETTINGS).language == "pl"


def test_newsletter_consent_is_only_a_true_answer():
    assert settings_from({**SETTINGS, "newsletter": True}).settings.newsletter is True
    assert recipient_for("newsletter", settings_from(SETTINGS).settings) is None


# --- after an attempt ---------------------------------------------------------------------------

def test_a_message_the_relay_took_is_sent():
    assert after_attempt(0, NOW, sent=True).state == "sent"


def test_a_permanent_refusal_is_failed_and_never_retried():
    outcome = after_attempt(0, NOW, permanent=True)
    assert (outcome.state, outcome.attempts, outcome.next_attempt_at) == ("failed", 1, None)


def test_temporary_failures_wait_longer_each_time():
    waits = [after_attempt(n, NOW).next_attempt_at - NOW for n in range(3)]
    assert waits == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]


def test_the_last_temporary_failure_makes_the_message_dead():
    assert after_attempt(MAX_ATTEMPTS - 2, NOW).state == "pending"
    outcome = after_attempt(MAX_ATTEMPTS - 1, NOW)
    assert (outcome.state, outcome.attempts, outcome.next_attempt_at) == ("dead", MAX_ATTEMPTS, None)


@given(st.integers(min_value=0, max_value=100), st.booleans(), st.booleans())
def test_every_attempt_counts_and_only_pending_mail_has_a_next_attempt(before, sent, permanent):
    outcome = after_attempt(before, NOW, sent=sent, permanent=permanent)
    assert outcome.attempts == before + 1
    assert (outcome.next_attempt_at is not None) == (outcome.state == "pending")
    if outcome.state == "pending":
        assert NOW < outcome.next_attempt_at <= NOW + timedelta(hours=1)


# --- the invoice PDF --------------------------------------------------------------------------------

def test_invoice_files_are_named_after_the_number_in_the_customers_language():
    assert invoice_filename("invoice", "2026/000123", "pl") == "faktura-2026-000123.pdf"
    assert invoice_filename("credit_note", "2026/000124", "en") == "credit-note-2026-000124.pdf"
    assert invoice_filename("invoice", "../../etc", "en") == "invoice-------etc.pdf"


def test_only_a_base64_pdf_is_attached():
    pdf = b"%PDF-1.4 body"
    assert pdf_from_base64(base64.b64encode(pdf).decode()) == pdf
    assert pdf_from_base64({"content": base64.b64encode(pdf).decode()}) == pdf
    assert pdf_from_base64(base64.b64encode(b"<html>").decode()) is None
    assert pdf_from_base64("not base64!") is None
    assert pdf_from_base64(None) is None


def copy_row(**fields):
    """A ``Subscriber`` row as the notifier's copy holds it."""
    row = dict(email="anna@example.com", first_name="Anna", language="pl", newsletter=False, invoices_email=None,
               support_email=None, complaints_email=None, answered=False, contact_at=NOW, consent_at=NOW)
    return SimpleNamespace(**{**row, **fields})


@pytest.mark.parametrize("fields", [dict(contact_at=None), dict(consent_at=None), dict(email=None),
                                    dict(email=None, answered=True)])
def test_a_copy_that_does_not_know_enough_addresses_nothing(fields):
    assert addressee_from_copy(copy_row(**fields)) is None
    assert addressee_from_copy(None) is None


@pytest.mark.parametrize("fields", [{}, dict(contact_at=None, consent_at=None, answered=True)])
def test_a_known_copy_addresses_money_mail_like_profiles_answer(fields):
    addressee = addressee_from_copy(copy_row(invoices_email="billing@firma.example", **fields))
    assert (addressee.language, addressee.first_name) == ("pl", "Anna")
    assert recipient_for("order_created", addressee.settings) == "billing@firma.example"
    assert recipient_for("support_reply", addressee.settings) == "anna@example.com"


def test_only_money_mail_is_addressed_from_the_copy():
    copied = {kind.name for kind in KINDS.values() if from_the_copy(kind.name)}
    assert copied == {kind.name for kind in KINDS.values() if kind.route is Route.INVOICES}
    assert "order_created" in copied and "invoice_issued" in copied
    assert not copied & {"password_changed", "email_changed", "support_reply", "newsletter"}
