"""The balance forecast on the orders page, in headless Chromium, in English and Polish (issue 21, item 1).

A line above the active orders says how long the balance lasts (the balance page's words), and the
order the forecast says stops first carries "stops on <date>: top up <amount>", a link to the
forecast, on its row at a desktop's size and on its card at 390x844, without sideways scrolling
and without an axe-core violation. Without the forecast (the ledger away) the orders are listed.
"""
from __future__ import annotations

import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, screenshot, settled
from tests.browser.test_panel_accessibility import violations
from tests.browser.test_panel_forecast import customer_over_the_api, pay
from tests.browser.test_panel_states import sideways

pytestmark = pytest.mark.e2e
TEXTS = {
    "en": {"summary": "Your balance covers your services until", "days": "days", "mark": "Stops on",
           "top_up": "top up 9.70 EUR"},
    "pl": {"summary": "Saldo pokrywa Twoje usługi do", "days": "dni", "mark": "Przestanie być opłacane",
           "top_up": "doładuj saldo o 9,70 EUR"},
}


def place_vps(stack, headers: dict, auto_renew: bool) -> dict:
    placed = requests.post(f"{stack.gateway_url}/api/v1/orders", timeout=20,
                           headers={**headers, "Idempotency-Key": str(uuid.uuid4())}, json={
                               "plan_id": "vps-s", "period_months": 1, "auto_renew": auto_renew,
                               "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}})
    assert placed.status_code == 201, placed.text
    return placed.json()


def customer_whose_second_order_stops(stack, payments, language: str) -> dict:
    """20.00 paid, two VPS S orders of 9.90: the first renews nothing, the second renews and its
    renewal cannot be paid (0.20 left): 9.70 is what a top-up must bring."""
    _, account, headers = customer_over_the_api(stack, language)
    pay(payments, account, "20.00")
    kept = place_vps(stack, headers, auto_renew=False)
    stops = place_vps(stack, headers, auto_renew=True)
    forecast = requests.get(f"{stack.gateway_url}/api/v1/balance/forecast", headers=headers, timeout=10).json()
    assert forecast["stops"]["order_id"] == stops["id"], forecast
    return {"language": language, "token": headers["Authorization"].split()[1], "headers": headers,
            "kept": kept, "stops": stops, "forecast": forecast}


def order_row(page, order: dict):
    return page.locator("#active-orders tbody tr").filter(has=page.get_by_role("link", name=order["number"], exact=True))


@pytest.mark.parametrize("language", ["en", "pl"])
def test_the_orders_page_says_how_long_the_balance_lasts_and_marks_the_order_that_stops(
        open_as, stack, payments, language):
    customer = customer_whose_second_order_stops(stack, payments, language)
    texts, forecast = TEXTS[language], customer["forecast"]
    balance_page = settled(open_as(customer, DESKTOP), "/balance")
    said_on_the_balance_page = balance_page.locator("#forecast-summary").inner_text()

    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = settled(open_as(customer, viewport), "/orders")
        assert page.locator("body").get_attribute("data-state") == "ready"
        summary = page.locator("#orders-forecast")
        expect(summary).to_be_visible()
        assert summary.inner_text() == said_on_the_balance_page     # the same words, from the same renderer
        assert summary.inner_text().startswith(texts["summary"]) and f"({forecast['days']} {texts['days']})" in summary.inner_text()

        marks = page.locator("#active-orders .forecast-mark")
        expect(marks).to_have_count(1)
        mark = order_row(page, customer["stops"]).locator(".forecast-mark")
        expect(mark).to_be_visible()
        assert mark.inner_text().startswith(texts["mark"]) and mark.inner_text().endswith(texts["top_up"]), mark.inner_text()
        assert mark.get_attribute("href") == "/balance#forecast"
        expect(order_row(page, customer["kept"]).locator(".forecast-mark")).to_have_count(0)

        assert sideways(page) <= 0, size
        box = mark.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (size, box)
        display = order_row(page, customer["stops"]).locator("td").first.evaluate("td => getComputedStyle(td).display")
        assert display == ("table-cell" if size == "desktop" else "grid"), size   # rows on a desktop, cards on a phone
        assert violations(page) == [], size                      # axe-core: the line and the mark read well
        screenshot(page, f"orders-forecast-{language}-{size}")

    mark.click()
    page.wait_for_url(re.compile(r".*/balance#forecast$"))
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#forecast-stops")).to_contain_text(customer["stops"]["id"])


def test_the_orders_page_lists_the_orders_when_the_forecast_cannot_be_read(open_as, stack, payments):
    customer = customer_whose_second_order_stops(stack, payments, "en")
    page = open_as(customer, DESKTOP)
    page.route(re.compile(r".*/api/v1/balance/forecast$"), lambda route: route.fulfill(
        status=503, content_type="application/json", body='{"error": {"code": "service_unavailable", "message": ""}}'))
    settled(page, "/orders")
    assert page.locator("body").get_attribute("data-state") == "ready"
    expect(order_row(page, customer["stops"])).to_be_visible()
    expect(order_row(page, customer["kept"])).to_be_visible()
    expect(page.locator("#orders-forecast")).to_be_hidden()
    expect(page.locator("#active-orders .forecast-mark")).to_have_count(0)


def test_a_balance_that_lasts_past_the_horizon_marks_no_order(open_as, stack, payments):
    _, account, headers = customer_over_the_api(stack, "en")
    pay(payments, account, "500.00")                        # 50 renewals of 9.90: past the 366 days
    order = place_vps(stack, headers, auto_renew=True)
    customer = {"language": "en", "token": headers["Authorization"].split()[1]}
    page = settled(open_as(customer, PHONE), "/orders")
    expect(order_row(page, order)).to_be_visible()
    expect(page.locator("#orders-forecast")).to_have_text("Your balance covers your services for more than 366 days.")
    expect(page.locator("#active-orders .forecast-mark")).to_have_count(0)


def test_the_top_up_named_is_what_the_renewal_lacks_after_the_renewals_before_it_and_the_credit_limit(
        open_as, stack, payments, rpc):
    _, account, headers = customer_over_the_api(stack, "en")
    pay(payments, account, "30.00")
    rpc.ledger.set_credit_limit(account, {"amount": "5.00", "currency": "EUR"}, "tests")
    order = place_vps(stack, headers, auto_renew=True)      # 20.10 left: renewals to 10.20 and 0.30, then -9.60
    forecast = requests.get(f"{stack.gateway_url}/api/v1/balance/forecast", headers=headers, timeout=10).json()
    assert [r["balance_after"]["amount"] for r in forecast["renewals"]] == ["10.20", "0.30"], forecast
    assert forecast["stops"]["order_id"] == order["id"]
    page = settled(open_as({"language": "en", "token": headers["Authorization"].split()[1]}, DESKTOP), "/orders")
    # 9.90 less the 0.30 left and the 5.00 the credit limit allows: 4.60 makes the third renewal payable
    expect(order_row(page, order).locator(".forecast-mark")).to_have_text(re.compile(r"^Stops on .+: top up 4\.60 EUR$"))

    def read() -> dict:
        return requests.get(f"{stack.gateway_url}/api/v1/balance/forecast", headers=headers, timeout=10).json()

    pay(payments, account, "4.59")                            # a cent short: the same renewal still stops
    assert read()["covered_until"] == forecast["covered_until"]
    pay(payments, account, "0.01")                            # the amount named: that renewal is paid, down to -5.00
    after = read()
    assert after["covered_until"] > forecast["covered_until"] and after["renewals"][2]["balance_after"]["amount"] == "-5.00"
