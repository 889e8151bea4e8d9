"""The notifier's rules: who gets which message, and how amounts, dates and links read."""
import re
from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import UndefinedError

from services.common.errors import ValidationError
from services.common.money import Money
from services.notifier import domain
from services.notifier.domain import (
    KINDS,
    Attachment,
    IncompleteEvent,
    NotificationSettings,
    RecipientRequired,
    UnknownKind,
    compose,
    format_date,
    format_money,
    format_time,
    plural,
    recipient_for,
    render,
)

MAIN = "jan.kowalski@example.com"
INVOICES = "faktury@firma.example"
SUPPORT = "it@firma.example"
COMPLAINTS = "abuse@firma.example"

ORDER_AND_MONEY_KINDS = ["order_created", "order_activated", "order_renewed", "order_plan_changed",
                         "order_cancelled", "refund_issued", "renewal_due", "order_overdue",
                         "order_suspended", "order_closed", "balance_low", "balance_running_out",
                         "monthly_statement", "invoice_issued"]
SECURITY_KINDS = ["email_confirmation", "password_reset", "password_changed", "phone_changed", "ip_restriction_changed",
                  "two_factor_enabled", "two_factor_disabled", "new_ip_login", "security_code_set",
                  "account_frozen", "sessions_ended"]
NAMED_ADDRESS_KINDS = ["email_change_requested", "email_changed"]


def settings(**overrides) -> NotificationSettings:
    return NotificationSettings(**{"main_email": MAIN, **overrides})


def all_addresses_set(newsletter=False) -> NotificationSettings:
    return settings(invoices=INVOICES, support=SUPPORT, complaints=COMPLAINTS, newsletter=newsletter)


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


ACTIVATED = {"first_name": "Jan", "order_id": "ord-42", "plan_name": "VPS S", "ip_address": "203.0.113.10",
             "paid_until": "2026-11-29", "cost": eur("12.50")}


# --- routing (N3, P3) -------------------------------------------------------------------------

def test_the_catalogue_holds_every_kind_the_customer_must_hear_about():
    assert set(KINDS) == {*ORDER_AND_MONEY_KINDS, *SECURITY_KINDS, *NAMED_ADDRESS_KINDS,
                          "support_reply", "abuse_report", "newsletter"}


@pytest.mark.parametrize("kind", ORDER_AND_MONEY_KINDS)
def test_order_and_money_mail_goes_to_the_invoices_address(kind):
    assert recipient_for(kind, all_addresses_set()) == INVOICES


@pytest.mark.parametrize("kind", ORDER_AND_MONEY_KINDS)
def test_order_and_money_mail_falls_back_to_the_main_email(kind):
    assert recipient_for(kind, settings(support=SUPPORT, complaints=COMPLAINTS)) == MAIN


def test_support_reply_goes_to_the_support_address_or_the_main_email():
    assert recipient_for("support_reply", all_addresses_set()) == SUPPORT
    assert recipient_for("support_reply", settings(invoices=INVOICES, complaints=COMPLAINTS)) == MAIN


def test_abuse_report_goes_to_the_complaints_address_or_the_main_email():
    assert recipient_for("abuse_report", all_addresses_set()) == COMPLAINTS
    assert recipient_for("abuse_report", settings(invoices=INVOICES, support=SUPPORT)) == MAIN


def test_an_empty_address_setting_counts_as_not_set():
    assert recipient_for("invoice_issued", settings(invoices="")) == MAIN


@pytest.mark.parametrize("kind", SECURITY_KINDS)
def test_security_mail_goes_to_the_main_email_never_to_the_n3_addresses(kind):
    assert recipient_for(kind, all_addresses_set(newsletter=True)) == MAIN


@pytest.mark.parametrize("kind", SECURITY_KINDS)
def test_security_mail_goes_to_the_address_the_event_names(kind):
    assert recipient_for(kind, all_addresses_set(), explicit_to="new@example.org") == "new@example.org"


def test_registration_confirmation_goes_to_the_address_being_confirmed():
    assert recipient_for("email_confirmation", settings(), explicit_to=MAIN) == MAIN


def test_email_change_confirmation_goes_to_the_new_address():
    assert recipient_for("email_change_requested", all_addresses_set(), explicit_to="nowy@example.pl") \
        == "nowy@example.pl"


def test_email_change_notice_goes_to_the_old_address():
    after_the_change = settings(main_email="nowy@example.pl", invoices=INVOICES)
    assert recipient_for("email_changed", after_the_change, explicit_to=MAIN) == MAIN


@pytest.mark.parametrize("kind", NAMED_ADDRESS_KINDS)
def test_email_change_mail_without_the_named_address_is_refused_not_sent_to_the_main_email(kind):
    with pytest.raises(RecipientRequired):
        recipient_for(kind, settings())


@pytest.mark.parametrize("kind", [*ORDER_AND_MONEY_KINDS, "support_reply", "abuse_report", "newsletter"])
def test_routed_mail_refuses_an_explicit_address_so_settings_cannot_be_bypassed(kind):
    with pytest.raises(ValueError):
        recipient_for(kind, all_addresses_set(newsletter=True), explicit_to="someone@example.org")


def test_newsletter_goes_to_the_main_email_only_with_consent():
    assert recipient_for("newsletter", all_addresses_set(newsletter=True)) == MAIN
    assert recipient_for("newsletter", all_addresses_set(newsletter=False)) is None


def test_an_unknown_kind_is_refused():
    with pytest.raises(UnknownKind):
        recipient_for("order_teleported", settings())


# --- the catalogue and its documentation --------------------------------------------------------

def documented_fields() -> dict[str, tuple[set, set, str]]:
    """The table in the module docstring: kind -> (required, optional, route)."""
    table = {}
    for line in domain.__doc__.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in KINDS:
            continue
        names = [re.sub(r"\{.*?\}|:\w+", "", name.strip()) for name in cells[2].split(", ")]
        required = {n for n in names if not n.endswith("?")} | {"first_name"}
        optional = {n[:-1] for n in names if n.endswith("?")}
        table[cells[0]] = (required, optional, cells[1])
    return table


def test_the_docstring_table_documents_every_kind_exactly_as_the_catalogue_has_it():
    table = documented_fields()
    assert set(table) == set(KINDS)
    for name, kind in KINDS.items():
        assert table[name] == (set(kind.required), set(kind.optional), kind.route.value), name


# --- rendering: the contract with the emitting services ----------------------------------------

def test_render_refuses_an_event_missing_a_field_and_names_it():
    event = {**ACTIVATED}
    del event["paid_until"]
    with pytest.raises(IncompleteEvent, match="paid_until"):
        render("order_activated", "en", event)


def test_render_refuses_a_required_field_that_is_null():
    with pytest.raises(IncompleteEvent, match="ip_address"):
        render("order_activated", "en", {**ACTIVATED, "ip_address": None})


def test_optional_fields_may_be_left_out():
    subject, text, _ = render("password_changed", "en", {"first_name": "Jan", "at": "2026-11-29T10:00:00Z"})
    assert "Your password has been changed" == subject
    assert "IP address" not in text


def test_render_refuses_an_unsupported_language():
    with pytest.raises(ValueError):
        render("order_activated", "de", ACTIVATED)


def test_a_missing_template_variable_fails_loudly():
    template = domain.environment("en").get_template("en/order_activated.txt")
    with pytest.raises(UndefinedError, match="is undefined"):
        template.render(first_name="Jan")


def test_subject_is_a_single_line():
    subject, _, _ = render("newsletter", "en", {"first_name": "Jan", "subject": "Spring\noffers\r\n  2026",
                                                  "text": "Hello"})
    assert subject == "Spring offers 2026"


# --- links ------------------------------------------------------------------------------------------

def test_links_point_at_the_default_panel(monkeypatch):
    monkeypatch.delenv("PANEL_URL", raising=False)
    _, text, html = render("order_activated", "en", ACTIVATED)
    assert "http://127.0.0.1:8000/orders/ord-42" in text
    assert 'href="http://127.0.0.1:8000/orders/ord-42"' in html


def test_links_follow_the_panel_url_setting(monkeypatch):
    monkeypatch.setenv("PANEL_URL", "https://panel.introserv.example/")
    _, text, _ = render("order_activated", "en", ACTIVATED)
    assert "https://panel.introserv.example/orders/ord-42" in text
    assert "http://127.0.0.1:8000" not in text


def test_confirmation_link_carries_the_token_url_encoded():
    _, text, _ = render("email_confirmation", "en", {"first_name": "Jan", "token": "a+b/c="},
                        panel_url="https://panel.example")
    assert "https://panel.example/confirm-email?token=a%2Bb%2Fc%3D" in text
    assert "a+b/c=" in text  # the code to type in by hand


def test_an_events_own_confirmation_link_wins():
    _, text, _ = render("email_confirmation", "en", {"first_name": "Jan", "token": "t0k3n",
                                                     "confirm_url": "https://elsewhere.example/c/t0k3n"})
    assert "https://elsewhere.example/c/t0k3n" in text
    assert "/confirm-email?token=" not in text


# --- compose -----------------------------------------------------------------------------------------

def test_compose_gives_a_message_for_the_recipient_with_its_attachment_and_key():
    pdf = Attachment("faktura-2026-000123.pdf", b"%PDF-1.4 ...")
    event = {"first_name": "Jan", "invoice_id": "inv-9", "number": "2026/000123", "kind": "invoice",
             "gross": eur("61.50"), "issued_at": "2026-11-29T10:00:00Z", "order_id": "ord-42"}
    message = compose("invoice_issued", "pl", event, INVOICES, attachments=(pdf,),
                      idempotency_key="invoice_issued:inv-9")
    assert (message.kind, message.to, message.subject) == ("invoice_issued", INVOICES, "Faktura 2026/000123")
    assert message.attachments == (pdf,)
    assert message.idempotency_key == "invoice_issued:inv-9"
    assert "61,50 EUR" in message.text and "61,50 EUR" in message.html


# --- formatting per language -------------------------------------------------------------------------

@pytest.mark.parametrize("amount, polish, english", [
    ("12.50", "12,50 EUR", "EUR 12.50"),
    ("0.05", "0,05 EUR", "EUR 0.05"),
    ("1234.00", "1234,00 EUR", "EUR 1,234.00"),
    ("12345.67", "12\u00a0345,67 EUR", "EUR 12,345.67"),
    ("1234567.00", "1\u00a0234\u00a0567,00 EUR", "EUR 1,234,567.00"),
    ("-12.50", "-12,50 EUR", "EUR -12.50"),
])
def test_amounts_read_the_way_each_language_writes_them(amount, polish, english):
    assert format_money(eur(amount), "pl") == polish
    assert format_money(eur(amount), "en") == english


def test_an_amount_may_be_given_as_money():
    assert format_money(Money.of("7.00", "PLN"), "pl") == "7,00 PLN"


def test_a_float_amount_is_refused():
    with pytest.raises(ValidationError):
        format_money({"amount": 12.5, "currency": "EUR"}, "en")


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_a_formatted_polish_amount_reads_back_as_the_same_money(minor):
    money = Money(minor, "PLN")
    number = format_money(money, "pl").removesuffix(" PLN").replace("\u00a0", "").replace(",", ".")
    assert Money.of(number, "PLN") == money


@pytest.mark.parametrize("value", ["2026-11-29", date(2026, 11, 29), "2026-11-29T23:30:00Z"])
def test_dates_read_day_first_in_polish_and_iso_in_english(value):
    assert format_date(value, "pl") == "29.11.2026"
    assert format_date(value, "en") == "2026-11-29"


def test_times_are_shown_in_utc_whatever_zone_they_came_in():
    assert format_time("2026-11-29T11:05:00+01:00", "pl") == "29.11.2026, 10:05 UTC"
    assert format_time(datetime(2026, 11, 29, 10, 5, tzinfo=timezone.utc), "en") == "2026-11-29 10:05 UTC"


@pytest.mark.parametrize("count, words", [(1, "1 miesiąc"), (2, "2 miesiące"), (4, "4 miesiące"),
                                          (5, "5 miesięcy"), (12, "12 miesięcy"), (14, "14 miesięcy"),
                                          (22, "22 miesiące"), (25, "25 miesięcy"), (0, "0 miesięcy")])
def test_polish_counts_take_the_right_plural_form(count, words):
    assert plural(count, "pl", "miesiąc", "miesiące", "miesięcy") == words


def test_english_counts_take_singular_or_plural():
    assert plural(1, "en", "month", "months") == "1 month"
    assert plural(12, "en", "month", "months") == "12 months"
