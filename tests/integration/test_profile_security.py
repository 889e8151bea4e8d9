"""The profile service's security and notification settings over real RPC and a real database."""
from __future__ import annotations

import json
import uuid

import pyotp
import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from services.common.errors import DomainError
from services.ledger.service import LedgerService
from services.profile.service import ProfileService
from tests.support import eventually

PASSWORD = "a long and unusual passphrase 7"
HOME = "198.51.100.7"


@pytest.fixture
def profile(run_service, rpc_as, rpc_client, service_databases):
    run_service(ProfileService)
    engine = create_engine(service_databases["profile"], poolclass=NullPool)
    yield Profile(rpc_as("gateway").profile, rpc_client.profile, engine)
    engine.dispose()


class Profile:
    """The RPC proxy as the gateway calls it, as support staff call it (``staff``), and what the
    notifier would receive (the outbox)."""

    def __init__(self, rpc, staff, engine):
        self.rpc = rpc
        self.staff = staff
        self.engine = engine

    def register(self, **overrides) -> dict:
        login = overrides.pop("login", f"c{uuid.uuid4().hex[:12]}")
        body = {"login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
                "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL", **overrides}
        return self.rpc.register(body)

    def log_in(self, account, ip=HOME, password=PASSWORD, otp=None) -> dict:
        return self.rpc.log_in(account["login"], password, otp, ip, "pytest")

    def events(self, event_type: str, account_id: str) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"),
                                      {"t": event_type}).all()
        return [p for p in (json.loads(row.payload) for row in rows) if p.get("account_id") == account_id]


def refused(call, *args) -> DomainError:
    """The refusal of an RPC call (a remote DomainError comes back as a DomainError)."""
    with pytest.raises(DomainError) as error:
        call(*args)
    return error.value


def code_of(call, *args) -> str:
    return refused(call, *args).error_code


# --------------------------------------------------------------------------- e-mail


def test_registration_token_confirms_the_address_once(profile):
    account = profile.register()
    [request] = profile.events("email_confirmation_requested", account["id"])
    assert request["to"] == account["email"] and request["purpose"] == "registration"
    assert profile.rpc.confirm_email(request["token"])["email_confirmed"] is True
    assert profile.rpc.get(account["id"])["email_confirmed"] is True
    assert code_of(profile.rpc.confirm_email, request["token"]) == "token_expired"
    assert code_of(profile.rpc.confirm_email, "x" * 43) == "token_unknown"


def test_email_change_waits_for_the_new_address_and_tells_the_old(profile):
    account = profile.register()
    assert code_of(profile.rpc.request_email_change, account["id"], "new@example.com", "wrong password!",
                   HOME) == "wrong_password"
    profile.rpc.request_email_change(account["id"], "first@example.com", PASSWORD, HOME)
    profile.rpc.request_email_change(account["id"], "new@example.com", PASSWORD, HOME)
    assert profile.rpc.get(account["id"])["email"] == account["email"]
    first, second = [e for e in profile.events("email_confirmation_requested", account["id"])
                     if e["purpose"] == "change"]
    assert second["to"] == "new@example.com" and second["new_email"] == "new@example.com"
    assert code_of(profile.rpc.confirm_email, first["token"]) == "token_expired"  # superseded
    profile.rpc.confirm_email(second["token"])
    assert profile.rpc.get(account["id"])["email"] == "new@example.com"
    [changed] = profile.events("email_changed", account["id"])
    assert changed["old_email"] == account["email"] and changed["new_email"] == "new@example.com"


# --------------------------------------------------------------------------- password, code


def test_password_change_ends_other_sessions_and_tells_the_customer(profile):
    account = profile.register()
    mine, other = profile.log_in(account), profile.log_in(account)
    me = profile.rpc.authenticate(mine["token"], HOME)
    new = "another long passphrase 8"
    assert code_of(profile.rpc.change_password, account["id"], me["session_id"], PASSWORD, new, new + "x",
                   HOME) == "password_mismatch"
    assert code_of(profile.rpc.change_password, account["id"], me["session_id"], "not it at all", new, new,
                   HOME) == "wrong_password"
    assert code_of(profile.rpc.change_password, account["id"], me["session_id"], PASSWORD, "password123",
                   "password123", HOME) == "weak_password"
    profile.rpc.change_password(account["id"], me["session_id"], PASSWORD, new, new, HOME)
    assert profile.rpc.authenticate(mine["token"], HOME)["account_id"] == account["id"]
    assert code_of(profile.rpc.authenticate, other["token"], HOME) == "unauthenticated"
    assert code_of(profile.log_in, account) == "invalid_credentials"
    assert profile.log_in(account, password=new)["token"]
    assert len(profile.events("password_changed", account["id"])) == 1


def test_security_code_is_set_once_and_checked_with_a_limit(profile):
    account = profile.register()
    assert profile.staff.check_security_code(account["id"], "anything") is False
    profile.rpc.set_security_code(account["id"], "Blue Horse 42", HOME)
    assert code_of(profile.rpc.set_security_code, account["id"], "another code", HOME) == "already_set"
    overview = profile.rpc.security_overview(account["id"])
    assert overview["security_code_set"] is True and "Blue Horse" not in json.dumps(overview)
    assert profile.staff.check_security_code(account["id"], "blue  horse 42") is True
    for _ in range(3):  # one wrong try was made before the code was set
        assert profile.staff.check_security_code(account["id"], "wrong guess") is False
    assert profile.staff.check_security_code(account["id"], "Blue Horse 42") is True
    assert profile.staff.check_security_code(account["id"], "wrong guess") is False
    assert code_of(profile.staff.check_security_code, account["id"], "Blue Horse 42") == "rate_limited"
    assert code_of(profile.staff.check_security_code, str(uuid.uuid4()), "x") == "not_found"


# --------------------------------------------------------------------------- IP allow list


def test_ip_allow_list_applies_to_logins_and_to_open_sessions(profile):
    account = profile.register()
    session = profile.log_in(account)
    error = refused(profile.rpc.set_ip_restriction, account["id"], ["10.0.0.1", "10.0.0.9-10.0.0.1", "nope"],
                    PASSWORD, False, HOME)
    assert error.error_code == "validation_error"
    assert [line.split(":")[0] for line in error.fields["rules"]] == ["line 2", "line 3"]
    assert code_of(profile.rpc.set_ip_restriction, account["id"], ["10.0.0.0/8"], PASSWORD, False,
                   HOME) == "would_lock_out"
    assert code_of(profile.rpc.set_ip_restriction, account["id"], ["10.0.0.0/8"], "wrong", True,
                   HOME) == "wrong_password"
    assert profile.rpc.security_overview(account["id"])["ip_restriction"] == []
    answer = profile.rpc.set_ip_restriction(account["id"], [" 10.0.0.0/8 ", "", "2001:db8::/32"], PASSWORD,
                                            True, HOME)
    assert answer["ip_restriction"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert code_of(profile.rpc.authenticate, session["token"], HOME) == "ip_not_allowed"
    assert profile.rpc.authenticate(session["token"], "2001:db8::5")["account_id"] == account["id"]
    assert code_of(profile.log_in, account, HOME) == "ip_not_allowed"
    assert code_of(profile.log_in, account, "10.1.2.3", "wrong password") == "invalid_credentials"
    assert profile.log_in(account, "10.1.2.3")["token"]
    [event] = profile.events("ip_restriction_changed", account["id"])
    assert event["rules"] == ["10.0.0.0/8", "2001:db8::/32"] and event["ip_address"] == HOME
    profile.rpc.set_ip_restriction(account["id"], [], PASSWORD, False, "10.1.2.3")
    assert profile.rpc.authenticate(session["token"], HOME)["account_id"] == account["id"]


# --------------------------------------------------------------------------- 2FA


def test_two_factor_login_needs_a_fresh_code_or_an_unused_recovery_code(profile):
    account = profile.register()
    enrolment = profile.rpc.start_two_factor(account["id"], PASSWORD, HOME)
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    assert code_of(profile.rpc.confirm_two_factor, account["id"], "000000", HOME) == "invalid_otp"
    totp = pyotp.TOTP(enrolment["secret"])
    first_code = totp.now()
    codes = profile.rpc.confirm_two_factor(account["id"], first_code, HOME)["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert profile.rpc.security_overview(account["id"])["two_factor_enabled"] is True
    assert code_of(profile.log_in, account) == "otp_required"
    # the code that turned 2FA on was used: it is not accepted again in its time step
    assert code_of(profile.log_in, account, HOME, PASSWORD, first_code) == "invalid_otp"
    assert profile.log_in(account, otp=codes[0].upper())["token"]
    assert code_of(profile.log_in, account, HOME, PASSWORD, codes[0]) == "invalid_otp"
    assert code_of(profile.rpc.disable_two_factor, account["id"], "wrong", codes[1], HOME) == "wrong_password"
    assert code_of(profile.rpc.disable_two_factor, account["id"], PASSWORD, "123456", HOME) == "invalid_otp"
    profile.rpc.disable_two_factor(account["id"], PASSWORD, codes[1], HOME)
    assert profile.log_in(account)["token"]
    kinds = [e["kind"] for e in profile.rpc.security_events(account["id"])["items"]]
    assert kinds[:2] == ["two_factor_disabled", "two_factor_enabled"]


# --------------------------------------------------------------------------- history, freeze


def test_new_ip_login_is_announced_and_history_pages_newest_first(profile):
    account = profile.register()
    profile.log_in(account)
    assert code_of(profile.log_in, account, HOME, "wrong password") == "invalid_credentials"
    profile.log_in(account, "203.0.113.9")
    profile.log_in(account, "203.0.113.9")
    [announced] = profile.events("new_ip_login", account["id"])
    assert announced["ip_address"] == "203.0.113.9" and announced["user_agent"] == "pytest"
    first = profile.rpc.login_history(account["id"], 3)
    assert [(i["ip"], i["success"]) for i in first["items"]] == [
        ("203.0.113.9", True), ("203.0.113.9", True), (HOME, False)]
    rest = profile.rpc.login_history(account["id"], 3, first["next_cursor"])
    assert [(i["ip"], i["success"]) for i in rest["items"]] == [(HOME, True)] and rest["next_cursor"] is None
    assert profile.rpc.security_overview(account["id"])["last_login"]["ip"] == "203.0.113.9"


def test_freeze_ends_every_session_until_support_unfreezes(profile):
    account = profile.register()
    session = profile.log_in(account)
    profile.rpc.freeze(account["id"], HOME)
    assert code_of(profile.rpc.authenticate, session["token"], HOME) == "unauthenticated"
    assert code_of(profile.log_in, account) == "account_frozen"
    assert code_of(profile.staff.unfreeze, account["id"], "") == "validation_error"
    profile.staff.unfreeze(account["id"], "support:ola")
    assert profile.log_in(account)["token"]


# --------------------------------------------------------------------------- notification settings


def test_notification_settings_round_trip_and_reach_the_notifier(profile, run_service):
    run_service(LedgerService)  # it keeps the balance, whose currency a threshold must be in
    account = profile.register()
    assert profile.rpc.get_notifications(account["id"]) == {
        "newsletter": False, "low_balance_threshold": None, "low_balance_days": None, "monthly_statement": False,
        "emails": {"invoices": None, "support": None, "complaints": None}}
    saved = profile.rpc.update_notifications(account["id"], {
        "newsletter": True, "low_balance_threshold": {"amount": "20.00", "currency": "EUR"},
        "emails": {"invoices": "Billing@Example.COM"}})
    assert saved["emails"] == {"invoices": "Billing@example.com", "support": None, "complaints": None}
    for bad in ({"low_balance_threshold": {"amount": 20.0, "currency": "EUR"}},
                {"low_balance_threshold": {"amount": "-1.00", "currency": "EUR"}},
                {"emails": {"support": "not an address"}}, {"newsletter": "yes"}, {"colour": "red"}):
        assert code_of(profile.rpc.update_notifications, account["id"], bad) == "validation_error"
    settings = profile.staff.notification_settings(account["id"])
    assert settings["email"] == account["email"] and settings["newsletter"] is True
    assert settings["low_balance_threshold"] == {"amount": "20.00", "currency": "EUR"}
    [changed] = profile.events("notification_settings_changed", account["id"])
    assert changed["emails"]["invoices"] == "Billing@example.com"


def test_phone_verified_event_marks_the_number_only_if_it_is_still_current(profile, amqp_uri):
    account = profile.register(phone="+48601234567")
    other = profile.register(phone="+48601234568")
    profile.rpc.update(other["id"], {"phone": "+48601234569", "password": PASSWORD}, HOME)
    dispatch = event_dispatcher({"AMQP_URI": amqp_uri, "serializer": "json"})
    for who, phone in ((account, "+48601234567"), (other, "+48601234568")):
        dispatch("verification", "phone_verified", {"event_id": str(uuid.uuid4()), "account_id": who["id"],
                                                    "phone": phone, "verification_id": "v1"})
    eventually(lambda: profile.rpc.get(account["id"])["phone_verified"], timeout=10)
    assert profile.rpc.get(other["id"])["phone_verified"] is False
