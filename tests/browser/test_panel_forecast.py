"""The forecast, its warning band, statements and the archive in the panel, in headless Chromium (issue 21)."""
from __future__ import annotations

import csv
import io
import uuid
import zipfile
from decimal import Decimal

import pytest
import requests

from tests.browser.conftest import ready, screenshot
from tests.browser.test_panel import PASSWORD, log_in

pytestmark = pytest.mark.e2e
POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


def customer_over_the_api(stack, language: str = "en") -> tuple[str, str, dict]:
    """(login, account id, headers) of a new customer with a postal address, made over the API."""
    base, login = stack.gateway_url, f"b{uuid.uuid4().hex[:10]}"
    profile = requests.post(f"{base}/api/v1/accounts", timeout=10, json={
        "login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
        "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL",
        "postal_address": POSTAL, "language": language}).json()
    token = requests.post(f"{base}/api/v1/sessions", json={"login": login, "password": PASSWORD}, timeout=10).json()
    return login, profile["id"], {"Authorization": f"Bearer {token['token']}"}


def order_vps(stack, headers: dict) -> dict:
    placed = requests.post(f"{stack.gateway_url}/api/v1/orders", headers=headers, timeout=20, json={
        "plan_id": "vps-s", "period_months": 1, "auto_renew": True,
        "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}})
    assert placed.status_code == 201, placed.text
    return placed.json()


def pay(payments, account: str, amount: str) -> None:
    payments.ledger.credit_payment(account, {"amount": amount, "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")


def test_the_balance_page_shows_how_long_the_balance_lasts_and_every_page_warns_under_the_alert(
        open_panel, stack, payments):
    login, account, headers = customer_over_the_api(stack)
    pay(payments, account, "10.00")
    order = order_vps(stack, headers)                       # 0.10 left: the renewal in a month cannot be paid
    page = open_panel()
    log_in(page, login)
    assert page.locator("#forecast-band").is_hidden()       # no alert in days asked for yet
    ready(page, "/profile/notifications")
    page.get_by_label("Alert when the balance covers fewer days than").fill("40")
    page.get_by_label("Mail me a statement of my account for each month").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved").wait_for()
    saved = requests.get(f"{stack.gateway_url}/api/v1/profile/notifications", headers=headers, timeout=10).json()
    assert saved["low_balance_days"] == 40 and saved["monthly_statement"] is True
    for path in ("/orders", "/profile", "/invoices"):
        ready(page, path)
        band = page.locator("#forecast-band")
        assert band.is_visible() and "Your balance covers your services only until" in band.inner_text(), path
    screenshot(page, "forecast-band")

    ready(page, "/balance")
    forecast = requests.get(f"{stack.gateway_url}/api/v1/balance/forecast", headers=headers, timeout=10).json()
    summary = page.locator("#forecast-summary").inner_text()
    assert summary.startswith("Your balance covers your services until") and f"({forecast['days']} days)" in summary
    stops = page.locator("#forecast-stops").inner_text()
    assert order["id"] in stops and "VPS S" in stops and "9.90 EUR" in stops

    pay(payments, account, "20.00")                          # two more renewals: past the 40 days
    ready(page, "/balance")
    page.locator("#forecast-details summary").click()
    rows = page.locator("#forecast-renewals tbody tr")
    assert rows.count() == 2 and "VPS S, renewal (1 mo.)" in rows.first.inner_text()
    assert "10.20 EUR" in rows.first.inner_text() and "0.30 EUR" in rows.nth(1).inner_text()
    assert page.locator("#forecast-band").is_hidden()
    screenshot(page, "balance-forecast")

    page.get_by_label("Format").select_option("csv")
    with page.expect_download() as csv_download:
        page.get_by_role("button", name="Download the statement").click()
    rows = list(csv.DictReader(io.StringIO(open(csv_download.value.path(), encoding="utf-8").read())))
    assert [row["kind"] for row in rows] == ["opening balance", "payment", "charge", "payment", "closing balance"]
    assert Decimal(rows[-1]["balance after"]) == Decimal("20.10")
    page.get_by_label("Format").select_option("pdf")
    with page.expect_download() as pdf_download:
        page.get_by_role("button", name="Download the statement").click()
    assert open(pdf_download.value.path(), "rb").read(5) == b"%PDF-"
    with page.expect_download() as zip_download:
        page.get_by_role("button", name="Download the ZIP").click()
    archive = zipfile.ZipFile(zip_download.value.path())
    assert len(archive.namelist()) == 2 and "index.csv" in archive.namelist()

    page.get_by_label("From").fill("2026-12-31")
    page.get_by_label("To").fill("2026-01-01")
    page.get_by_role("button", name="Download the statement").click()
    page.locator("#statement-form [data-error-for=to]").filter(has_text="before").wait_for()


def test_a_polish_customer_who_renews_nothing_is_told_so_in_polish(open_panel, stack):
    login, _, _ = customer_over_the_api(stack, language="pl")
    page = open_panel(locale="pl-PL")
    log_in(page, login)
    ready(page, "/balance")
    assert page.locator("#forecast-summary").inner_text().startswith("Żadne z Twoich zamówień nie przedłuża się")
    assert page.get_by_role("heading", name="Wyciąg z rachunku").is_visible()
    assert page.get_by_role("button", name="Pobierz wyciąg").is_visible()
    assert page.get_by_role("button", name="Pobierz ZIP").is_visible()
    assert page.locator("#forecast-details").is_hidden() and page.locator("#forecast-band").is_hidden()
    screenshot(page, "balance-forecast-pl")
