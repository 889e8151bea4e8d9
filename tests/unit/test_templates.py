"""Every message renders in Polish and English with the values the customer needs to act on."""
import html as html_lib
import re
from pathlib import Path

import pytest
from jinja2 import meta

from services.notifier import domain
from services.notifier.domain import KINDS, LANGUAGES, PANEL_PAGES, render

PANEL = "https://panel.introserv.example"


def eur(amount):
    return {"amount": amount, "currency": "EUR"}


AT = "2026-11-29T10:00:00Z"

# One realistic event per kind, carrying exactly the documented fields.
EVENTS = {
    "order_created": {"order_id": "ord-1042", "plan_name": "VPS M", "period_months": 3,
                      "cost": eur("59.70"), "status": "pending_payment"},
    "order_activated": {"order_id": "ord-1042", "plan_name": "Dedicated E-2388G", "ip_address": "203.0.113.10",
                        "paid_until": "2026-11-29", "cost": eur("1234.50")},
    "order_renewed": {"order_id": "ord-1042", "plan_name": "VPS M", "period_months": 12,
                      "paid_until": "2027-11-29", "cost": eur("238.80")},
    "order_plan_changed": {"order_id": "ord-1042", "old_plan_name": "VPS S", "plan_name": "VPS M",
                           "paid_until": "2026-11-29", "charge": eur("4.35"), "credit": eur("0.00"),
                           "cost": eur("19.90")},
    "order_cancelled": {"order_id": "ord-1042", "plan_name": "VPS M", "when": "now", "refund": eur("12.50"),
                        "cancel_at": None},
    "refund_issued": {"order_id": "ord-1042", "amount": eur("12.50"), "balance": eur("40.00")},
    "renewal_due": {"order_id": "ord-1042", "plan_name": "VPS M", "paid_until": "2026-11-29", "days_left": 7,
                    "cost": eur("19.90"), "auto_renew": False},
    "order_overdue": {"order_id": "ord-1042", "plan_name": "VPS M", "paid_until": "2026-11-29",
                      "suspend_on": "2026-12-06", "cost": eur("19.90")},
    "order_suspended": {"order_id": "ord-1042", "plan_name": "VPS M", "ip_address": "203.0.113.10",
                        "close_on": "2026-12-20", "cost": eur("19.90")},
    "order_closed": {"order_id": "ord-1042", "plan_name": "VPS M"},
    "balance_low": {"balance": eur("8.00"), "threshold": eur("20.00")},
    "balance_running_out": {"order_id": "ord-42", "plan_name": "VPS M", "stops_on": "2027-01-14", "days": 3,
                            "low_balance_days": 14, "to_pay": eur("18.90"), "balance": eur("4.10")},
    "monthly_statement": {"from": "2026-11-01", "to": "2026-11-30", "opening_balance": eur("12.00"),
                          "closing_balance": eur("31.40"), "transactions": 4},
    "invoice_issued": {"invoice_id": "inv-77", "number": "2026/000123", "kind": "invoice",
                       "gross": eur("24.48"), "issued_at": AT, "order_id": "ord-1042"},
    "support_reply": {"ticket_id": "T-5521", "ticket_subject": "Reverse DNS for 203.0.113.10",
                      "reply": "The PTR record is set.\n\nIt may take an hour to propagate."},
    "abuse_report": {"report_id": "AB-318", "ip_address": "203.0.113.10",
                     "summary": "SSH brute force against 198.51.100.7 on 2026-11-28.",
                     "respond_by": "2026-12-01", "order_id": "ord-1042"},
    "email_confirmation": {"token": "Qm9vayB0b2tlbg"},
    "email_change_requested": {"token": "Q2hhbmdlIHRva2Vu", "new_email": "jan@nowa-firma.example"},
    "email_changed": {"old_email": "jan@stara-firma.example", "new_email": "jan@nowa-firma.example", "at": AT},
    "password_reset": {"login": "jan.kowalski", "token": "UmVzZXQgdG9rZW4", "expires_at": AT,
                       "ip_address": "198.51.100.23"},
    "password_changed": {"at": AT, "ip_address": "198.51.100.23", "reset": False},
    "phone_changed": {"phone": "+48 … 567", "at": AT, "ip_address": "198.51.100.23"},
    "ip_restriction_changed": {"rules": ["192.15.3.2", "192.168.0.1-192.168.0.10", "2001:db8::/64"],
                               "at": AT, "ip_address": "198.51.100.23"},
    "two_factor_enabled": {"at": AT, "ip_address": "198.51.100.23"},
    "two_factor_disabled": {"at": AT, "ip_address": "198.51.100.23"},
    "new_ip_login": {"ip_address": "198.51.100.99", "at": AT, "user_agent": "Firefox 133 on Linux"},
    "security_code_set": {"at": AT, "ip_address": "198.51.100.23"},
    "account_frozen": {"at": AT, "ip_address": "198.51.100.23"},
    "sessions_ended": {"at": AT, "ip_address": "198.51.100.23"},
    "newsletter": {"subject": "New VPS plans in Warsaw", "text": "Our new NVMe VPS plans are live.\n\nSee the panel."},
}

# What the customer must find in both the text and the HTML: {language: [values]}; "*" is every language.
ORDER = f"{PANEL}/orders/ord-1042"
ESSENTIALS = {
    "order_created": {"*": ["ord-1042", "VPS M", ORDER], "en": ["EUR 59.70", "3 months"],
                      "pl": ["59,70 EUR", "3 miesiące"]},
    "order_activated": {"*": ["ord-1042", "203.0.113.10", ORDER], "en": ["EUR 1,234.50", "2026-11-29"],
                        "pl": ["1234,50 EUR", "29.11.2026"]},
    "order_renewed": {"*": ["ord-1042", ORDER], "en": ["EUR 238.80", "2027-11-29", "12 months"],
                      "pl": ["238,80 EUR", "29.11.2027", "12 miesięcy"]},
    "order_plan_changed": {"*": ["ord-1042", "VPS S", "VPS M", ORDER], "en": ["EUR 4.35", "EUR 19.90"],
                           "pl": ["4,35 EUR", "19,90 EUR"]},
    "order_cancelled": {"*": ["ord-1042", ORDER], "en": ["EUR 12.50"], "pl": ["12,50 EUR"]},
    "refund_issued": {"*": ["ord-1042", f"{PANEL}/balance"], "en": ["EUR 12.50", "EUR 40.00"],
                      "pl": ["12,50 EUR", "40,00 EUR"]},
    "renewal_due": {"*": ["ord-1042", ORDER], "en": ["EUR 19.90", "2026-11-29", "7 days"],
                    "pl": ["19,90 EUR", "29.11.2026", "7 dni"]},
    "order_overdue": {"*": ["ord-1042", ORDER], "en": ["EUR 19.90", "2026-12-06"], "pl": ["19,90 EUR", "06.12.2026"]},
    "order_suspended": {"*": ["ord-1042", "203.0.113.10", ORDER], "en": ["EUR 19.90", "2026-12-20"],
                        "pl": ["19,90 EUR", "20.12.2026"]},
    "order_closed": {"*": ["ord-1042", "VPS M", ORDER]},
    "balance_low": {"*": [f"{PANEL}/balance"], "en": ["EUR 8.00", "EUR 20.00"], "pl": ["8,00 EUR", "20,00 EUR"]},
    "balance_running_out": {"*": [f"{PANEL}/balance", "ord-42", "VPS M"], "en": ["EUR 18.90", "3 days", "14 days"],
                            "pl": ["18,90 EUR", "3 dni", "14 dni"]},
    "monthly_statement": {"*": [f"{PANEL}/balance"], "en": ["EUR 12.00", "EUR 31.40"], "pl": ["12,00 EUR", "31,40 EUR"]},
    "invoice_issued": {"*": ["2026/000123", "ord-1042", f"{PANEL}/invoices/inv-77"], "en": ["EUR 24.48", "2026-11-29"],
                       "pl": ["24,48 EUR", "29.11.2026"]},
    "support_reply": {"*": ["T-5521", "Reverse DNS for 203.0.113.10", "The PTR record is set."]},
    "abuse_report": {"*": ["AB-318", "203.0.113.10", "ord-1042", "SSH brute force"], "en": ["2026-12-01"],
                     "pl": ["01.12.2026"]},
    "email_confirmation": {"*": ["Qm9vayB0b2tlbg", f"{PANEL}/confirm-email?token=Qm9vayB0b2tlbg"]},
    "email_change_requested": {"*": ["Q2hhbmdlIHRva2Vu", "jan@nowa-firma.example",
                                     f"{PANEL}/confirm-email?token=Q2hhbmdlIHRva2Vu"]},
    "email_changed": {"*": ["jan@stara-firma.example", "jan@nowa-firma.example", f"{PANEL}/security"],
                      "en": ["2026-11-29 10:00 UTC"], "pl": ["29.11.2026, 10:00 UTC"]},
    "phone_changed": {"*": ["+48 … 567", "198.51.100.23", f"{PANEL}/security"], "en": ["2026-11-29 10:00 UTC"],
                      "pl": ["29.11.2026, 10:00 UTC"]},
    "ip_restriction_changed": {"*": ["192.15.3.2", "192.168.0.1-192.168.0.10", "2001:db8::/64", "198.51.100.23"]},
    "new_ip_login": {"*": ["198.51.100.99", "Firefox 133 on Linux", f"{PANEL}/security"],
                     "en": ["2026-11-29 10:00 UTC"], "pl": ["29.11.2026, 10:00 UTC"]},
    "newsletter": {"*": ["Our new NVMe VPS plans are live.", f"{PANEL}/profile/notifications"]},
    "password_reset": {"*": ["jan.kowalski", f"{PANEL}/reset-password?token=UmVzZXQgdG9rZW4", "198.51.100.23"],
                       "en": ["2026-11-29 10:00 UTC"], "pl": ["29.11.2026, 10:00 UTC"]},
}
for _kind in ("password_changed", "two_factor_enabled", "two_factor_disabled", "security_code_set",
              "account_frozen", "sessions_ended"):
    ESSENTIALS[_kind] = {"*": ["198.51.100.23"], "en": ["2026-11-29 10:00 UTC"], "pl": ["29.11.2026, 10:00 UTC"]}

# An order's messages name it by its short number and host name (issue 18), the link by its id.
ORDER_KINDS = ("order_created", "order_activated", "order_renewed", "order_plan_changed", "order_cancelled",
               "renewal_due", "order_overdue", "order_suspended", "order_closed")
ORDER_REF = "ORD-001042 (web1.example.com)"
for _kind in ORDER_KINDS:
    EVENTS[_kind] = {**EVENTS[_kind], "order_number": "ORD-001042", "hostname": "web1.example.com"}
    ESSENTIALS[_kind]["*"] = [ORDER_REF if value == "ord-1042" else value for value in ESSENTIALS[_kind]["*"]]

EVERY_MESSAGE = [(kind, language) for kind in KINDS for language in LANGUAGES]


def event(message_kind, **overrides):
    return {"first_name": "Jan", **EVENTS[message_kind], **overrides}


def rendered(message_kind, language, **overrides):
    return render(message_kind, language, event(message_kind, **overrides), panel_url=PANEL)


def visible_text(html: str) -> str:
    """What a mail client shows of the HTML: tags gone, entities decoded, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_every_kind_has_a_realistic_event_with_only_documented_fields():
    assert set(EVENTS) == set(KINDS) == set(ESSENTIALS)
    for kind, data in EVENTS.items():
        assert set(data) | {"first_name"} == set(KINDS[kind].fields), kind


@pytest.mark.parametrize("kind, language", EVERY_MESSAGE)
def test_every_message_renders_with_the_values_the_customer_needs(kind, language):
    subject, text, html = rendered(kind, language)
    expected = ESSENTIALS[kind].get("*", []) + ESSENTIALS[kind].get(language, [])
    shown = visible_text(html)
    for value in expected:
        assert value in text, (value, text)
        assert value in shown or value in html, (value, shown)
    assert subject and "\n" not in subject and len(subject) < 120


@pytest.mark.parametrize("kind, language", EVERY_MESSAGE)
def test_every_message_is_a_whole_document_in_its_language(kind, language):
    subject, text, html = rendered(kind, language)
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert f'<html lang="{language}">' in html
    assert f"<title>{html_lib.escape(subject, quote=False)}</title>" in html
    greeting = "Dzień dobry," if language == "pl" else "Hello Jan,"
    assert text.startswith(greeting) and greeting in html
    assert "{{" not in text + html and "{%" not in text + html


@pytest.mark.parametrize("kind", KINDS)
def test_the_polish_and_english_versions_differ(kind):
    assert rendered(kind, "pl").text != rendered(kind, "en").text


@pytest.mark.parametrize("kind, language", EVERY_MESSAGE)
def test_templates_use_only_documented_fields_and_the_built_links(kind, language):
    env = domain.environment(language)
    macros = set(re.findall(r"{% macro (\w+)", env.loader.get_source(env, "_ui.html")[0]))
    known = set(KINDS[kind].fields) | set(PANEL_PAGES) | {"panel_url", "route", "email_subject", "order_ref"} | macros
    for suffix in ("txt", "html"):
        source = env.loader.get_source(env, f"{language}/{kind}.{suffix}")[0]
        unknown = meta.find_undeclared_variables(env.parse(source)) - known
        assert not unknown, f"{language}/{kind}.{suffix} uses undocumented {unknown}"


def test_every_kind_has_its_three_parts_in_both_languages():
    folder = Path(domain.TEMPLATES)
    for language in LANGUAGES:
        for kind in KINDS:
            assert (folder / language / f"{kind}.txt").is_file() and (folder / language / f"{kind}.html").is_file()
            source = (folder / language / f"{kind}.txt").read_text()
            assert "{% block subject %}" in source, f"{language}/{kind}.txt has no subject"


def test_polish_copy_is_written_with_diacritics():
    polish = " ".join(rendered(kind, "pl").text for kind in KINDS)
    for letter in "ąćęłńóśż":
        assert letter in polish, letter
    assert "Zamowienie" not in polish and "Haslo" not in polish


# --- branches of the copy -------------------------------------------------------------------

def test_a_paid_order_says_it_was_paid_and_a_pending_one_asks_for_a_top_up():
    assert "top up your balance" in rendered("order_created", "en").text
    paid = rendered("order_created", "en", status="active").text
    assert "paid from your balance" in paid and "top up" not in paid
    assert "Prosimy o doładowanie salda" in rendered("order_created", "pl").text.replace("\n", " ")


def test_cancellation_at_end_of_period_names_the_last_day_and_promises_no_refund():
    subject, text, _ = rendered("order_cancelled", "en", when="end_of_period", cancel_at="2026-11-29",
                                refund=eur("0.00"))
    assert subject == f"Order {ORDER_REF} will end on 2026-11-29"
    assert "active until 2026-11-29" in text and "EUR 0.00" not in text
    assert "29.11.2026" in rendered("order_cancelled", "pl", when="end_of_period", cancel_at="2026-11-29",
                                    refund=eur("0.00")).subject


def test_a_password_set_by_a_reset_link_says_every_session_ended():
    assert "every other session" in rendered("password_changed", "en").text.replace("\n", " ")
    reset = rendered("password_changed", "en", reset=True).text.replace("\n", " ")
    assert "reset with a link" in reset and "every session has been signed out" in reset
    assert "wszystkie sesje zostały zakończone" in rendered("password_changed", "pl", reset=True).text.replace("\n", " ")


def test_a_downgrade_tells_the_credit_instead_of_a_charge():
    text = rendered("order_plan_changed", "en", charge=eur("0.00"), credit=eur("3.10")).text
    assert "Credited to your balance for the rest of the period: EUR 3.10" in text
    assert "Charged" not in text


def test_auto_renewal_reminder_asks_only_for_enough_balance():
    text = rendered("renewal_due", "en", auto_renew=True, days_left=0).text
    assert "renews automatically" in text and "which is today" in text


def test_a_credit_note_is_called_so():
    assert rendered("invoice_issued", "en", kind="credit_note", gross=eur("-12.50")).subject == \
        "Credit note 2026/000123"
    assert rendered("invoice_issued", "pl", kind="credit_note", gross=eur("-12.50")).subject == \
        "Faktura korygująca 2026/000123"


def test_an_invoice_without_an_order_leaves_the_order_out():
    text = rendered("invoice_issued", "en", order_id=None).text
    assert "for order" not in text and "2026/000123" in text


def test_removing_the_ip_restriction_says_any_address_may_sign_in():
    subject, text, _ = rendered("ip_restriction_changed", "pl", rules=[])
    assert subject == "Usunięto ograniczenie dostępu według adresu IP"
    assert "z dowolnego adresu" in text


def test_security_notice_without_an_ip_address_leaves_the_line_out():
    _, text, html = rendered("password_changed", "en", ip_address=None)
    assert "From IP address" not in text and "From IP address" not in html


def test_new_ip_login_without_a_browser_leaves_the_line_out():
    assert "Browser" not in rendered("new_ip_login", "en", user_agent=None).text


# --- escaping ------------------------------------------------------------------------------------

def test_html_escapes_what_customers_and_staff_typed_but_text_keeps_it():
    reply = 'Use <script>alert("x")</script> & "quotes"'
    _, text, html = rendered("support_reply", "en", reply=reply, ticket_subject="<b>DNS</b>")
    assert "<script>" not in html and "<b>DNS</b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html and "&lt;b&gt;DNS&lt;/b&gt;" in html
    assert reply in text and "<b>DNS</b>" in text


def test_a_newsletters_paragraphs_and_line_breaks_survive_in_html():
    html = rendered("newsletter", "en", text="First line\nsecond line\n\nNew paragraph").html
    assert "<p>First line<br>\nsecond line</p>" in html and "<p>New paragraph</p>" in html


@pytest.mark.parametrize("kind", ORDER_KINDS)
def test_an_order_mail_names_the_order_by_number_and_host_name_in_its_subject(kind):
    for language in LANGUAGES:
        assert ORDER_REF in rendered(kind, language).subject
        assert "ord-1042" not in rendered(kind, language).subject
        # an event sent before orders had numbers still names its order
        older = render(kind, language, {k: v for k, v in event(kind).items() if k not in ("order_number", "hostname")},
                       panel_url=PANEL)
        assert "ord-1042" in older.subject
