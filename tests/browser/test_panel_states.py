"""The panel on a phone and in every state, in Chromium, in English and Polish (issue 18, item 5).

Every page at a desktop size and at 390x844 without sideways scrolling; tables as cards on a
phone; a compact header; loading, empty and not-found states; offline told apart from a server
fault; a 429 with its wait; one message per error, gone once the value is changed. A few faults
(offline, 500, 429) are made in the browser (Playwright's network control and routes): the
stack itself is real.
"""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, PUBLIC, every_page, new_customer, screenshot, settled

pytestmark = pytest.mark.e2e
TEXTS = {
    "en": {"not_found": "Page not found", "loading": "Loading…", "nothing": "Nothing here yet.",
           "offline": "You are offline", "fault": "A service is unavailable", "wait": "try again in 42 s",
           "menu": "Menu", "orders": "Orders", "length": "Enter 1 to 100 characters."},
    "pl": {"not_found": "Nie znaleziono strony", "loading": "Wczytywanie…", "nothing": "Nic tu jeszcze nie ma.",
           "offline": "Brak połączenia z internetem", "fault": "Usługa jest chwilowo niedostępna",
           "wait": "spróbuj ponownie za 42 s", "menu": "Menu", "orders": "Zamówienia",
           "length": "Wpisz od 1 do 100 znaków."},
}


def sideways(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.mark.parametrize("language", ["en", "pl"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_no_page_scrolls_sideways(open_as, customers, language, size):
    customer = customers[language]
    viewport = PHONE if size == "phone" else DESKTOP
    pages = every_page(customer)
    page = open_as(customer, viewport)
    too_wide = {}
    for path in pages:
        settled(page, path)
        if size == "phone":
            name = re.sub(r"[0-9a-f-]{36}", "one", path).strip("/").replace("/", "-").split("?")[0]
            screenshot(page, f"phone-{language}-{name}")
        if sideways(page) > 0:
            too_wide[path] = page.evaluate("document.documentElement.scrollWidth")
    visitor = open_as(None, viewport, language)
    for path in PUBLIC:
        settled(visitor, path)
        if sideways(visitor) > 0:
            too_wide[path] = visitor.evaluate("document.documentElement.scrollWidth")
    assert too_wide == {}


def test_on_a_phone_the_header_is_one_line_and_the_sections_open_from_the_menu(open_as, customers):
    page = settled(open_as(customers["pl"], PHONE), "/profile")
    header = page.locator("header.top").bounding_box()
    assert header["height"] <= 60, header   # a fifth of 844 px was 170 px
    orders = page.get_by_role("link", name=TEXTS["pl"]["orders"])
    expect(orders).to_be_hidden()
    page.get_by_role("button", name=TEXTS["pl"]["menu"]).click()
    expect(page.get_by_role("button", name=TEXTS["pl"]["menu"])).to_have_attribute("aria-expanded", "true")
    orders.click()
    page.wait_for_url("**/orders")


@pytest.mark.parametrize("language", ["en", "pl"])
def test_tables_are_cards_on_a_phone_and_tables_on_a_desktop(open_as, customers, language):
    phone = settled(open_as(customers[language], PHONE), "/orders")
    cell = phone.locator("#active-orders tbody td").first
    heading = phone.locator("#active-orders thead th").first.inner_text()
    assert cell.evaluate("td => getComputedStyle(td).display") == "grid"
    assert cell.evaluate("td => getComputedStyle(td, '::before').content") == f'"{heading}"'
    desktop = settled(open_as(customers[language], DESKTOP), "/orders")
    assert desktop.locator("#active-orders tbody td").first.evaluate("td => getComputedStyle(td).display") == "table-cell"


@pytest.mark.parametrize("language", ["en", "pl"])
def test_an_unknown_order_or_address_shows_a_not_found_page(open_as, customers, language):
    page = settled(open_as(customers[language]), f"/orders/{uuid.uuid4()}")
    expect(page.get_by_role("heading", level=1)).to_have_text(TEXTS[language]["not_found"])
    assert page.locator("body").get_attribute("data-state") == "not-found"
    assert page.locator("#renew, #order-events").count() == 0     # nothing of an order page is left
    settled(page, f"/invoices/{uuid.uuid4()}")
    expect(page.get_by_role("heading", level=1)).to_have_text(TEXTS[language]["not_found"])
    answer = page.goto("/no-such-page")
    assert answer.status == 404 and "text/html" in answer.headers["content-type"]
    expect(page.get_by_role("heading", level=1)).to_have_text(TEXTS[language]["not_found"])


@pytest.mark.parametrize("language", ["en", "pl"])
def test_a_table_says_it_is_loading_and_then_that_it_is_empty(open_as, stack, payments, language):
    newcomer = new_customer(stack, payments, language, with_order=False)
    page = open_as(newcomer)
    held = []
    page.route(re.compile(r".*/api/v1/orders(/history)?\?.*"), lambda route: held.append(route))
    page.goto("/orders")
    loading = page.locator("#active-orders .loading-row")
    expect(loading).to_have_text(TEXTS[language]["loading"])
    expect(page.locator(".page-loading")).to_be_visible()
    page.wait_for_timeout(100)
    for route in held:
        route.continue_()
    page.unroute(re.compile(r".*/api/v1/orders(/history)?\?.*"))
    page.wait_for_selector("body[data-state=ready]")
    expect(page.locator("#active-orders")).to_be_hidden()      # no bare headers
    expect(page.locator("#order-history")).to_be_hidden()
    expect(page.get_by_text(TEXTS[language]["nothing"])).to_be_visible()
    expect(page.locator(".page-loading")).to_be_hidden()


@pytest.mark.parametrize("language", ["en", "pl"])
def test_offline_is_told_apart_from_a_server_fault(open_as, customers, language):
    page = settled(open_as(customers[language]), "/profile/notifications")
    save = page.locator("#notifications-form button[type=submit]")
    page.context.set_offline(True)
    save.click()
    expect(page.locator("#notice")).to_contain_text(TEXTS[language]["offline"])
    page.context.set_offline(False)
    page.route("**/api/v1/profile/notifications", lambda route: route.fulfill(
        status=500, content_type="application/json",
        body='{"error": {"code": "internal_error", "message": "x", "fields": {}, "details": {}, "field_codes": {}}}')
        if route.request.method == "PUT" else route.continue_())
    save.click()
    expect(page.locator("#notice")).to_contain_text(TEXTS[language]["fault"])
    assert TEXTS[language]["offline"] not in page.locator("#notice").inner_text()


@pytest.mark.parametrize("language", ["en", "pl"])
def test_a_429_shows_how_long_to_wait(open_as, customers, language):
    page = settled(open_as(customers[language]), "/security")
    page.route("**/api/v1/security/password", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "42"}, content_type="application/json",
        body='{"error": {"code": "rate_limited", "message": "x", "fields": {}, "details": {"retry_after": 42}, '
             '"field_codes": {}}}'))
    form = page.locator("#password-form")
    form.locator("[name=current_password]").fill("not the password")
    form.locator("[name=new_password]").fill("another long passphrase 8")
    form.locator("[name=new_password_confirmation]").fill("another long passphrase 8")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for='']")).to_contain_text(TEXTS[language]["wait"])


def visible_messages(form) -> list[str]:
    return [text for text in form.locator("[data-error-for]").all_inner_texts() if text.strip()]


@pytest.mark.parametrize("language", ["en", "pl"])
def test_one_message_per_error_and_it_goes_when_the_value_is_changed(open_as, stack, payments, language):
    newcomer = new_customer(stack, payments, language, with_order=False)
    page = settled(open_as(newcomer), "/security")
    form = page.locator("#password-form")
    form.locator("[name=current_password]").fill("not the password at all")
    form.locator("[name=new_password]").fill("another long passphrase 8")
    form.locator("[name=new_password_confirmation]").fill("another long passphrase 8")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for]:not(:empty)")).to_have_count(1)
    assert len(visible_messages(form)) == 1
    form.locator("[name=current_password]").press_sequentially("x")
    expect(form.locator("[data-error-for]:not(:empty)")).to_have_count(0)

    profile = settled(page, "/profile").locator("#profile-form")
    profile.locator("[name=last_name]").fill("")
    profile.locator("button[type=submit]").click()
    expect(profile.locator("[data-error-for='last_name']")).to_have_text(TEXTS[language]["length"])
    assert visible_messages(profile) == [TEXTS[language]["length"]]
    profile.locator("[name=last_name]").fill("Nowak")
    expect(profile.locator("[data-error-for]:not(:empty)")).to_have_count(0)


def test_polish_dates_numbers_and_money_are_polish(open_as, customers):
    page = settled(open_as(customers["pl"]), f"/invoices/{customers['pl']['invoice']}")
    text = page.locator("#main").inner_text()
    assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{4}\b", text)          # no "12/4/2026"
    assert not re.search(r"\d+\.\d\d ?%", text)                          # no "23.00%"
    assert re.search(r"\b23\s?%", text)
    assert re.search(r"\d+,\d\d\sEUR", text)
    assert re.search(r"\b\d{1,2} (sty|lut|mar|kwi|maj|cze|lip|sie|wrz|paź|lis|gru)\S* \d{4}", text)
    english = settled(open_as(customers["en"]), f"/invoices/{customers['en']['invoice']}")
    assert re.search(r"\d+\.\d\d\sEUR", english.locator("#main").inner_text())
