"""The limits a stranger meets and what a stolen session must not get (issue 17), over real RPC
and a real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres).

The client's address is what the gateway passes as ``ip``. The profile service runs on a
clock that stands still (a test moves it), so "sent at once" means at the same instant even on
a loaded machine: the limits must hold by their locks, not by luck of timing.
"""
from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timezone

import pyotp
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from services.common.clock import FrozenClock
from services.common.errors import DomainError
from services.ledger.service import LedgerService
from services.profile.service import ProfileService

PASSWORD = "a long and unusual passphrase 7"
OWNER = "198.51.100.7"
STRANGER = "203.0.113.66"


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(datetime.now(timezone.utc).replace(microsecond=0))
    monkeypatch.setattr("services.profile.service.clock", frozen)
    return frozen


@pytest.fixture
def profile(run_service, rpc_as, service_databases, clock):
    """The profile service as the gateway calls it for a customer."""
    run_service(ProfileService)
    engine = create_engine(service_databases["profile"], poolclass=NullPool)
    yield Profile(rpc_as("gateway").profile, engine)
    engine.dispose()


class Profile:
    def __init__(self, rpc, engine):
        self.rpc = rpc
        self.engine = engine

    def register(self, ip=None, **overrides) -> dict:
        login = overrides.pop("login", f"c{uuid.uuid4().hex[:12]}")
        body = {"login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
                "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL", **overrides}
        return self.rpc.register(body, ip) if ip else self.rpc.register(body)  # other systems name no address

    def log_in(self, account, ip=OWNER, password=PASSWORD, otp=None) -> dict:
        return self.rpc.log_in(account["login"], password, otp, ip, "pytest")

    def outbox(self, event_type: str, account_id: str) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"),
                                      {"t": event_type}).all()
        return [p for p in (json.loads(row.payload) for row in rows) if p.get("account_id") == account_id]


def refused(call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as error:
        call(*args, **kwargs)
    return error.value


def outcomes(replies) -> Counter:
    """What each of many concurrent calls got: "ok" or the refusal's code."""
    seen = Counter()
    for reply in replies:
        try:
            reply.result()
            seen["ok"] += 1
        except DomainError as error:
            seen[error.error_code] += 1
    return seen


# --------------------------------------------------------------------------- logins at once


def test_forty_wrong_passwords_sent_at_once_are_judged_five_times(profile):
    account = profile.register()
    replies = [profile.rpc.log_in.call_async(account["login"], f"guess number {n}", None, STRANGER, "pytest")
               for n in range(40)]
    seen = outcomes(replies)
    assert seen == {"invalid_credentials": 5, "rate_limited": 35}, seen
    history = profile.rpc.login_history(account["id"], 100)["items"]
    assert len(history) == 5  # a refused attempt was never checked, so it is no failure


def test_right_passwords_sent_at_once_all_log_in(profile):
    """An attempt being checked may be a right password: those behind it wait for its outcome
    instead of counting it as a failure."""
    account = profile.register()
    replies = [profile.rpc.log_in.call_async(account["login"], PASSWORD, None, OWNER, "pytest") for _ in range(12)]
    assert outcomes(replies) == {"ok": 12}


def test_sixty_failures_from_one_address_at_once_are_judged_thirty_times(profile):
    replies = [profile.rpc.log_in.call_async(f"nobody{n}-{uuid.uuid4().hex[:6]}", "whatever it is", None,
                                             STRANGER, "pytest") for n in range(60)]
    seen = outcomes(replies)
    assert seen == {"invalid_credentials": 30, "rate_limited": 30}, seen
    error = refused(profile.rpc.log_in, "someone-else", "whatever it is", None, STRANGER, "pytest")
    assert error.error_code == "rate_limited" and 1 <= error.details["retry_after"] <= 60


def test_wrong_passwords_sent_at_once_through_a_stolen_session_are_judged_five_times(profile):
    account = profile.register()
    replies = [profile.rpc.request_email_change.call_async(account["id"], "thief@example.com", f"guess {n}",
                                                           STRANGER) for n in range(20)]
    assert outcomes(replies) == {"wrong_password": 5, "rate_limited": 15}


# --------------------------------------------------------------------------- the owner and the stranger


def test_a_stranger_who_knows_the_login_cannot_keep_the_owner_out(profile, clock):
    account = profile.register()
    assert profile.log_in(account, OWNER)["token"]
    clock.advance(days=29)  # the owner's address stays familiar for 30 days after a good login
    codes = [refused(profile.log_in, account, STRANGER, f"guess number {n}").error_code for n in range(8)]
    assert codes == ["invalid_credentials"] * 5 + ["rate_limited"] * 3
    assert profile.log_in(account, OWNER)["token"]  # the owner gets in, at once
    assert refused(profile.log_in, account, "192.0.2.99").error_code == "rate_limited"  # others share the count


def test_an_address_not_used_for_thirty_days_shares_the_strangers_count(profile, clock):
    account = profile.register()
    profile.log_in(account, OWNER)
    clock.advance(days=30, seconds=1)
    for n in range(5):
        refused(profile.log_in, account, STRANGER, f"guess number {n}")
    assert refused(profile.log_in, account, OWNER).error_code == "rate_limited"


def test_the_owners_own_mistakes_slow_down_only_the_owners_address(profile):
    account = profile.register()
    profile.log_in(account, OWNER)
    for n in range(5):
        assert refused(profile.log_in, account, OWNER, f"typo {n}").error_code == "invalid_credentials"
    error = refused(profile.log_in, account, OWNER)
    assert error.error_code == "rate_limited" and error.details["retry_after"] == 1
    assert profile.log_in(account, "192.0.2.10")["token"]  # the others' count is untouched


# --------------------------------------------------------------------------- TOTP codes


def test_wrong_totp_codes_at_enrolment_and_removal_count_like_failed_logins(profile, clock):
    account = profile.register()
    profile.log_in(account, OWNER)
    secret = profile.rpc.start_two_factor(account["id"], PASSWORD, OWNER)["secret"]
    totp = pyotp.TOTP(secret)
    wrong = f"{(int(totp.at(clock.now())) + 1) % 1_000_000:06d}"
    codes = [refused(profile.rpc.confirm_two_factor, account["id"], wrong, OWNER).error_code for _ in range(6)]
    assert codes == ["invalid_otp"] * 5 + ["rate_limited"]
    limited = refused(profile.rpc.confirm_two_factor, account["id"], totp.at(clock.now()), OWNER)
    assert limited.error_code == "rate_limited" and limited.details["retry_after"] >= 1
    assert profile.rpc.security_overview(account["id"])["two_factor_enabled"] is False
    clock.advance(seconds=limited.details["retry_after"])
    codes = profile.rpc.confirm_two_factor(account["id"], totp.at(clock.now()), OWNER)["recovery_codes"]

    clock.advance(minutes=20)
    assert profile.log_in(account, OWNER, otp=codes[1])["token"]  # a good login ends the run of failures
    wrong = f"{(int(totp.at(clock.now())) + 1) % 1_000_000:06d}"
    answers = [refused(profile.rpc.disable_two_factor, account["id"], PASSWORD, wrong, OWNER).error_code
               for _ in range(6)]
    assert answers == ["invalid_otp"] * 5 + ["rate_limited"]
    assert refused(profile.rpc.disable_two_factor, account["id"], PASSWORD, codes[0], OWNER).error_code == "rate_limited"
    assert profile.rpc.security_overview(account["id"])["two_factor_enabled"] is True
    outcome = [item["outcome"] for item in profile.rpc.login_history(account["id"], 100)["items"]]
    assert outcome.count("invalid_otp") == 10


# --------------------------------------------------------------------------- registrations


def test_registrations_are_limited_per_client_address(run_service, rpc_as, service_databases, clock):
    run_service(ProfileService, REGISTRATIONS_PER_IP_HOUR=3)
    profile = Profile(rpc_as("gateway").profile, None)
    for _ in range(3):
        profile.register(OWNER)
    error = refused(profile.register, OWNER)
    assert error.error_code == "rate_limited" and 3000 < error.details["retry_after"] <= 3600
    assert profile.register(STRANGER)["id"]  # another address has its own allowance
    assert profile.register()["id"]  # another Introserv system over RPC names no address
    clock.advance(hours=1, seconds=1)
    assert profile.register(OWNER)["id"]


# --------------------------------------------------------------------------- what a stolen session must not get


def test_a_new_phone_number_needs_the_password_and_is_told_to_the_customer(profile):
    account = profile.register(phone="+48601234567")
    for missing in ({}, {"password": ""}):
        no_password = refused(profile.rpc.update, account["id"], {"phone": "+48 602 345 678", **missing}, STRANGER)
        assert no_password.error_code == "validation_error" and list(no_password.fields) == ["password"]
    wrong = refused(profile.rpc.update, account["id"], {"phone": "+48 602 345 678", "password": "guess"}, STRANGER)
    assert wrong.error_code == "wrong_password"
    assert profile.rpc.get(account["id"])["phone"] == "+48601234567"
    assert profile.rpc.update(account["id"], {"city": "Gdańsk"}, OWNER)["city"] == "Gdańsk"  # no phone, no password

    changed = profile.rpc.update(account["id"], {"phone": "+48 602 345 678", "password": PASSWORD}, OWNER)
    assert changed["phone"] == "+48602345678" and changed["phone_verified"] is False
    [event] = [e for e in profile.rpc.security_events(account["id"])["items"] if e["kind"] == "phone_changed"]
    assert event["ip"] == OWNER and event["details"] == {"phone": "+48 … 678"}
    [told] = profile.outbox("phone_changed", account["id"])
    assert told["phone"] == "+48 … 678" and told["ip_address"] == OWNER and told["first_name"] == "Anna"
    assert "password" not in profile.outbox("profile_changed", account["id"])[-1]["fields"]

    removed = profile.rpc.update(account["id"], {"phone": None, "password": PASSWORD}, OWNER)
    assert removed["phone"] is None and profile.outbox("phone_changed", account["id"])[-1]["phone"] is None


def test_two_factor_enrolment_needs_the_password(profile):
    account = profile.register()
    for missing in (None, ""):
        refusal = refused(profile.rpc.start_two_factor, account["id"], missing, OWNER)
        assert refusal.error_code == "validation_error" and list(refusal.fields) == ["password"]
    assert refused(profile.rpc.start_two_factor, account["id"], "guess", STRANGER).error_code == "wrong_password"
    assert profile.rpc.start_two_factor(account["id"], PASSWORD, OWNER)["otpauth_uri"].startswith("otpauth://")


# --------------------------------------------------------------------------- money in the balance's currency


def test_a_low_balance_threshold_in_another_currency_than_the_balance_is_refused(run_service, profile):
    run_service(LedgerService)
    account = profile.register()
    error = refused(profile.rpc.update_notifications, account["id"],
                    {"low_balance_threshold": {"amount": "20.00", "currency": "USD"}})
    assert error.error_code == "validation_error" and list(error.fields) == ["low_balance_threshold"]
    assert error.details == {"balance_currency": "EUR"}
    assert profile.rpc.get_notifications(account["id"])["low_balance_threshold"] is None
    saved = profile.rpc.update_notifications(account["id"], {"low_balance_threshold": {"amount": "20.00",
                                                                                        "currency": "EUR"}})
    assert saved["low_balance_threshold"] == {"amount": "20.00", "currency": "EUR"}
