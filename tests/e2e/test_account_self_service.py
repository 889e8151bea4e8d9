"""Issue 18, the account side, over HTTP against the whole stack: password reset by e-mail and
the confirmation mail again (A1), the live sessions (A2), what the panel reads right after an
answer (read-your-writes), and the security page's last login and client address.

This module runs its own stack behind a trusted proxy (TRUSTED_PROXIES=127.0.0.1), so each test
speaks from addresses of its own (X-Forwarded-For) and the per-address limits of one test never
touch another's; it reads mail from the stack's mail stand-in and moves the stack's clock.
"""
from __future__ import annotations

import json
import re
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pyotp
import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from services.common.clock import move_clock
from tests.e2e.conftest import running_stack
from tests.support import Api, bus_client, error_code, eventually

PASSWORD = "a long and unusual passphrase 7"
NEW_PASSWORD = "another long passphrase 8"
RESET = "/api/v1/password-reset"
CONFIRM = "/api/v1/password-reset/confirm"
RESEND = "/api/v1/profile/email/resend"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("self-service-stack"), TRUSTED_PROXIES="127.0.0.1/32") as running:
        yield running


@pytest.fixture(scope="module")
def gateway(proxied):
    return Api(proxied.gateway_url)


@pytest.fixture
def clock(proxied):
    """``clock(minutes=61)`` moves the stack's time forward (adding up); put back afterwards."""
    offset = {"seconds": 0.0}

    def move(**delta):
        offset["seconds"] += timedelta(**delta).total_seconds()
        move_clock(proxied.env["CLOCK_FILE"], offset["seconds"])
    yield move
    move_clock(proxied.env["CLOCK_FILE"], 0.0)


_addresses = iter(range(1, 60000))


def new_ip() -> str:
    """A client address no other test in this module uses (198.18.0.0/15, for testing)."""
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


def at(ip: str, **headers) -> dict:
    return {"X-Forwarded-For": ip, **headers}


def register(gateway, **overrides) -> dict:
    login = overrides.pop("login", f"r{uuid.uuid4().hex[:12]}")
    body = {"login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
            "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL", **overrides}
    created = gateway.post("/api/v1/accounts", body, headers=at(new_ip()))
    assert created.status_code == 201, created.text
    return created.json()


def log_in(gateway, profile, ip, password=PASSWORD, otp=None, agent="pytest"):
    body = {"login": profile["login"], "password": password, **({"otp": otp} if otp is not None else {})}
    return gateway.post("/api/v1/sessions", body, headers=at(ip, **{"User-Agent": agent}))


def session_of(gateway, profile, ip, agent="pytest") -> Api:
    answer = log_in(gateway, profile, ip, agent=agent)
    assert answer.status_code == 201, answer.text
    return gateway.as_customer(answer.json()["token"], profile=profile)


def mails(proxied, address: str, subject: str = "") -> list[dict]:
    items = requests.get(f"{proxied.url('mail_http')}/messages", params={"to": address}, timeout=5).json()["items"]
    return [item for item in items if subject in item["subject"]]


def reset_mail(proxied, address: str, count: int = 1) -> dict:
    """The newest password reset mail to ``address``, once ``count`` of them arrived."""
    found = eventually(lambda: (lambda items: items if len(items) >= count else None)(
        mails(proxied, address, "Reset the password")))
    return found[0]


def token_in(mail: dict, page: str) -> str:
    return re.search(rf"/{page}\?token=([A-Za-z0-9_-]+)", mail["text"]).group(1)


def outbox(proxied, event_type: str, account_id: str) -> list[dict]:
    """What profile handed the notifier in the transaction of a change."""
    engine = create_engine(proxied.env["PROFILE_DATABASE_URL"], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"),
                                      {"t": event_type}).all()
    finally:
        engine.dispose()
    return [p for p in (json.loads(r.payload) for r in rows) if p["account_id"] == account_id]


def confirm(gateway, token, password=NEW_PASSWORD, confirmation=None, ip=None, **more):
    body = {"token": token, "new_password": password,
            "new_password_confirmation": password if confirmation is None else confirmation, **more}
    return gateway.post(CONFIRM, body, headers=at(ip or new_ip()))


# --------------------------------------------------------------------------- password reset (A1)


def test_a_mailed_reset_link_sets_the_password_ends_every_session_and_tells_the_customer(gateway, proxied):
    anna = register(gateway)
    here, there = new_ip(), new_ip()
    mine, theirs = session_of(gateway, anna, here), session_of(gateway, anna, there, agent="a laptop")
    assert mine.get("/api/v1/profile", headers=at(here)).status_code == 200  # both tokens vouched for just now
    assert theirs.get("/api/v1/profile", headers=at(there)).status_code == 200

    asked = gateway.post(RESET, {"login": anna["login"].upper()}, headers=at(here))
    assert asked.status_code == 202 and asked.json() == {"status": "accepted"}
    mail = reset_mail(proxied, anna["email"])
    assert anna["login"] in mail["text"] and "/reset-password?token=" in mail["text"]
    token = token_in(mail, "reset-password")

    mismatch = confirm(gateway, token, confirmation=NEW_PASSWORD + "!")
    assert mismatch.status_code == 422 and error_code(mismatch) == "password_mismatch"
    weak = confirm(gateway, token, password=anna["login"] + "12345")
    assert weak.status_code == 422 and error_code(weak) == "weak_password"
    assert confirm(gateway, token, ip=here).status_code == 204  # the refusals left the token usable

    for api, ip in ((mine, here), (theirs, there)):
        ended = api.get("/api/v1/profile", headers=at(ip))
        assert ended.status_code == 401 and error_code(ended) == "unauthenticated"
    assert log_in(gateway, anna, here).status_code == 401
    again = log_in(gateway, anna, here, password=NEW_PASSWORD)
    assert again.status_code == 201
    me = gateway.as_customer(again.json()["token"])
    events = me.get("/api/v1/security/events", headers=at(here)).json()["items"]
    assert events[0]["kind"] == "password_reset" and events[0]["ip"] == here
    assert events[0]["details"] == {"sessions_ended": 2}
    told = eventually(lambda: mails(proxied, anna["email"], "password has been changed"))
    assert "reset with a link" in told[0]["text"].replace("\n", " ")

    used = confirm(gateway, token)
    assert used.status_code == 410 and error_code(used) == "token_expired"
    unknown = confirm(gateway, "x" * 43)
    assert unknown.status_code == 404 and error_code(unknown) == "token_unknown"


def test_a_reset_asked_by_address_reaches_the_account_whatever_the_case(gateway, proxied):
    anna = register(gateway)
    asked = gateway.post(RESET, {"email": anna["email"].upper()}, headers=at(new_ip()))
    assert asked.status_code == 202 and asked.json() == {"status": "accepted"}
    token = token_in(reset_mail(proxied, anna["email"]), "reset-password")
    assert confirm(gateway, token).status_code == 204
    assert log_in(gateway, anna, new_ip(), password=NEW_PASSWORD).status_code == 201
    for body in ({}, {"login": anna["login"], "email": anna["email"]}, {"email": "not an address"},
                 {"login": anna["login"], "extra": 1}):
        refused = gateway.post(RESET, body, headers=at(new_ip()))
        assert refused.status_code == 400 and error_code(refused) == "validation_error", body


def test_a_reset_for_an_unknown_name_answers_exactly_like_one_for_a_known_name(gateway, proxied):
    accounts = [register(gateway) for _ in range(6)]

    def shape(answer):
        headers = {k: v for k, v in answer.headers.items() if k not in ("X-Request-Id", "Date", "Content-Length")}
        return answer.status_code, answer.content, headers

    known, unknown = [], []
    for n in range(24):  # interleaved, each from its own address, under every limit
        started = time.perf_counter()
        real = gateway.post(RESET, {"login": accounts[n % 6]["login"]}, headers=at(new_ip()))
        known.append(time.perf_counter() - started)
        started = time.perf_counter()
        ghost = gateway.post(RESET, {"login": f"ghost{uuid.uuid4().hex[:8]}"}, headers=at(new_ip()))
        unknown.append(time.perf_counter() - started)
        assert shape(ghost) == shape(real)
    by_mail = gateway.post(RESET, {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com"}, headers=at(new_ip()))
    assert shape(by_mail) == shape(real)
    # The tolerance is this run's own noise: the spread of the known names' timings.
    quartiles = statistics.quantiles(known, n=4)
    tolerance = 3 * (quartiles[2] - quartiles[0]) + 0.25 * statistics.median(known)
    assert abs(statistics.median(known) - statistics.median(unknown)) <= tolerance, (known, unknown)
    eventually(lambda: all(len(mails(proxied, a["email"], "Reset the password")) == 4 for a in accounts))


def test_a_reset_link_works_for_an_hour(gateway, proxied, clock):
    anna = register(gateway)
    gateway.post(RESET, {"login": anna["login"]}, headers=at(new_ip()))
    token = token_in(reset_mail(proxied, anna["email"]), "reset-password")
    clock(minutes=59)
    gateway.post(RESET, {"login": anna["login"]}, headers=at(new_ip()))
    fresh = token_in(reset_mail(proxied, anna["email"], count=2), "reset-password")
    clock(minutes=2)
    late = confirm(gateway, token)
    assert late.status_code == 410 and error_code(late) == "token_expired"
    assert confirm(gateway, fresh).status_code == 204


def test_with_two_factor_on_the_link_alone_is_not_enough(gateway, proxied):
    anna = register(gateway)
    here = new_ip()
    me = session_of(gateway, anna, here)
    enrolment = me.post("/api/v1/security/2fa", {"password": PASSWORD}, headers=at(here)).json()
    totp = pyotp.TOTP(enrolment["secret"])
    codes = me.post("/api/v1/security/2fa/confirm", {"otp": totp.now()}, headers=at(here)).json()["recovery_codes"]

    gateway.post(RESET, {"login": anna["login"]}, headers=at(here))
    token = token_in(reset_mail(proxied, anna["email"]), "reset-password")
    missing = confirm(gateway, token)
    assert missing.status_code == 401 and error_code(missing) == "otp_required"
    assert missing.json()["error"]["fields"] == {"otp": ["required"]}
    wrong = confirm(gateway, token, otp="000000", ip="203.0.113.77")
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_otp"
    # a wrong code counts like a failed login: it is in the login history, and the backoff guards it
    history = me.get("/api/v1/security/logins", headers=at(here)).json()["items"]
    assert history[0]["outcome"] == "reset_invalid_otp" and history[0]["success"] is False
    assert history[0]["ip"] == "203.0.113.77"
    assert confirm(gateway, token, otp=codes[0]).status_code == 204
    assert log_in(gateway, anna, here, password=NEW_PASSWORD, otp=codes[1]).status_code == 201


def test_five_wrong_codes_on_a_reset_are_slowed_down_like_failed_logins(gateway, proxied):
    anna = register(gateway)
    here = new_ip()
    me = session_of(gateway, anna, here)
    secret = me.post("/api/v1/security/2fa", {"password": PASSWORD}, headers=at(here)).json()["secret"]
    me.post("/api/v1/security/2fa/confirm", {"otp": pyotp.TOTP(secret).now()}, headers=at(here))
    gateway.post(RESET, {"login": anna["login"]}, headers=at(here))
    token = token_in(reset_mail(proxied, anna["email"]), "reset-password")
    answers = [confirm(gateway, token, otp=f"{n:06d}") for n in range(1, 8)]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [401] * 5 and 429 in codes[5:], codes
    limited = next(a for a in answers if a.status_code == 429)
    assert error_code(limited) == "rate_limited" and int(limited.headers["Retry-After"]) >= 1


def test_reset_requests_are_limited_per_name_and_per_address_alike_for_unknown_names(gateway, proxied):
    anna = register(gateway)
    ghost = f"ghost{uuid.uuid4().hex[:8]}"
    for name in (anna["login"], ghost):
        answers = [gateway.post(RESET, {"login": name}, headers=at(new_ip())) for _ in range(6)]
        assert [a.status_code for a in answers] == [202] * 5 + [429], name
        assert error_code(answers[5]) == "rate_limited" and int(answers[5].headers["Retry-After"]) > 0
    # by address: the account's own share of mails is five an hour; a sixth request still answers 202
    by_mail = gateway.post(RESET, {"email": anna["email"]}, headers=at(new_ip()))
    assert by_mail.status_code == 202 and by_mail.json() == {"status": "accepted"}
    assert len(outbox(proxied, "password_reset_requested", anna["id"])) == 5

    one_address = new_ip()
    answers = [gateway.post(RESET, {"login": f"n{uuid.uuid4().hex[:10]}"}, headers=at(one_address))
               for _ in range(21)]
    assert [a.status_code for a in answers] == [202] * 20 + [429]


def test_a_frozen_account_gets_no_reset_link_and_an_earlier_link_is_dead(gateway, proxied):
    anna = register(gateway)
    here = new_ip()
    gateway.post(RESET, {"login": anna["login"]}, headers=at(here))
    token = token_in(reset_mail(proxied, anna["email"]), "reset-password")
    me = session_of(gateway, anna, here)
    assert me.post("/api/v1/security/freeze", headers=at(here)).status_code == 204

    asked = gateway.post(RESET, {"login": anna["login"]}, headers=at(here))
    assert asked.status_code == 202 and asked.json() == {"status": "accepted"}
    assert len(outbox(proxied, "password_reset_requested", anna["id"])) == 1  # only the one before the freeze
    dead = confirm(gateway, token)
    assert dead.status_code == 410 and error_code(dead) == "token_expired"
    with bus_client(proxied.env, "operator") as staff:
        staff.profile.unfreeze(anna["id"], "support:ola")
    assert confirm(gateway, token).status_code == 410  # unfreezing does not bring it back
    assert log_in(gateway, anna, here).status_code == 201


# --------------------------------------------------------------------------- the confirmation mail again (A1)


def test_the_confirmation_mail_goes_again_at_most_once_a_minute_and_five_times_an_hour(gateway, proxied, clock):
    anna = register(gateway)
    here = new_ip()
    me = session_of(gateway, anna, here)
    soon = me.post(RESEND, headers=at(here))  # the registration mail went out a moment ago
    assert soon.status_code == 429 and error_code(soon) == "rate_limited"
    assert 1 <= int(soon.headers["Retry-After"]) <= 60
    for sent in range(2, 6):
        clock(seconds=61)
        again = me.post(RESEND, headers=at(here))
        assert again.status_code == 202 and again.json() == {"email": anna["email"], "purpose": "registration"}
        eventually(lambda: len(mails(proxied, anna["email"], "confirm your e-mail")) == sent)
    clock(seconds=61)
    hourly = me.post(RESEND, headers=at(here))
    assert hourly.status_code == 429 and int(hourly.headers["Retry-After"]) > 60

    link = mails(proxied, anna["email"], "confirm your e-mail")[0]
    confirmed = gateway.post("/api/v1/profile/email/confirm", {"token": token_in(link, "confirm-email")})
    assert confirmed.status_code == 200
    clock(hours=1)
    nothing = me.post(RESEND, headers=at(here))
    assert nothing.status_code == 409 and error_code(nothing) == "nothing_to_confirm"


def test_the_confirmation_mail_of_a_pending_change_goes_again_to_the_new_address(gateway, proxied, clock):
    anna = register(gateway)
    here = new_ip()
    me = session_of(gateway, anna, here)
    new = f"new-{anna['login']}@example.com"
    assert me.post("/api/v1/profile/email-change", {"email": new, "password": PASSWORD},
                   headers=at(here)).status_code == 202
    clock(seconds=61)
    again = me.post(RESEND, headers=at(here))
    assert again.status_code == 202 and again.json() == {"email": new, "purpose": "change"}
    [latest, first] = eventually(lambda: (lambda items: items if len(items) == 2 else None)(mails(proxied, new)))
    assert token_in(latest, "confirm-email") != token_in(first, "confirm-email")
    older = gateway.post("/api/v1/profile/email/confirm", {"token": token_in(first, "confirm-email")})
    assert older.status_code == 410 and error_code(older) == "token_expired"  # only a change's newest link counts
    assert gateway.post("/api/v1/profile/email/confirm", {"token": token_in(latest, "confirm-email")}).status_code == 200
    assert me.get("/api/v1/profile", headers=at(here)).json()["email"] == new
    assert me.post(RESEND, headers=at(here)).status_code == 409
    assert gateway.post(RESEND).status_code == 401


# --------------------------------------------------------------------------- sessions (A2)


def test_the_session_list_shows_the_live_sessions_newest_first_and_marks_the_callers(gateway):
    anna = register(gateway)
    first_ip, second_ip = new_ip(), new_ip()
    first = session_of(gateway, anna, first_ip, agent="Firefox on the desk")
    second = session_of(gateway, anna, second_ip, agent="Chromium on a phone")
    ended = session_of(gateway, anna, new_ip())
    ended.delete("/api/v1/sessions/current", headers=at("198.51.100.1"))

    listed = first.get("/api/v1/sessions", headers=at(first_ip))
    assert listed.status_code == 200 and listed.json()["next_cursor"] is None
    items = listed.json()["items"]
    assert [(s["ip"], s["user_agent"], s["current"]) for s in items] == [
        (second_ip, "Chromium on a phone", False), (first_ip, "Firefox on the desk", True)]
    assert set(items[0]) == {"id", "created_at", "last_seen_at", "ip", "user_agent", "current"}
    assert all(s["created_at"].endswith("Z") and s["last_seen_at"] >= s["created_at"] for s in items)
    assert [s["current"] for s in second.get("/api/v1/sessions", headers=at(second_ip)).json()["items"]] == [True, False]

    page = first.get("/api/v1/sessions?limit=1", headers=at(first_ip)).json()
    rest = first.get(f"/api/v1/sessions?limit=1&cursor={page['next_cursor']}", headers=at(first_ip)).json()
    assert [s["ip"] for s in page["items"] + rest["items"]] == [second_ip, first_ip] and rest["next_cursor"] is None
    for query in ("?cursor=forged", "?limit=0", "?limit=101"):
        assert first.get(f"/api/v1/sessions{query}", headers=at(first_ip)).status_code == 400


def test_ending_one_session_stops_its_token_at_once_and_another_accounts_is_not_found(gateway):
    anna, bob = register(gateway), register(gateway)
    here, phone = new_ip(), new_ip()
    desk, mobile = session_of(gateway, anna, here), session_of(gateway, anna, phone)
    intruder = session_of(gateway, bob, new_ip())
    assert mobile.get("/api/v1/profile", headers=at(phone)).status_code == 200  # vouched for a moment ago
    [mobile_session] = [s for s in desk.get("/api/v1/sessions", headers=at(here)).json()["items"] if not s["current"]]

    stranger = intruder.delete(f"/api/v1/sessions/{mobile_session['id']}", headers=at(here))
    assert stranger.status_code == 404 and error_code(stranger) == "not_found"
    assert mobile.get("/api/v1/profile", headers=at(phone)).status_code == 200
    assert desk.delete(f"/api/v1/sessions/{mobile_session['id']}", headers=at(here)).status_code == 204
    gone = mobile.get("/api/v1/profile", headers=at(phone))
    assert gone.status_code == 401 and error_code(gone) == "unauthenticated"
    assert desk.delete(f"/api/v1/sessions/{mobile_session['id']}", headers=at(here)).status_code == 404
    assert desk.delete(f"/api/v1/sessions/{uuid.uuid4()}", headers=at(here)).status_code == 404
    assert [s["current"] for s in desk.get("/api/v1/sessions", headers=at(here)).json()["items"]] == [True]
    timeline = desk.get("/api/v1/security/events", headers=at(here)).json()["items"]
    assert timeline[0]["kind"] == "session_ended" and timeline[0]["details"]["session_ip"] == phone

    # the literal paths keep their meaning beside /sessions/{id}
    other = session_of(gateway, anna, phone)
    assert desk.delete("/api/v1/sessions/others", headers=at(here)).status_code == 204
    assert other.get("/api/v1/profile", headers=at(phone)).status_code == 401
    assert desk.delete("/api/v1/sessions/current", headers=at(here)).status_code == 204
    assert desk.get("/api/v1/profile", headers=at(here)).status_code == 401


def test_last_seen_moves_at_most_once_a_minute(gateway, clock):
    anna = register(gateway)
    me = session_of(gateway, anna, new_ip())

    def seen():
        # From a new address each time: the gateway's memory of a token is per address, so profile
        # checks the token (and may note the session seen) on every one of these requests.
        [mine] = me.get("/api/v1/sessions", headers=at(new_ip())).json()["items"]
        return mine["created_at"], mine["last_seen_at"]

    opened, first = seen()
    assert first == opened
    clock(seconds=30)
    assert seen()[1] == opened  # within the minute: not written
    clock(seconds=40)
    later = seen()[1]
    assert datetime.fromisoformat(later) - datetime.fromisoformat(opened) >= timedelta(seconds=70)


# --------------------------------------------------------------------------- the security page (S4, S3)


def test_last_login_is_the_login_before_this_sessions_and_the_page_knows_the_callers_address(gateway):
    anna = register(gateway)
    first_ip, second_ip = new_ip(), new_ip()
    first = session_of(gateway, anna, first_ip)
    alone = first.get("/api/v1/security", headers=at(first_ip)).json()
    assert alone["last_login"] is None and alone["your_ip"] == first_ip
    second = session_of(gateway, anna, second_ip)

    seen_by_second = second.get("/api/v1/security", headers=at(second_ip)).json()
    assert seen_by_second["last_login"]["ip"] == first_ip and seen_by_second["your_ip"] == second_ip
    # the first session sees the later login from elsewhere: that is the one to worry about
    assert first.get("/api/v1/security", headers=at(first_ip)).json()["last_login"]["ip"] == second_ip
    saved = second.put("/api/v1/security/ip-restriction", {"rules": [second_ip, first_ip], "password": PASSWORD},
                       headers=at(second_ip)).json()
    assert saved["last_login"]["ip"] == first_ip and saved["your_ip"] == second_ip


# --------------------------------------------------------------------------- read-your-writes (issue 18, item 6)


def test_the_profile_says_phone_verified_right_after_the_check_even_under_load(gateway, proxied):
    telephony = proxied.url("telephony_primary")
    busy = register(gateway)
    busy_ip = new_ip()
    running = {"until": time.monotonic() + 600}

    def load(n):
        # reads, logins (argon2) and registrations, each client its own connection: busy services
        client = Api(proxied.gateway_url)
        me = session_of(client, busy, busy_ip)
        while time.monotonic() < running["until"]:
            me.get("/api/v1/profile", headers=at(busy_ip))
            log_in(client, busy, busy_ip)
            if n % 2:
                register(client)

    with ThreadPoolExecutor(max_workers=6) as pool:
        workers = [pool.submit(load, n) for n in range(6)]
        try:
            for _ in range(5):
                phone = f"+48600{uuid.uuid4().int % 1_000_000:06d}"
                anna = register(gateway, phone=phone)
                here = new_ip()
                me = session_of(gateway, anna, here)
                started = me.post("/api/v1/verifications", {"channel": "flash_call", "purpose": "phone"},
                                  headers=at(here))
                assert started.status_code == 201, started.text
                call = requests.get(f"{telephony}/calls", params={"to": phone}, timeout=5).json()["items"][0]
                checked = me.post(f"/api/v1/verifications/{started.json()['id']}/check",
                                  {"code": call["caller_id"][-4:]}, headers=at(here))
                assert checked.status_code == 200 and checked.json()["status"] == "verified"
                assert me.get("/api/v1/profile", headers=at(here)).json()["phone_verified"] is True
        finally:
            running["until"] = 0
            for worker in workers:
                worker.result()


def test_what_the_panel_reads_after_each_answer_already_says_it(gateway, proxied):
    anna = register(gateway, postal_address={"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001",
                                             "country": "PL"})
    here = new_ip()
    me = session_of(gateway, anna, here)
    # e-mail confirmed
    token = token_in(eventually(lambda: mails(proxied, anna["email"], "confirm your e-mail"))[0], "confirm-email")
    assert gateway.post("/api/v1/profile/email/confirm", {"token": token}).status_code == 200
    assert me.get("/api/v1/profile", headers=at(here)).json()["email_confirmed"] is True
    # 2FA on
    secret = me.post("/api/v1/security/2fa", {"password": PASSWORD}, headers=at(here)).json()["secret"]
    assert me.post("/api/v1/security/2fa/confirm", {"otp": pyotp.TOTP(secret).now()}, headers=at(here)).status_code == 200
    assert me.get("/api/v1/security", headers=at(here)).json()["two_factor_enabled"] is True
    assert error_code(log_in(gateway, anna, here)) == "otp_required"
    # an order paid from the balance
    with bus_client(proxied.env, "payments") as payments:
        payments.ledger.credit_payment(anna["id"], {"amount": "100.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")
    plan = gateway.get("/api/v1/plans?kind=vps").json()["items"][0]
    fields = {spec["name"]: (spec["options"][0]["value"] if isinstance(spec["options"][0], dict) else spec["options"][0])
              if spec["type"] == "choice" else "web1.example.com" for spec in plan["required_fields"]}
    placed = me.post("/api/v1/orders", {"plan_id": plan["id"], "period_months": plan["prices"][0]["period_months"],
                                        "fields": fields}, headers=at(here, **{"Idempotency-Key": str(uuid.uuid4())}))
    assert placed.status_code == 201 and placed.json()["status"] == "active", placed.text
    assert me.get(f"/api/v1/orders/{placed.json()['id']}", headers=at(here)).json()["status"] == "active"
    cost = placed.json()["cost"]["amount"]
    balance = me.get("/api/v1/balance", headers=at(here)).json()["balance"]["amount"]
    assert float(balance) == pytest.approx(100 - float(cost))
    invoices = me.get("/api/v1/invoices", headers=at(here)).json()["items"]
    assert [i["order_id"] for i in invoices] == [placed.json()["id"]]
