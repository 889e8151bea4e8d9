"""Issue 7 through the gateway over HTTP against the real services.

This module runs its own stack behind a trusted proxy (TRUSTED_PROXIES=127.0.0.1), so a
test can speak from any client address with X-Forwarded-For, and moves that stack's clock.
"""
from __future__ import annotations

import json
import statistics
import time
import uuid

import pyotp
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from services.common.clock import move_clock
from tests.e2e.conftest import running_stack
from tests.support import Api, bus_client, error_code

PASSWORD = "a long and unusual passphrase 7"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("proxied-stack"), TRUSTED_PROXIES="127.0.0.1/32",
                       REGISTRATIONS_PER_IP_HOUR="5") as running:
        yield running


@pytest.fixture(scope="module")
def gateway(proxied):
    return Api(proxied.gateway_url)


@pytest.fixture
def clock(proxied):
    """``clock(hours=25)`` moves the stack's time forward; put back afterwards."""
    def move(**delta):
        import datetime
        move_clock(proxied.env["CLOCK_FILE"], datetime.timedelta(**delta).total_seconds())
    yield move
    move_clock(proxied.env["CLOCK_FILE"], 0.0)


def from_ip(ip: str) -> dict:
    return {"X-Forwarded-For": ip}


def somewhere() -> str:
    """A client address of its own (198.18.0.0/15): this stack allows 5 registrations an hour per address."""
    n = uuid.uuid4().int % 2 ** 17
    return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"


def registration(gateway, ip: str):
    login = f"s{uuid.uuid4().hex[:12]}"
    return gateway.post("/api/v1/accounts", {
        "login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
        "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL"}, headers=from_ip(ip))


def register(gateway, ip=None):
    created = registration(gateway, ip or somewhere())
    assert created.status_code == 201, created.text
    return created.json()


def log_in(gateway, profile, ip="198.51.100.7", password=PASSWORD, otp=None, agent="pytest"):
    body = {"login": profile["login"], "password": password, **({"otp": otp} if otp is not None else {})}
    return gateway.post("/api/v1/sessions", body, headers={**from_ip(ip), "User-Agent": agent})


def customer(gateway, ip="198.51.100.7"):
    profile = register(gateway)
    session = log_in(gateway, profile, ip)
    assert session.status_code == 201, session.text
    return profile, gateway.as_customer(session.json()["token"], profile=profile, password=PASSWORD)


def outbox(proxied, event_type: str, account_id: str) -> list[dict]:
    """What the profile service handed the notifier (tokens travel only there)."""
    engine = create_engine(proxied.env["PROFILE_DATABASE_URL"], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"),
                                      {"t": event_type}).all()
    finally:
        engine.dispose()
    return [p for p in (json.loads(r.payload) for r in rows) if p["account_id"] == account_id]


# --------------------------------------------------------------------------- e-mail (P3)


def test_email_change_token_works_once_and_expires_after_a_day(gateway, proxied, clock):
    profile, me = customer(gateway)
    wrong = me.post("/api/v1/profile/email-change", {"email": "new@example.com", "password": "not my password"},
                    headers=from_ip("198.51.100.7"))
    assert wrong.status_code == 422 and error_code(wrong) == "wrong_password"
    asked = me.post("/api/v1/profile/email-change", {"email": "new@example.com", "password": PASSWORD},
                    headers=from_ip("198.51.100.7"))
    assert asked.status_code == 202, asked.text
    assert me.get("/api/v1/profile", headers=from_ip("198.51.100.7")).json()["email"] == profile["email"]
    [registration, change] = outbox(proxied, "email_confirmation_requested", profile["id"])
    assert change["to"] == "new@example.com" and change["token"] != registration["token"]

    unknown = gateway.post("/api/v1/profile/email/confirm", {"token": "x" * 43})
    assert unknown.status_code == 404 and error_code(unknown) == "token_unknown"
    confirmed = gateway.post("/api/v1/profile/email/confirm", {"token": change["token"]})
    assert confirmed.status_code == 200, confirmed.text
    now = me.get("/api/v1/profile", headers=from_ip("198.51.100.7")).json()
    assert now["email"] == "new@example.com" and now["email_confirmed"] is True
    replay = gateway.post("/api/v1/profile/email/confirm", {"token": change["token"]})
    assert replay.status_code == 410 and error_code(replay) == "token_expired"

    clock(hours=25)
    late = gateway.post("/api/v1/profile/email/confirm", {"token": registration["token"]})
    assert late.status_code == 410 and error_code(late) == "token_expired"


# --------------------------------------------------------------------------- IP allow list (S3)


def test_ip_rules_are_checked_line_by_line_and_never_lock_out_by_surprise(gateway):
    _, me = customer(gateway)
    here = from_ip("198.51.100.7")
    bad = me.put("/api/v1/security/ip-restriction",
                 {"rules": ["10.0.0.1", "", "10.0.0.9-10.0.0.1", "2001:db8::/129", 7], "password": PASSWORD},
                 headers=here)
    assert bad.status_code == 400 and error_code(bad) == "validation_error"
    assert [m.split(":")[0] for m in bad.json()["error"]["fields"]["rules"]] == ["line 3", "line 4", "line 5"]
    locked = me.put("/api/v1/security/ip-restriction", {"rules": ["10.0.0.0/8"], "password": PASSWORD},
                    headers=here)
    assert locked.status_code == 422 and error_code(locked) == "would_lock_out"
    for body in ({"rules": "10.0.0.1", "password": PASSWORD}, {"rules": [], "password": PASSWORD, "x": 1},
                 {"rules": [], "password": PASSWORD, "confirm_lockout": "yes"}, {"rules": ["1.2.3.4"] * 0}):
        assert me.put("/api/v1/security/ip-restriction", body, headers=here).status_code == 400
    assert me.get("/api/v1/security", headers=here).json()["ip_restriction"] == []


def test_a_stolen_token_stops_working_from_an_address_no_longer_allowed(gateway):
    profile, me = customer(gateway)
    rules = ["198.51.100.0/24", "2001:db8::/32", "203.0.113.1-203.0.113.9"]
    saved = me.put("/api/v1/security/ip-restriction", {"rules": rules, "password": PASSWORD},
                   headers=from_ip("198.51.100.7"))
    assert saved.status_code == 200 and saved.json()["ip_restriction"] == rules
    assert me.get("/api/v1/profile", headers=from_ip("2001:db8:1::5")).status_code == 200
    assert me.get("/api/v1/profile", headers=from_ip("203.0.113.9")).status_code == 200
    stolen = me.get("/api/v1/profile", headers=from_ip("192.0.2.66"))
    assert stolen.status_code == 403 and error_code(stolen) == "ip_not_allowed"
    outside = log_in(gateway, profile, "2001:db9::1")
    assert outside.status_code == 403 and error_code(outside) == "ip_not_allowed"
    wrong = log_in(gateway, profile, "2001:db9::1", password="guessing the password")
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_credentials"
    assert log_in(gateway, profile, "2001:db8::1").status_code == 201
    # a malformed hop ends the walk at the proxy itself (127.0.0.1), which the rules do not cover
    forged = me.get("/api/v1/profile", headers={"X-Forwarded-For": "198.51.100.7, not-an-ip"})
    assert forged.status_code == 403
    emptied = me.put("/api/v1/security/ip-restriction", {"rules": [], "password": PASSWORD},
                     headers=from_ip("198.51.100.7"))
    assert emptied.status_code == 200
    assert me.get("/api/v1/profile", headers=from_ip("192.0.2.66")).status_code == 200


# --------------------------------------------------------------------------- 2FA (S6)


def test_two_factor_codes_are_single_use(gateway):
    profile, me = customer(gateway)
    here = from_ip("198.51.100.7")
    # a session alone cannot turn 2FA on (with a secret of its own, locking the owner out)
    bare = me.post("/api/v1/security/2fa", headers=here)
    assert bare.status_code == 400 and list(bare.json()["error"]["fields"]) == ["password"]
    guessed = me.post("/api/v1/security/2fa", {"password": "a guess at it"}, headers=here)
    assert guessed.status_code == 422 and error_code(guessed) == "wrong_password"
    enrolment = me.post("/api/v1/security/2fa", {"password": PASSWORD}, headers=here)
    assert enrolment.status_code == 201 and enrolment.json()["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrolment.json()["secret"])
    wrong = me.post("/api/v1/security/2fa/confirm", {"otp": "000000"}, headers=here)
    assert wrong.status_code == 422 and error_code(wrong) == "invalid_otp"
    code = totp.now()
    confirmed = me.post("/api/v1/security/2fa/confirm", {"otp": code}, headers=here)
    assert confirmed.status_code == 200
    recovery = confirmed.json()["recovery_codes"]
    assert len(recovery) == 10
    assert me.get("/api/v1/security", headers=here).json()["two_factor_enabled"] is True

    missing = log_in(gateway, profile)
    assert missing.status_code == 401 and error_code(missing) == "otp_required"
    replayed = log_in(gateway, profile, otp=code)
    assert replayed.status_code == 401 and error_code(replayed) == "invalid_otp"
    assert log_in(gateway, profile, otp=recovery[0]).status_code == 201
    again = log_in(gateway, profile, otp=recovery[0])
    assert again.status_code == 401 and error_code(again) == "invalid_otp"
    assert log_in(gateway, profile, otp=recovery[1]).status_code == 201

    off = me.delete("/api/v1/security/2fa", {"password": "not my password", "otp": recovery[2]}, headers=here)
    assert off.status_code == 422 and error_code(off) == "wrong_password"
    off = me.delete("/api/v1/security/2fa", {"password": PASSWORD, "otp": recovery[0]}, headers=here)
    assert off.status_code == 422 and error_code(off) == "invalid_otp"
    assert me.delete("/api/v1/security/2fa", {"password": PASSWORD, "otp": recovery[2]}, headers=here).status_code == 204
    assert log_in(gateway, profile).status_code == 201


# --------------------------------------------------------------------------- password, history, freeze


def test_password_change_new_ip_login_and_the_security_timeline(gateway, proxied):
    profile, me = customer(gateway)
    here = from_ip("198.51.100.7")
    other = log_in(gateway, profile, "203.0.113.50", agent="Firefox on a stranger's laptop")
    assert other.status_code == 201
    stranger = gateway.as_customer(other.json()["token"])
    new = "a second long passphrase 9"
    mismatch = me.put("/api/v1/security/password", {"current_password": PASSWORD, "new_password": new,
                                                    "new_password_confirmation": new + "!"}, headers=here)
    assert mismatch.status_code == 422 and error_code(mismatch) == "password_mismatch"
    weak = me.put("/api/v1/security/password", {"current_password": PASSWORD, "new_password": profile["login"] + "12345",
                                                "new_password_confirmation": profile["login"] + "12345"}, headers=here)
    assert weak.status_code == 422 and error_code(weak) == "weak_password"
    changed = me.put("/api/v1/security/password", {"current_password": PASSWORD, "new_password": new,
                                                   "new_password_confirmation": new}, headers=here)
    assert changed.status_code == 204
    assert stranger.get("/api/v1/profile", headers=from_ip("203.0.113.50")).status_code == 401
    assert me.get("/api/v1/profile", headers=here).status_code == 200

    logins = me.get("/api/v1/security/logins?limit=1", headers=here).json()
    assert logins["items"][0]["ip"] == "203.0.113.50" and logins["next_cursor"]
    assert logins["items"][0]["user_agent"] == "Firefox on a stranger's laptop"
    rest = me.get(f"/api/v1/security/logins?limit=5&cursor={logins['next_cursor']}", headers=here).json()
    assert [i["ip"] for i in rest["items"]] == ["198.51.100.7"]
    assert me.get("/api/v1/security/logins?cursor=forged", headers=here).status_code == 400
    events = me.get("/api/v1/security/events", headers=here).json()["items"]
    assert [e["kind"] for e in events][:3] == ["sessions_ended", "password_changed", "new_ip_login"]
    assert events[2]["ip"] == "203.0.113.50"
    [announced] = outbox(proxied, "new_ip_login", profile["id"])
    assert announced["ip_address"] == "203.0.113.50"
    assert len(outbox(proxied, "password_changed", profile["id"])) == 1


def test_freeze_ends_all_sessions_and_blocks_logins(gateway, proxied):
    profile, me = customer(gateway)
    assert me.post("/api/v1/security/freeze", headers=from_ip("198.51.100.7")).status_code == 204
    assert me.get("/api/v1/profile", headers=from_ip("198.51.100.7")).status_code == 401
    frozen = log_in(gateway, profile)
    assert frozen.status_code == 403 and error_code(frozen) == "account_frozen"
    with bus_client(proxied.env, "operator") as staff:
        staff.profile.unfreeze(profile["id"], "support:ola")
    assert log_in(gateway, profile).status_code == 201


# --------------------------------------------------------------------------- brute force and enumeration


def test_failed_logins_back_off_per_account_and_the_owner_gets_back_in(gateway, clock):
    profile = register(gateway)
    answers = [log_in(gateway, profile, f"192.0.2.{n}", password="guess number %d" % n) for n in range(1, 9)]
    codes = [a.status_code for a in answers]
    # five failures, then a wait of 1 s doubling with each failure: a 429 comes at the latest on the 7th
    assert codes[:5] == [401] * 5 and 429 in codes[5:7], codes
    limited = log_in(gateway, profile, "198.51.100.7")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert error_code(limited) == "rate_limited"
    clock(seconds=int(limited.headers["Retry-After"]) + 1)
    assert log_in(gateway, profile, "198.51.100.7").status_code == 201


def test_one_address_may_fail_only_thirty_logins_a_minute(gateway):
    answers = [gateway.post("/api/v1/sessions", {"login": f"nobody{n}", "password": "x" * 12},
                            headers=from_ip("192.0.2.200")).status_code for n in range(31)]
    assert answers[:30] == [401] * 30 and answers[30] == 429


def test_one_address_may_register_only_so_many_accounts_an_hour(gateway, clock):
    here, elsewhere = somewhere(), somewhere()
    assert [registration(gateway, here).status_code for _ in range(5)] == [201] * 5
    refused = registration(gateway, here)
    assert refused.status_code == 429 and error_code(refused) == "rate_limited"
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert registration(gateway, elsewhere).status_code == 201
    clock(hours=1, seconds=1)
    assert registration(gateway, here).status_code == 201


def test_unknown_login_and_wrong_password_take_the_same_time(gateway):
    accounts = [register(gateway) for _ in range(6)]
    known, unknown = [], []
    for n in range(24):  # interleaved, each from its own address and under the backoff threshold
        started = time.perf_counter()
        answer = log_in(gateway, accounts[n % 6], f"192.0.2.{100 + n}", password="wrong password %d" % n)
        known.append(time.perf_counter() - started)
        assert answer.status_code == 401
        started = time.perf_counter()
        ghost = gateway.post("/api/v1/sessions", {"login": f"ghost{uuid.uuid4().hex[:8]}", "password": "wrong password"},
                             headers=from_ip(f"192.0.2.{150 + n}"))
        unknown.append(time.perf_counter() - started)
        assert ghost.status_code == 401 and ghost.json() == answer.json()
    # The tolerance is what this run's own noise is: the spread of the known-login timings.
    quartiles = statistics.quantiles(known, n=4)
    tolerance = 3 * (quartiles[2] - quartiles[0]) + 0.25 * statistics.median(known)
    assert abs(statistics.median(known) - statistics.median(unknown)) <= tolerance, (known, unknown)
