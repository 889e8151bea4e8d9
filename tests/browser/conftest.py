"""Browser fixtures: the whole stack (as in tests/e2e) and Debian's headless Chromium via Playwright.

Run them with ``make test-browser`` (``pytest --confcutdir=tests/browser tests/browser``): Playwright's
sync API runs an asyncio loop that deadlocks under eventlet's monkey patching, which the root
conftest applies for Nameko; this process needs no eventlet, since the stack runs as processes.
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")

import os
import re
import shutil
from pathlib import Path

import uuid

import pytest
import requests

from services.common.config import ROOT
from tests.e2e.conftest import stack  # noqa: F401  (the session's stack, shared with the e2e tests)
from tests.support import bus_client, eventually

SCREENSHOTS = ROOT / "var" / "screenshots"
# The machine has no network: Chromium must not try to reach Google's services either.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(items):
    # The hook sees every collected item, not only this folder's: a plain `pytest` collects
    # them all, and only the browser tests are to be skipped there.
    import eventlet.patcher
    if eventlet.patcher.is_monkey_patched("socket"):
        reason = "browser tests run in their own process: make test-browser"
        here = Path(__file__).parent
        for item in items:
            if here in Path(item.path).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser(stack):  # noqa: F811  (closed before the stack stops)
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def open_panel(browser, stack):
    """``open_panel(locale="en-GB")`` opens a fresh browser context (no cookies, no session) on the panel."""
    contexts = []

    def make(locale: str = "en-GB"):
        context = browser.new_context(base_url=stack.gateway_url, locale=locale, accept_downloads=True,
                                      viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()
    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    """A full-page screenshot under var/screenshots/ for a reviewer to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def ready(page, path: str):
    """Open ``path`` and wait until the page has filled itself from the API."""
    page.goto(path)
    page.wait_for_selector("body[data-ready=true]")
    return page


@pytest.fixture(scope="module")
def rpc(stack):
    """Support staff's tools over RPC (``operator``): every read."""
    with bus_client(stack.env, "operator") as client:
        yield client


@pytest.fixture(scope="module")
def payments(stack):
    """The payment system over RPC (``payments``): it credits payments."""
    with bus_client(stack.env, "payments") as client:
        yield client


@pytest.fixture
def confirmation_link(stack):
    """``confirmation_link(address)``: the panel link in the newest confirmation mail to ``address``."""
    def find(address: str) -> str:
        def probe():
            items = requests.get(f"{stack.url('mail_http')}/messages", params={"to": address}, timeout=5).json()["items"]
            for message in items:
                found = re.search(r"https?://\S+/confirm-email\?token=[^\s\"<>]+", message["text"])
                if found:
                    return found.group(0)
            return None
        return eventually(probe, timeout=30, interval=0.3)
    return find


@pytest.fixture
def telephony(stack):
    urls = {"primary": stack.url("telephony_primary"), "fallback": stack.url("telephony_fallback")}

    class Telephony:
        def last_call(self, to: str, gateway: str = "primary"):
            def probe():
                items = requests.get(f"{urls[gateway]}/calls", params={"to": to}, timeout=5).json()["items"]
                return items[0] if items else None
            return eventually(probe, timeout=10, interval=0.3)

        def mode(self, gateway: str, mode: str) -> None:
            requests.put(f"{urls[gateway]}/control", json={"mode": mode}, timeout=5).raise_for_status()

    yield Telephony()
    for url in urls.values():
        requests.put(f"{url}/control", json={"mode": "ok"}, timeout=5)


# ---- a customer with something in every table, and browsers at a desktop's and a phone's size

PASSWORD = "a long and unusual passphrase 7"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PUBLIC = ["/login", "/register", "/forgot-password", "/reset-password", "/confirm-email"]


def new_customer(stack, payments, language: str, with_order: bool) -> dict:
    """A customer made over the API (faster than the forms, which other tests drive); with an order
    paid from a payment, so that every table has rows."""
    api = stack.gateway_url
    login = f"s{uuid.uuid4().hex[:10]}"
    created = requests.post(f"{api}/api/v1/accounts", json={
        "login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
        "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL", "language": language,
        "postal_address": {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}},
        timeout=30)
    assert created.status_code == 201, created.text
    token = requests.post(f"{api}/api/v1/sessions", json={"login": login, "password": PASSWORD},
                          timeout=30).json()["token"]
    customer = {"login": login, "token": token, "language": language, "order": None, "invoice": None}
    if with_order:
        account = created.json()["id"]
        payments.ledger.credit_payment(account, {"amount": "500.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")
        plan = requests.get(f"{api}/api/v1/plans?kind=vps", timeout=30).json()["items"][0]
        fields = {spec["name"]: (spec["options"][0] if spec["type"] == "choice" else "web1.example.com")
                  for spec in plan["required_fields"]}
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        order = requests.post(f"{api}/api/v1/orders", headers=headers, timeout=60, json={
            "plan_id": plan["id"], "period_months": plan["prices"][0]["period_months"], "fields": fields})
        assert order.status_code == 201, order.text
        customer["order"] = order.json()["id"]
        invoices = requests.get(f"{api}/api/v1/invoices", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        customer["invoice"] = invoices.json()["items"][0]["id"]
    return customer


@pytest.fixture(scope="module")
def customers(stack, payments):
    return {language: new_customer(stack, payments, language, with_order=True) for language in ("en", "pl")}


@pytest.fixture
def open_as(browser, stack):
    """``open_as(customer, viewport)``: a fresh browser whose tab holds the customer's session."""
    contexts = []

    def make(customer: dict | None, viewport=DESKTOP, language: str = "en"):
        language = customer["language"] if customer else language
        context = browser.new_context(base_url=stack.gateway_url, viewport=viewport,
                                      locale="pl-PL" if language == "pl" else "en-GB")
        context.set_default_timeout(15_000)
        context.add_cookies([{"name": "panel_lang", "value": language, "url": stack.gateway_url}])
        contexts.append(context)
        page = context.new_page()
        if customer:
            page.goto("/login")
            page.evaluate("token => sessionStorage.setItem('introserv.token', token)", customer["token"])
        return page
    yield make
    for context in contexts:
        context.close()


def every_page(customer: dict) -> list[str]:
    """Every page a signed-in customer can open, theirs and the not-found ones."""
    return ["/profile", "/profile/notifications", "/security", "/orders", "/orders/new?kind=vps",
            f"/orders/{customer['order']}", "/balance", "/invoices", f"/invoices/{customer['invoice']}",
            f"/orders/{uuid.uuid4()}", "/no-such-page"]


def settled(page, path: str):
    """Open ``path`` and wait until the page is in its state: filled, failed or not found."""
    page.goto(path)
    page.wait_for_selector("body[data-state]")
    return page
