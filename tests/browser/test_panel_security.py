"""What the panel does for the customer's safety in a real browser (issue 17): after logging in it
follows `next` only to a path of its own origin, and a new phone number asks for the password."""
from __future__ import annotations

import uuid
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.browser.conftest import ready

pytestmark = pytest.mark.e2e
PASSWORD = "a long and unusual passphrase 7"


def mobile() -> str:
    return f"+48600{uuid.uuid4().int % 1_000_000:06d}"


def registered(stack, **extra) -> str:
    login = f"b{uuid.uuid4().hex[:10]}"
    created = requests.post(f"{stack.gateway_url}/api/v1/accounts", timeout=30, json={
        "login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
        "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL", **extra})
    assert created.status_code == 201, created.text
    return login


def log_in_with_next(page, login: str, next_query: str):
    """Open the login page with ``?next=<next_query>`` (already URL-encoded), log in, and answer
    the URL the panel went to."""
    # Should the panel follow `next` off the origin, the trap answers instead of the network.
    page.route("**://evil.example/**", lambda route: route.fulfill(body="<h1>phished</h1>", content_type="text/html"))
    page.goto(f"/login?next={next_query}")
    page.locator("#f-login").fill(login)
    page.locator("#f-password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state()
    return urlsplit(page.url)


@pytest.mark.parametrize("trick", [quote("/\\evil.example", safe=""), "/%09/evil.example", "//evil.example",
                                   quote("https://evil.example/login", safe=""), "javascript:alert(1)"])
def test_after_logging_in_the_panel_never_follows_next_to_another_origin(open_panel, stack, trick):
    page = open_panel()
    went = log_in_with_next(page, registered(stack), trick)
    assert (went.netloc, went.path) == (urlsplit(stack.gateway_url).netloc, "/profile"), went
    assert page.get_by_text("phished").count() == 0


def test_after_logging_in_the_panel_follows_a_path_of_its_own(open_panel, stack):
    page = open_panel()
    went = log_in_with_next(page, registered(stack), quote("/orders?tab=history#top", safe=""))
    assert (went.netloc, went.path, went.query, went.fragment) == (
        urlsplit(stack.gateway_url).netloc, "/orders", "tab=history", "top")


def test_a_new_phone_number_asks_for_the_password_and_lands_on_the_timeline(open_panel, stack):
    page = open_panel()
    login = registered(stack, phone=mobile())
    log_in_with_next(page, login, "/profile")
    page.wait_for_selector("body[data-ready=true]")
    password = page.locator("#f-phone-password")
    assert password.is_hidden()
    page.locator("#f-phone").fill(mobile())
    assert password.is_visible()          # typing another number asks for the password
    page.get_by_role("button", name="Verify").click()
    page.locator("[data-error-for=password]").filter(has_text="current password").wait_for()
    password.fill("not my password")
    page.get_by_role("button", name="Verify").click()
    # One message, next to the field it concerns (issue 18: no second copy above the button).
    page.locator("#phone-form [data-error-for=password]").filter(has_text="The password is wrong").wait_for()
    assert page.locator("#phone-form [data-error-for='']").inner_text() == ""
    password.fill(PASSWORD)
    page.get_by_role("button", name="Verify").click()
    page.get_by_text("enter the last four digits", exact=False).wait_for()
    assert page.locator("#phone-state").inner_text() == "not verified"
    ready(page, "/security")
    assert page.locator("#events tbody").get_by_text("Mobile phone number changed").count() == 1
