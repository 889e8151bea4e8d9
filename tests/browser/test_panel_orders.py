"""The orders pages in Chromium (issue 18): the amount on the renew button is the amount charged,
also after plan changes; the plan list never offers the current plan; auto-renew is shown and
switched; orders are named by their short number and host name; in English and in Polish.
"""
from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import ready, screenshot
from tests.browser.test_panel import log_in, register, token_of

pytestmark = pytest.mark.e2e
POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}

TEXTS = {
    "en": {"quote": "Show what it costs", "confirm": "Change the plan", "renew_pay": "Renew and pay",
           "auto_renew": "Renew automatically from the balance", "on": "on", "off": "off",
           "auto_on": "Auto-renew is on.", "renewed": "The order is renewed for", "decimal": "."},
    "pl": {"quote": "Pokaż koszt zmiany", "confirm": "Zmień plan", "renew_pay": "Odnów i zapłać",
           "auto_renew": "Odnawiaj automatycznie z salda", "on": "włączone", "off": "wyłączone",
           "auto_on": "Automatyczne odnawianie jest włączone.", "renewed": "Zamówienie zostało odnowione za",
           "decimal": ","},
}


def customer_with_an_order(page, rpc, payments, stack, language: str, plan_id: str = "vps-l") -> dict:
    """A registered, logged-in customer with a postal address, 300.00 EUR and one paid VPS order."""
    login = f"o{uuid.uuid4().hex[:10]}"
    register(page, login, language=language)
    log_in(page, login)
    headers = {"Authorization": f"Bearer {token_of(page)}"}
    requests.patch(f"{stack.gateway_url}/api/v1/profile", json={"postal_address": POSTAL}, headers=headers,
                   timeout=30).raise_for_status()
    account = rpc.profile.find_by_login(login)["id"]
    payments.ledger.credit_payment(account, {"amount": "300.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")
    body = {"plan_id": plan_id, "period_months": 1,
            "fields": {"hostname": f"{login}.example.com", "os_template": "debian-12"}}
    placed = requests.post(f"{stack.gateway_url}/api/v1/orders", json=body, headers=headers, timeout=60)
    placed.raise_for_status()
    return {"headers": headers, "order": placed.json(), "login": login}


def amount_on(text: str, decimal: str) -> Decimal:
    """``Renew and pay 104.70 EUR`` -> 104.70 (the panel's own money format)."""
    figure = text.split(" EUR")[0].split()[-1].replace("\u00a0", "")
    return Decimal(figure.replace(decimal, "."))


def change_plan(page, plan_id: str, texts: dict) -> None:
    page.locator("#f-change-plan").select_option(plan_id)
    page.locator("#change-quote-button").click()
    page.locator("#change-quote").wait_for()
    page.locator("#change-confirm").click()
    # said once the order, the plans and the renewal quote have been read again
    name = {"vps-l": "VPS L", "vps-xl": "VPS XL", "vps-m": "VPS M"}[plan_id]
    expect(page.locator("#order-done")).to_contain_text(f"{name}:")
    expect(page.locator('[data-order="plan"]')).to_contain_text(name)


@pytest.mark.parametrize("language", ["en", "pl"])
def test_the_renew_button_shows_what_is_charged_after_plan_changes(open_panel, rpc, payments, stack, language):
    texts = TEXTS[language]
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, language)
    order = made["order"]

    ready(page, "/orders")
    first = page.locator("#active-orders tbody tr").first
    expect(first).to_contain_text(order["number"])
    expect(first).to_contain_text(order["hostname"])
    assert order["id"] not in first.inner_text()          # the 36-character id is not shown

    ready(page, f"/orders/{order['id']}")
    expect(page.locator('[data-order="number"]')).to_have_text(order["number"])
    for plan_id in ("vps-xl", "vps-l"):                   # the sequence that once left the old price on the button
        change_plan(page, plan_id, texts)
        current = {"vps-l": "VPS L", "vps-xl": "VPS XL"}[plan_id]
        offered = page.locator("#f-change-plan option").all_inner_texts()
        assert current not in offered and offered      # the plan list never offers the current plan
    button = page.locator("#renew-confirm")
    expect(button).to_contain_text(texts["renew_pay"])
    page.locator("#f-renew-period").select_option("3")
    expect(button).to_be_enabled()
    quote = requests.get(f"{stack.gateway_url}/api/v1/orders/{order['id']}/renew/quote?period_months=3",
                         headers=made["headers"], timeout=30).json()
    expect(button).to_have_attribute("data-amount", quote["charge"]["amount"])
    shown = amount_on(button.inner_text(), texts["decimal"])
    assert shown == Decimal(quote["charge"]["amount"])
    screenshot(page, f"order-renew-quote-{language}")
    button.click()
    expect(page.locator("#order-done")).to_contain_text(texts["renewed"])

    transactions = requests.get(f"{stack.gateway_url}/api/v1/balance/transactions", headers=made["headers"],
                                timeout=30).json()["items"]
    charged = transactions[0]
    assert charged["kind"] == "charge" and Decimal(charged["amount"]["amount"]) == -shown
    # after the renewal the button carries the next renewal's quote, read again from the server
    expect(button).to_contain_text(texts["renew_pay"])


CHANGED = {"en": "The amount has changed since it was shown", "pl": "Kwota zmieniła się od chwili wyświetlenia"}


@pytest.mark.parametrize("language", ["en", "pl"])
def test_a_renewal_whose_amount_moved_after_it_was_shown_is_shown_again_not_charged(open_panel, rpc, payments,
                                                                                    stack, language):
    texts = TEXTS[language]
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, language, plan_id="vps-s")
    order, headers = made["order"], made["headers"]
    ready(page, f"/orders/{order['id']}")
    button = page.locator("#renew-confirm")
    expect(button).to_be_enabled()
    shown = amount_on(button.inner_text(), texts["decimal"])
    # meanwhile, in another tab, the plan changes: the renewal now costs more
    requests.post(f"{stack.gateway_url}/api/v1/orders/{order['id']}/change-plan", json={"plan_id": "vps-m"},
                  headers={**headers, "Idempotency-Key": str(uuid.uuid4())}, timeout=60).raise_for_status()
    before = requests.get(f"{stack.gateway_url}/api/v1/balance", headers=headers, timeout=30).json()["balance"]
    button.click()
    expect(page.locator("#renew-form .form-error")).to_contain_text(CHANGED[language])
    now = amount_on(button.inner_text(), texts["decimal"])
    assert now > shown
    after = requests.get(f"{stack.gateway_url}/api/v1/balance", headers=headers, timeout=30).json()["balance"]
    assert after == before                                     # nothing was charged at the old amount
    button.click()
    expect(page.locator("#order-done")).to_contain_text(texts["renewed"])
    charged = requests.get(f"{stack.gateway_url}/api/v1/balance/transactions", headers=headers,
                           timeout=30).json()["items"][0]
    assert charged["kind"] == "charge" and Decimal(charged["amount"]["amount"]) == -now


@pytest.mark.parametrize("language", ["en", "pl"])
def test_auto_renew_is_shown_and_switched_on_the_order_page(open_panel, rpc, payments, stack, language):
    texts = TEXTS[language]
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, language, plan_id="vps-s")
    order = made["order"]
    ready(page, f"/orders/{order['id']}")
    expect(page.locator('[data-order="auto_renew"]')).to_have_text(texts["off"])
    expect(page.locator('[data-order="hostname"]')).to_have_text(order["hostname"])
    page.get_by_label(texts["auto_renew"]).check()
    expect(page.locator("#auto-renew-form .form-done")).to_have_text(texts["auto_on"])
    expect(page.locator('[data-order="auto_renew"]')).to_have_text(texts["on"])
    stored = requests.get(f"{stack.gateway_url}/api/v1/orders/{order['id']}", headers=made["headers"], timeout=30)
    assert stored.json()["auto_renew"] is True
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.get_by_label(texts["auto_renew"])).to_be_checked()
    screenshot(page, f"order-auto-renew-{language}")

    ready(page, "/balance")                                  # the order's charge names it by number
    charge = page.locator("#transactions tbody tr").first
    expect(charge.locator("td").nth(3)).to_have_text(order["number"])


SOLD_OUT = {"en": "Amsterdam, Netherlands (AMS1) – sold out", "pl": "Amsterdam, Holandia (AMS1) – wyprzedane"}
DATACENTER = {"en": "Data centre", "pl": "Centrum danych"}


def sell_out_ams1(stack, made) -> None:
    """Order Dedicated Pro in AMS1 until the plans list says it has no stock there (4 servers)."""
    body = {"plan_id": "ded-e2388g", "period_months": 1,
            "fields": {"hostname": "db.example.com", "os_template": "debian-12", "datacenter": "AMS1"}}

    def ams1_available() -> bool:
        plans = requests.get(f"{stack.gateway_url}/api/v1/plans?kind=dedicated", timeout=30).json()["items"]
        plan = next(p for p in plans if p["id"] == "ded-e2388g")
        field = next(f for f in plan["required_fields"] if f["name"] == "datacenter")
        return next(o["available"] for o in field["options"] if o["value"] == "AMS1")

    for _ in range(5):
        if not ams1_available():
            return
        requests.post(f"{stack.gateway_url}/api/v1/orders", json=body, timeout=60,
                      headers={**made["headers"], "Idempotency-Key": str(uuid.uuid4())}).raise_for_status()
    assert not ams1_available()


@pytest.mark.parametrize("language", ["en", "pl"])
def test_the_order_form_offers_no_sold_out_datacenter(open_panel, rpc, payments, stack, language):
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, language, plan_id="vps-s")
    payments.ledger.credit_payment(rpc.profile.find_by_login(made["login"])["id"],
                                   {"amount": "600.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")
    sell_out_ams1(stack, made)
    ready(page, "/orders/new?kind=dedicated")
    page.locator('input[name="plan_id"][value="ded-e2388g"]').check()
    select = page.get_by_label(DATACENTER[language])
    sold_out = select.locator("option", has_text=SOLD_OUT[language])
    expect(sold_out).to_be_disabled()
    offered = [option for option in select.locator("option:not([disabled])").all_inner_texts() if "(" in option]
    assert offered and not any("AMS1" in option for option in offered)
    screenshot(page, f"order-new-stock-{language}")


HOME = {
    "en": {"heading": "Home", "pending": "awaits payment", "phone": "Your mobile phone number is not verified yet.",
           "method": "Card (Visa, Mastercard)", "top_up": "Top up the balance", "nothing": "Nothing needs your attention."},
    "pl": {"heading": "Strona główna", "pending": "czeka na płatność", "method": "Karta płatnicza (Visa, Mastercard)",
           "phone": "Twój numer telefonu komórkowego nie jest jeszcze zweryfikowany.", "top_up": "Doładuj saldo",
           "nothing": "Nic nie wymaga Twojej uwagi."},
}


@pytest.mark.parametrize("language", ["en", "pl"])
def test_the_home_page_shows_the_balance_what_needs_attention_and_how_to_top_up(open_panel, rpc, payments, stack,
                                                                                language):
    texts = HOME[language]
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    login = f"h{uuid.uuid4().hex[:10]}"
    register(page, login, phone=f"+48600{uuid.uuid4().int % 1_000_000:06d}", language=language)
    log_in(page, login)
    headers = {"Authorization": f"Bearer {token_of(page)}"}
    requests.patch(f"{stack.gateway_url}/api/v1/profile", json={"postal_address": POSTAL}, headers=headers,
                   timeout=30).raise_for_status()
    body = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": f"{login}.example.com",
                                                               "os_template": "debian-12"}}
    order = requests.post(f"{stack.gateway_url}/api/v1/orders", json=body, headers=headers, timeout=60).json()
    assert order["status"] == "pending_payment"             # nothing on the balance yet

    page.goto("/")
    page.wait_for_url("**/home")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("h1").inner_text() == texts["heading"]
    expect(page.locator("#home-balance")).to_contain_text("0")
    expect(page.locator("#home-methods")).to_contain_text(texts["method"])
    attention = page.locator("#attention")
    expect(attention.locator(".attention-pending")).to_contain_text(texts["pending"])
    expect(attention.locator(".attention-pending")).to_contain_text(f"{order['number']} ({order['hostname']})")
    expect(attention.locator(".attention-phone")).to_have_text(re.compile(re.escape(texts["phone"])))
    expect(page.locator("#attention-none")).to_be_hidden()
    screenshot(page, f"home-{language}")

    account = rpc.profile.find_by_login(login)["id"]
    payments.ledger.credit_payment(account, {"amount": "50.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")
    # the balance pays the waiting order (ledger.balance_changed -> orders): then it needs nothing
    for _ in range(60):
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        if page.locator(".attention-pending").count() == 0:
            break
        page.wait_for_timeout(500)
    assert page.locator(".attention-pending").count() == 0
    left = Decimal("50.00") - Decimal(order["cost"]["amount"])   # an individual pays the list price
    assert amount_on(page.locator("#home-balance").inner_text(), TEXTS[language]["decimal"]) == left
    page.get_by_role("link", name=texts["top_up"]).click()
    page.wait_for_url("**/balance#payment-methods")


INVOICE = {
    "en": {"credit_note": "Credit note", "invoice": "Invoice", "view": "View", "corrects": " of ",
           "paid": "Paid from the balance on", "returned": "Returned to the balance on",
           "pdf_paid": "Paid from the balance on", "pdf_sale": "Date of sale"},
    "pl": {"credit_note": "Faktura korygująca", "invoice": "Faktura", "view": "Zobacz", "corrects": " z dnia ",
           "paid": "Zapłacono z salda dnia", "returned": "Zwrócono na saldo dnia",
           "pdf_paid": "Zapłacono z salda dnia", "pdf_sale": "Data sprzedaży"},
}


def pdf_text(page, stack, headers, invoice_id: str) -> str:
    import io

    from pypdf import PdfReader
    pdf = requests.get(f"{stack.gateway_url}/api/v1/invoices/{invoice_id}/pdf", headers=headers, timeout=60)
    pdf.raise_for_status()
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages).split())


@pytest.mark.parametrize("language", ["en", "pl"])
def test_invoices_show_the_sale_date_the_payment_and_the_corrected_number(open_panel, rpc, payments, stack, language):
    texts = INVOICE[language]
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, language, plan_id="vps-s")
    order, headers = made["order"], made["headers"]
    requests.post(f"{stack.gateway_url}/api/v1/orders/{order['id']}/cancel", json={"when": "now"}, timeout=60,
                  headers={**headers, "Idempotency-Key": str(uuid.uuid4())}).raise_for_status()
    documents = requests.get(f"{stack.gateway_url}/api/v1/invoices", headers=headers, timeout=30).json()["items"]
    note = next(d for d in documents if d["kind"] == "credit_note")
    invoice = next(d for d in documents if d["kind"] == "invoice")

    ready(page, "/invoices")
    rows = page.locator("#invoices tbody tr")
    expect(rows.first).to_contain_text(order["number"])          # the order by its number, not its id
    assert order["id"] not in page.locator("#invoices").inner_text()

    ready(page, f"/invoices/{note['id']}")
    corrects = page.locator('[data-invoice="corrects"]')
    expect(corrects).to_contain_text(f"{invoice['number']}{texts['corrects']}")
    assert invoice["id"] not in corrects.inner_text()
    expect(page.locator('[data-invoice="settled"]')).to_contain_text(texts["returned"])
    expect(page.locator('[data-invoice="sale_date"]')).not_to_have_text("–")
    screenshot(page, f"credit-note-{language}")
    corrects.get_by_role("link").click()
    page.wait_for_url(f"**/invoices/{invoice['id']}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator('[data-invoice="settled"]')).to_contain_text(texts["paid"])
    expect(page.locator('[data-invoice="order_id"]')).to_have_text(order["number"])
    screenshot(page, f"invoice-{language}")

    printed = pdf_text(page, stack, headers, invoice["id"])
    assert texts["pdf_paid"] in printed and texts["pdf_sale"] in printed
    assert "Total to pay" not in printed and "Do zapłaty" not in printed


FORM = {"en": {"period": "Period", "host": "Host name", "os": "Operating system", "pay": "Place the order and pay"},
        "pl": {"period": "Okres", "host": "Nazwa hosta", "os": "System operacyjny", "pay": "Złóż zamówienie i zapłać"}}


def test_an_answer_to_an_earlier_quote_never_replaces_the_latest_on_the_order_button(open_panel, rpc, payments,
                                                                                     stack):
    """The plan's first period is quoted, then 3 months; the first answer arrives last (held here)."""
    page = open_panel(locale="en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, "en", plan_id="vps-s")
    ready(page, "/orders/new?kind=vps")
    quotes = re.compile(r".*/api/v1/orders/quote\?.*")
    held = []
    page.route(quotes, lambda route: held.append(route) if "period_months=1" in route.request.url
               else route.continue_())
    page.locator('input[name="plan_id"][value="vps-m"]').check()
    page.wait_for_function("document.querySelector('#f-period_months').value === '1'")
    page.get_by_label(FORM["en"]["period"]).select_option("3")
    button = page.locator("#order-form button[type=submit]")
    three = requests.get(f"{stack.gateway_url}/api/v1/orders/quote?plan_id=vps-m&period_months=3",
                         headers=made["headers"], timeout=30).json()["charge"]["amount"]
    expect(button).to_have_attribute("data-amount", three)
    assert len(held) == 1
    with page.expect_response(quotes):
        held[0].continue_()          # the month's answer, after the three months'
    page.wait_for_timeout(200)       # the page's own handling of it
    expect(button).to_have_attribute("data-amount", three)
    expect(page.get_by_label(FORM["en"]["period"])).to_have_value("3")


@pytest.mark.parametrize("language", ["en", "pl"])
def test_the_order_button_carries_the_amount_placing_the_order_takes(open_panel, rpc, payments, stack, language):
    texts, form = TEXTS[language], FORM[language]
    page = open_panel(locale="pl-PL" if language == "pl" else "en-GB")
    made = customer_with_an_order(page, rpc, payments, stack, language, plan_id="vps-s")
    ready(page, "/orders/new?kind=vps")
    page.locator('input[name="plan_id"][value="vps-m"]').check()
    page.get_by_label(form["period"]).select_option("3")
    page.get_by_label(form["host"]).fill("shop.example.com")
    page.get_by_label(form["os"]).select_option("debian-12")
    button = page.locator("#order-form button[type=submit]")
    expect(button).to_contain_text(form["pay"])
    quote = requests.get(f"{stack.gateway_url}/api/v1/orders/quote?plan_id=vps-m&period_months=3",
                         headers=made["headers"], timeout=30).json()
    expect(button).to_have_attribute("data-amount", quote["charge"]["amount"])
    shown = amount_on(button.inner_text(), texts["decimal"])
    screenshot(page, f"order-new-quote-{language}")
    button.click()
    page.wait_for_url("**/orders/*?placed=1")
    page.wait_for_selector("body[data-ready=true]")
    charged = requests.get(f"{stack.gateway_url}/api/v1/balance/transactions", headers=made["headers"],
                           timeout=30).json()["items"][0]
    assert charged["kind"] == "charge" and Decimal(charged["amount"]["amount"]) == -shown
