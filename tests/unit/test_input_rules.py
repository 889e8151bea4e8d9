"""One line of printable text where a page, an invoice or a mail shows one line; money in ASCII digits.

Each schema that takes a name, a city, an address, a company name or a reason is checked here
with the same field type, the services' own RPC schemas included (issue 17).
"""
from __future__ import annotations

import pytest

from services.common.errors import ValidationError
from services.common.money import Money
from services.common.schemas import load, printable_line
from services.ledger.schemas import AdjustmentSchema, CreditLimitSchema
from services.notifier.schemas import NewsletterSchema, SupportReplySchema
from services.orders.schemas import CancelSchema
from services.profile.schemas import NotificationSettingsSchema, ProfilePatchSchema, RegistrationSchema

PHISHING = "customer,\n\nYour server is suspended. Pay now at https://pay.example"
NOT_ONE_LINE = {
    "a line feed": PHISHING,
    "a carriage return": "Anna\rNowak",
    "a tab": "Anna\tNowak",
    "a bidi override": "Anna \u202egnp.exe",
    "a bidi isolate": "Anna \u2066Nowak\u2069",
    "a right-to-left mark": "Anna\u200f",
    "a line separator": "Anna\u2028Nowak",
    "a paragraph separator": "Anna\u2029Nowak",
    "a control character": "Anna\x1b[31m",
    "a DEL": "Anna\x7f",
    "a zero-width no-break space": "Anna\ufeff",
    "a lone surrogate": "Anna\ud800",
}
ONE_LINE = ["Anna", "Żółć Sp. z o.o.", "O'Brien-Smith", "ul. Długa 5/7", "محمد\u200cرضا", "Anna Maria  Nowak",
            "👩\u200d💻 Ltd", "Zürich", "東京都"]

REGISTRATION = {"login": "anna", "password": "a long passphrase 7", "email": "anna@example.com",
                "first_name": "Anna", "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1",
                "country": "PL"}


def refusal(schema, body) -> dict:
    with pytest.raises(ValidationError) as refused:
        load(schema, body)
    return refused.value.fields


@pytest.mark.parametrize("what", NOT_ONE_LINE)
def test_text_with_line_breaks_control_or_bidi_characters_is_not_one_printable_line(what):
    assert not printable_line(NOT_ONE_LINE[what])


@pytest.mark.parametrize("text", ONE_LINE)
def test_names_in_any_script_with_their_joiners_are_one_printable_line(text):
    assert printable_line(text)


@pytest.mark.parametrize("field", ["first_name", "last_name", "city", "address"])
def test_registration_refuses_a_second_line_in_a_name_or_an_address_and_names_the_field(field):
    fields = refusal(RegistrationSchema, {**REGISTRATION, field: PHISHING})
    assert list(fields) == [field] and "one line of printable text" in fields[field][0]


@pytest.mark.parametrize("field, value", [
    ("first_name", "Anna \u202egnp.exe"), ("company_name", "Firma\nSp. z o.o."), ("city", "Kraków\u2066"),
    ("postal_address", {"line1": "ul. Długa 5\r\nPay now", "city": "Kraków", "postcode": "30-001",
                        "country": "PL"})])
def test_a_profile_edit_refuses_control_and_bidi_characters_and_names_the_field(field, value):
    fields = refusal(ProfilePatchSchema, {field: value})
    assert [name.split(".")[0] for name in fields] == [field]


def test_a_name_keeps_its_letters_and_loses_only_the_spaces_around_it():
    assert load(ProfilePatchSchema, {"first_name": "  Żaneta  "})["first_name"] == "Żaneta"


def test_reasons_on_a_cancellation_and_an_adjustment_are_one_line():
    assert list(refusal(CancelSchema, {"when": "now", "reason": "too slow\n\nRefund to IBAN PL..."})) == ["reason"]
    assert load(CancelSchema, {"when": "now", "reason": "too slow"})["reason"] == "too slow"
    adjustment = {"account_id": "a-1", "amount": {"amount": "5.00", "currency": "EUR"},
                  "idempotency_key": "k-1", "reason": "goodwill\u202e", "operator": "support:ola"}
    assert list(refusal(AdjustmentSchema, adjustment)) == ["reason"]
    assert list(refusal(CreditLimitSchema, {"account_id": "a-1", "limit": {"amount": "5.00", "currency": "EUR"},
                                              "operator": "ola\nroot"})) == ["operator"]


def test_a_mail_subject_is_one_line_while_its_text_may_have_paragraphs():
    assert list(refusal(NewsletterSchema, {"subject": "News\nBcc: everyone", "text": "a"})) == ["subject"]
    assert load(NewsletterSchema, {"subject": "News", "text": "one\n\ntwo"})["text"] == "one\n\ntwo"
    reply = {"ticket_id": "T-1", "ticket_subject": "DNS\r\nX-Header: 1", "reply": "Done.\n\nRegards"}
    assert list(refusal(SupportReplySchema, reply)) == ["ticket_subject"]


@pytest.mark.parametrize("amount", ["１２.５０", "12.５0", "١٢.٥٠", "१२.५०", "12.50\n", " 12.50", "+12.50", "12,50"])
def test_money_amounts_are_ascii_digits_only(amount):
    with pytest.raises(ValidationError) as refused:
        Money.from_wire({"amount": amount, "currency": "EUR"}, "low_balance_threshold")
    assert "digits 0-9" in refused.value.fields["low_balance_threshold"][0]
    fields = refusal(NotificationSettingsSchema, {"low_balance_threshold": {"amount": amount, "currency": "EUR"}})
    assert list(fields) == ["low_balance_threshold"]


def test_ascii_money_amounts_still_parse_exactly():
    assert Money.of("12.5", "EUR").minor == 1250 and Money.of("-0.05", "EUR").minor == -5
