"""The account pages of issue 18 in headless Chromium against the whole stack: "Forgot your
password?" from the login page to a new password, the confirmation mail sent again, the live
sessions with "End this session", the recovery codes dialog, the security code typed twice and
the IP page's "your address". Screenshots go to var/screenshots/ for a reviewer.
"""
from __future__ import annotations

import re
import uuid

import pyotp
import pytest
import requests

from tests.browser.conftest import eventually, ready, screenshot
from tests.browser.test_panel import PASSWORD, log_in, register, token_of

pytestmark = pytest.mark.e2e
NEW_PASSWORD = "another long passphrase 8"


def newest_mail(stack, address: str, subject: str) -> dict:
    def probe():
        items = requests.get(f"{stack.url('mail_http')}/messages", params={"to": address}, timeout=5).json()["items"]
        return next((item for item in items if subject in item["subject"]), None)
    return eventually(probe)


def api(stack, method: str, path: str, token: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{stack.gateway_url}{path}", headers={**headers, **kwargs.pop("headers", {})},
                            timeout=10, **kwargs)


def test_forgot_password_mails_a_link_that_sets_a_new_password(open_panel, stack):
    page = open_panel()
    login = f"b{uuid.uuid4().hex[:10]}"
    register(page, login)
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url("**/forgot-password")
    page.get_by_label("Billing login or e-mail address").fill(login)
    screenshot(page, "forgot-password")
    page.get_by_role("button", name="Send me a link").click()
    page.get_by_text("If an account matches, a link to choose a new password is on its way").wait_for()

    mail = newest_mail(stack, f"{login}@example.com", "Reset the password")
    link = re.search(r"https?://\S+/reset-password\?token=[A-Za-z0-9_-]+", mail["text"]).group(0)
    page.goto(link)
    page.wait_for_url("**/reset-password")             # the token left the address bar at once
    assert "token" not in page.url
    page.locator("#f-new_password").fill(NEW_PASSWORD)
    page.get_by_label("Confirm the new password").fill(NEW_PASSWORD + "!")
    page.get_by_role("button", name="Set the new password").click()
    page.get_by_text("The new password and its confirmation differ.").wait_for()
    page.get_by_label("Confirm the new password").fill(NEW_PASSWORD)
    screenshot(page, "reset-password")
    page.get_by_role("button", name="Set the new password").click()
    page.wait_for_url("**/login?reset=1")
    assert page.get_by_text("Your new password is set").is_visible()

    page.locator("#f-login").fill(login)
    page.locator("#f-password").fill(NEW_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/profile")

    page.goto(link)                                    # the link works once
    page.locator("#f-new_password").fill("a third long passphrase 9")
    page.get_by_label("Confirm the new password").fill("a third long passphrase 9")
    page.get_by_role("button", name="Set the new password").click()
    page.get_by_text("This link has expired or was already used; ask for a new one.").wait_for()
    assert page.get_by_role("link", name="Ask for a new link").is_visible()


def test_the_confirmation_mail_is_sent_again_from_the_profile_and_a_429_tells_the_wait(open_panel, stack):
    page = open_panel()
    login = f"b{uuid.uuid4().hex[:10]}"
    register(page, login)
    log_in(page, login)
    assert page.locator("#email-state").inner_text() == "not confirmed"
    page.get_by_role("button", name="Send the confirmation e-mail again").click()
    # the registration mail went out a moment ago: once a minute at most
    page.get_by_text(re.compile(r"you can ask again in \d+ seconds")).wait_for()
    screenshot(page, "profile-resend-wait")


def test_the_sessions_list_ends_another_session_at_once(open_panel, stack):
    page = open_panel()
    login = f"b{uuid.uuid4().hex[:10]}"
    register(page, login)
    log_in(page, login)
    other = api(stack, "POST", "/api/v1/sessions", json={"login": login, "password": PASSWORD},
                headers={"User-Agent": "curl on a stranger's server"}).json()["token"]
    assert api(stack, "GET", "/api/v1/profile", other).status_code == 200

    ready(page, "/security")
    rows = page.locator("#sessions tbody tr")
    assert rows.count() == 2
    mine = rows.filter(has_text="this device")
    assert mine.count() == 1 and mine.get_by_role("button").count() == 0
    stranger = rows.filter(has_text="curl on a stranger's server")
    screenshot(page, "security-sessions")
    stranger.get_by_role("button", name=re.compile("End this session")).click()
    page.get_by_text("The session has ended.").wait_for()
    eventually(lambda: rows.count() == 1)
    assert api(stack, "GET", "/api/v1/profile", other).status_code == 401
    assert api(stack, "GET", "/api/v1/profile", token_of(page)).status_code == 200


def test_recovery_codes_copy_and_download_and_the_dialog_waits_for_i_saved_them(open_panel, stack):
    page = open_panel()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login = f"b{uuid.uuid4().hex[:10]}"
    register(page, login)
    log_in(page, login)
    ready(page, "/security")
    page.locator("#f-tfa-on-password").fill(PASSWORD)
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    page.locator("#tfa-qr img").wait_for()
    page.locator("#f-tfa-otp").fill(pyotp.TOTP(page.locator("#tfa-secret").inner_text()).now())
    page.locator("#tfa-confirm-form").get_by_role("button", name="Turn on").click()

    dialog = page.get_by_role("dialog", name="Your recovery codes")
    dialog.wait_for()
    codes = [item.inner_text() for item in dialog.locator("#tfa-code-list li").all()]
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{2}", code) for code in codes)
    screenshot(page, "security-recovery-codes")

    dialog.get_by_role("button", name="Copy the codes").click()
    dialog.get_by_text("The codes are copied to the clipboard.").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert all(code in copied for code in codes) and login in copied
    with page.expect_download() as download:
        dialog.get_by_role("button", name="Download as a text file").click()
    assert download.value.suggested_filename == "introserv-recovery-codes.txt"
    saved = open(download.value.path(), encoding="utf-8").read()
    assert [line for line in saved.splitlines() if re.fullmatch(r"[a-z0-9-]{12}", line)] == codes

    done = dialog.get_by_role("button", name="Done")
    assert done.is_disabled()
    page.keyboard.press("Escape")                     # not before the customer says they saved them
    assert dialog.is_visible()
    dialog.get_by_label("I have saved these codes").check()
    done.click()
    dialog.wait_for(state="hidden")
    assert page.locator("#tfa-code-list li").count() == 0   # shown once: gone from the page
    assert page.locator("#tfa-on").is_visible()


def test_the_security_code_is_typed_twice_after_a_warning_and_the_ip_page_offers_your_address(open_panel, stack):
    page = open_panel()
    login = f"b{uuid.uuid4().hex[:10]}"
    register(page, login)
    log_in(page, login)
    ready(page, "/security")
    form = page.locator("#code-form")
    assert form.get_by_text("can be set only once").is_visible()
    form.locator("#f-code").fill("blue heron 42")
    form.get_by_label("Repeat the security code").fill("blue heron 24")
    form.get_by_role("button", name="Set the security code").click()
    form.get_by_text("The two codes differ.").wait_for()
    assert api(stack, "GET", "/api/v1/security", token_of(page)).json()["security_code_set"] is False
    form.get_by_label("Repeat the security code").fill("blue heron 42")
    form.get_by_role("button", name="Set the security code").click()
    page.locator("#code-set").wait_for()
    assert api(stack, "GET", "/api/v1/security", token_of(page)).json()["security_code_set"] is True

    assert page.get_by_text("Your address is 127.0.0.1.").is_visible()
    rules = page.get_by_label("Allowed addresses, one per line")
    rules.fill("10.0.0.0/8")
    page.get_by_role("button", name="Add my address").click()
    assert rules.input_value() == "10.0.0.0/8\n127.0.0.1"
    page.locator("#f-ip-password").fill(PASSWORD)
    page.locator("#ip-form").get_by_role("button", name="Save").click()
    page.locator("#ip-form .form-done").filter(has_text="Saved").wait_for()
    screenshot(page, "security-code-and-ip")
