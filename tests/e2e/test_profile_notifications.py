"""Notification settings (N1-N3) and the client address without a trusted proxy, over HTTP."""
from __future__ import annotations

import pytest

from tests.support import error_code

DEFAULTS = {"newsletter": False, "low_balance_threshold": None, "low_balance_days": None,
            "monthly_statement": False, "emails": {"invoices": None, "support": None, "complaints": None}}


def test_notification_settings_start_empty_and_keep_what_was_saved(customer):
    me = customer()
    assert me.get("/api/v1/profile/notifications").json() == DEFAULTS
    saved = me.put("/api/v1/profile/notifications", {
        "newsletter": True, "low_balance_threshold": {"amount": "15.50", "currency": "EUR"},
        "emails": {"invoices": "faktury@example.com", "support": None, "complaints": "abuse@example.com"}})
    assert saved.status_code == 200, saved.text
    expected = {"newsletter": True, "low_balance_threshold": {"amount": "15.50", "currency": "EUR"},
                "low_balance_days": None, "monthly_statement": False,
                "emails": {"invoices": "faktury@example.com", "support": None, "complaints": "abuse@example.com"}}
    assert saved.json() == expected
    assert me.get("/api/v1/profile/notifications").json() == expected
    cleared = me.put("/api/v1/profile/notifications", {"low_balance_threshold": None})
    assert cleared.json() == {**expected, "low_balance_threshold": None}


@pytest.mark.parametrize("body", [
    {"low_balance_threshold": {"amount": 15.5, "currency": "EUR"}},
    {"low_balance_threshold": {"amount": "15.555", "currency": "EUR"}},
    {"low_balance_threshold": {"amount": "-1.00", "currency": "EUR"}},
    {"emails": {"invoices": "not an address"}},
    {"emails": {"invoices": "a@example.com", "sales": "b@example.com"}},
    {"emails": {"support": "x" * 300 + "@example.com"}},
    {"newsletter": "true"},
    {"newsletter": True, "unknown": 1},
])
def test_bad_notification_settings_are_refused_and_change_nothing(customer, body):
    me = customer()
    refused = me.put("/api/v1/profile/notifications", body)
    assert refused.status_code == 400 and error_code(refused) == "validation_error"
    assert me.get("/api/v1/profile/notifications").json() == DEFAULTS


def test_another_customers_settings_are_out_of_reach(customer, api):
    me, other = customer(), customer()
    me.put("/api/v1/profile/notifications", {"newsletter": True})
    assert other.get("/api/v1/profile/notifications").json()["newsletter"] is False
    assert api.get("/api/v1/profile/notifications").status_code == 401


def test_forwarded_for_from_an_untrusted_peer_is_ignored(customer):
    me = customer()
    saved = me.put("/api/v1/security/ip-restriction",
                   {"rules": ["10.0.0.0/8"], "password": me.password, "confirm_lockout": True})
    assert saved.status_code == 200, saved.text
    for forwarded in ("10.0.0.1", "10.0.0.1, 10.0.0.2", "garbage, 10.0.0.1", "10.0.0.1, ::::"):
        answer = me.get("/api/v1/profile", headers={"X-Forwarded-For": forwarded})
        assert answer.status_code == 403 and error_code(answer) == "ip_not_allowed"
