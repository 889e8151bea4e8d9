"""The profile domain's security views, e-mail token rules, lockout guard, notification settings."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from services.common.errors import DomainError, ValidationError
from services.common.money import Money
from services.profile import domain
from services.profile.security import IpAllowList

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def account(**overrides):
    values = dict(login="anna", security_code_hash=None, ip_rules=[], totp_secret=None, last_login_at=None,
                  last_login_ip=None, newsletter=False, low_balance_minor=None, low_balance_currency=None, low_balance_days=None, monthly_statement=False,
                  invoices_email=None, support_email=None, complaints_email=None, confirm_operations=False)
    return SimpleNamespace(**{**values, **overrides})


def test_security_view_says_what_is_set_but_never_the_secret():
    previous = domain.previous_login_view(SimpleNamespace(ip="10.0.0.1", created_at=NOON))
    view = domain.security_view(account(security_code_hash="$argon2id$secret", totp_secret="BASE32SECRET",
                                        ip_rules=["10.0.0.0/8"]), previous)
    assert view == {"login": "anna", "security_code_set": True, "ip_restriction": ["10.0.0.0/8"],
                    "two_factor_enabled": True, "last_login": {"ip": "10.0.0.1", "at": "2026-11-29T12:00:00Z"},
                    "operation_confirmation": False}
    assert "secret" not in repr(view).lower() and "BASE32" not in repr(view)


def test_security_view_of_an_account_never_logged_in_has_no_last_login():
    assert domain.security_view(account())["last_login"] is None


@pytest.mark.parametrize("token, code", [
    (None, "token_unknown"),
    (SimpleNamespace(used_at=NOON, expires_at=NOON + timedelta(hours=1)), "token_expired"),
    (SimpleNamespace(used_at=None, expires_at=NOON), "token_expired"),
])
def test_an_email_token_is_refused_when_unknown_used_or_expired(token, code):
    assert domain.email_token_refusal(token, NOON).error_code == code


def test_an_email_token_within_its_day_is_accepted_even_from_a_naive_database_time():
    token = SimpleNamespace(used_at=None, expires_at=(NOON + timedelta(seconds=1)).replace(tzinfo=None))
    assert domain.email_token_refusal(token, NOON) is None


def test_a_list_that_leaves_out_the_caller_needs_confirmation():
    rules = IpAllowList.parse(["10.0.0.0/8"])
    with pytest.raises(DomainError) as refused:
        domain.refuse_lockout(rules, "192.0.2.1", confirmed=False)
    assert refused.value.error_code == "would_lock_out" and refused.value.details == {"ip": "192.0.2.1"}
    domain.refuse_lockout(rules, "192.0.2.1", confirmed=True)
    domain.refuse_lockout(rules, "10.1.2.3", confirmed=False)
    domain.refuse_lockout(IpAllowList.parse([]), "192.0.2.1", confirmed=False)


def test_mismatched_password_confirmation_is_refused():
    with pytest.raises(DomainError) as refused:
        domain.refuse_mismatched_password("a long passphrase", "a long passphrase ")
    assert refused.value.error_code == "password_mismatch"
    domain.refuse_mismatched_password("same text here", "same text here")


def test_notification_settings_default_to_nothing_and_fall_back_to_the_main_address():
    assert domain.notification_settings_view(account()) == {
        "newsletter": False, "low_balance_threshold": None, "low_balance_days": None, "monthly_statement": False,
        "emails": {"invoices": None, "support": None, "complaints": None}}


def test_notification_settings_keep_what_is_left_out_and_clear_what_is_null():
    target = account(newsletter=True, support_email="help@example.com")
    domain.apply_notification_settings(target, {"low_balance_threshold": Money.of("9.99", "PLN"),
                                                "emails": {"invoices": "inv@example.com"}})
    view = domain.notification_settings_view(target)
    assert view["newsletter"] is True
    assert view["low_balance_threshold"] == {"amount": "9.99", "currency": "PLN"}
    assert view["emails"] == {"invoices": "inv@example.com", "support": "help@example.com", "complaints": None}
    domain.apply_notification_settings(target, {"low_balance_threshold": None, "emails": {"support": None}})
    assert domain.notification_settings_view(target)["low_balance_threshold"] is None
    assert target.support_email is None


def test_a_negative_low_balance_threshold_is_refused():
    with pytest.raises(ValidationError) as refused:
        domain.apply_notification_settings(account(), {"low_balance_threshold": Money.of("-0.01", "EUR")})
    assert "low_balance_threshold" in refused.value.fields
