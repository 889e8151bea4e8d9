"""The rules behind password reset, the confirmation mail again and the session list (A1, A2)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from gateway.sessions import VouchedSessions, _ForgettingProxy
from services.common.errors import DomainError, ValidationError
from services.common.schemas import load
from services.profile import domain, security
from services.profile.schemas import PasswordResetRequestSchema

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def token(created=NOON, used_at=None):
    return SimpleNamespace(created_at=created, expires_at=created + domain.RESET_TOKEN_LIFETIME, used_at=used_at)


@pytest.mark.parametrize("row, now, ended_since, code", [
    (None, NOON, False, "token_unknown"),
    (token(used_at=NOON), NOON + timedelta(minutes=1), False, "token_expired"),
    (token(), NOON + timedelta(hours=1), False, "token_expired"),
    (token(), NOON + timedelta(minutes=5), True, "token_expired"),
])
def test_a_reset_token_is_refused_when_unknown_used_expired_or_overtaken(row, now, ended_since, code):
    assert domain.reset_token_refusal(row, now, ended_since).error_code == code


def test_a_reset_token_works_within_its_hour():
    assert domain.reset_token_refusal(token(), NOON + timedelta(minutes=59, seconds=59), False) is None


def test_a_request_names_a_login_or_an_address_whatever_its_case():
    assert domain.reset_requested_for("anna", None) == "login:anna"
    assert domain.reset_requested_for(None, "Anna@Example.COM") == "email:anna@example.com"


@pytest.mark.parametrize("body", [{}, {"login": "anna", "email": "anna@example.com"}, {"email": "no address"},
                                  {"login": ""}, {"login": "anna", "otp": "1"}])
def test_a_reset_request_takes_exactly_one_of_login_and_email(body):
    with pytest.raises(ValidationError):
        load(PasswordResetRequestSchema, body)


def test_the_confirmation_mail_goes_to_a_pending_change_first_then_to_an_unconfirmed_address():
    pending = SimpleNamespace(email="new@example.com")
    unconfirmed = SimpleNamespace(email="anna@example.com", email_confirmed=False)
    confirmed = SimpleNamespace(email="anna@example.com", email_confirmed=True)
    assert domain.address_awaiting_confirmation(confirmed, pending) == ("new@example.com", "change")
    assert domain.address_awaiting_confirmation(unconfirmed, None) == ("anna@example.com", "registration")
    with pytest.raises(DomainError) as refused:
        domain.address_awaiting_confirmation(confirmed, None)
    assert refused.value.error_code == "nothing_to_confirm" and refused.value.status == 409


def test_a_window_limit_says_when_the_next_request_fits():
    sent = [NOON - timedelta(seconds=20)]
    assert security.requests_limited(sent, NOON, 1, timedelta(minutes=1)) == 40
    assert security.requests_limited(sent, NOON + timedelta(seconds=40), 1, timedelta(minutes=1)) == 0
    hour = [NOON - timedelta(minutes=m) for m in (50, 40, 30, 20, 10)]
    assert security.requests_limited(hour, NOON, 5, timedelta(hours=1)) == 600


def test_a_session_is_seen_again_at_most_once_a_minute():
    assert domain.seen_again(None, NOON)
    assert not domain.seen_again(NOON - timedelta(seconds=59), NOON)
    assert domain.seen_again(NOON - timedelta(seconds=60), NOON)
    assert not domain.seen_again(NOON.replace(tzinfo=None) - timedelta(seconds=10), NOON)  # SQLite's naive UTC


def test_a_session_shows_who_is_asking_and_when_it_was_last_seen():
    row = SimpleNamespace(id="s-1", created_at=NOON, last_seen_at=None, ip="10.0.0.1", user_agent="Firefox")
    assert domain.session_view(row, "s-1") == {"id": "s-1", "created_at": "2026-11-29T12:00:00Z",
                                               "last_seen_at": "2026-11-29T12:00:00Z", "ip": "10.0.0.1",
                                               "user_agent": "Firefox", "current": True}
    assert domain.session_view(row, "s-2")["current"] is False


def test_the_previous_login_is_the_other_session_or_none():
    assert domain.previous_login_view(None) is None
    assert domain.previous_login_view(SimpleNamespace(ip="10.0.0.9", created_at=NOON)) == {
        "ip": "10.0.0.9", "at": "2026-11-29T12:00:00Z"}


class Profile:
    def __init__(self, answer=None, fail=False):
        self.answer, self.fail = answer, fail

    def confirm_password_reset(self, *args, **kwargs):
        if self.fail:
            raise TimeoutError("profile")
        return self.answer


def remembered():
    sessions = VouchedSessions(seconds=60)
    sessions.listen()   # as once the replica consumes profile's events
    for token, account in (("anna-1", "anna"), ("anna-2", "anna"), ("bob-1", "bob")):
        sessions.remember(token, "ip", {"account_id": account, "session_id": token, "expires_at": None},
                          sessions.epoch)
    return sessions


def test_a_reset_forgets_the_tokens_of_the_account_its_answer_names_and_only_those():
    sessions = remembered()
    _ForgettingProxy(Profile({"account_id": "anna"}), sessions).confirm_password_reset("t", "p", "p")
    assert sessions.lookup("anna-1", "ip") is None and sessions.lookup("anna-2", "ip") is None
    assert sessions.lookup("bob-1", "ip")


def test_a_reset_that_did_not_answer_forgets_every_token():
    sessions = remembered()
    with pytest.raises(TimeoutError):
        _ForgettingProxy(Profile(fail=True), sessions).confirm_password_reset("t", "p", "p")
    assert sessions.lookup("bob-1", "ip") is None
