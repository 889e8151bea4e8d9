"""The gateway remembers profile's "this token may be used from this IP" as long as the session, while it
hears profile's events; it asks again once a minute, off the request's path."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import eventlet

from gateway.sessions import ACCESS_CHANGING, VouchedSessions, _ForgettingProxy, ask_again_later
from services.common.errors import DomainError

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


class Ticking:
    def __init__(self):
        self.now = 1000.0
        self.wall = NOON

    def move(self, seconds):
        self.now += seconds
        self.wall += timedelta(seconds=seconds)


def vouched(seconds=60.0, listening=True):
    clock = Ticking()
    sessions = VouchedSessions(seconds=seconds, now=lambda: clock.now, wall=lambda: clock.wall)
    if listening:
        sessions.listen()
    return sessions, clock


def anna(expires_in=timedelta(hours=12)):
    return {"account_id": "a-1", "session_id": "s-1", "expires_at": (NOON + expires_in).isoformat()}


def test_an_answer_is_used_for_the_same_token_and_ip_as_long_as_the_session():
    sessions, clock = vouched(seconds=60)
    sessions.remember("token", "10.0.0.1", anna(), sessions.epoch)
    assert sessions.lookup("token", "10.0.0.1") == {"account_id": "a-1", "session_id": "s-1"}
    assert sessions.lookup("token", "10.0.0.2") is None  # another IP is checked against the list afresh
    assert sessions.lookup("other", "10.0.0.1") is None
    clock.move(11 * 3600)
    assert sessions.lookup("token", "10.0.0.1") == {"account_id": "a-1", "session_id": "s-1"}


def test_profile_hears_of_a_session_in_use_once_a_period():
    sessions, clock = vouched(seconds=60)
    sessions.remember("token", "10.0.0.1", anna(), sessions.epoch)
    assert not sessions.due("token", "10.0.0.1")
    clock.move(60)
    assert sessions.due("token", "10.0.0.1")
    assert not sessions.due("token", "10.0.0.1")      # one ask per period, however many requests
    assert sessions.lookup("token", "10.0.0.1")       # served meanwhile
    clock.move(60)
    assert sessions.due("token", "10.0.0.1")


def test_nothing_is_kept_or_used_while_the_replica_does_not_hear_profiles_events():
    sessions, _ = vouched(listening=False)
    sessions.remember("token", "10.0.0.1", anna(), sessions.epoch)
    assert sessions.lookup("token", "10.0.0.1") is None      # not yet consuming
    sessions.listen()
    sessions.remember("token", "10.0.0.1", anna(), sessions.epoch)
    assert sessions.lookup("token", "10.0.0.1")
    epoch = sessions.epoch
    sessions.stop_listening()                                  # the connection went away
    assert sessions.lookup("token", "10.0.0.1") is None
    sessions.remember("token", "10.0.0.1", anna(), epoch)
    sessions.listen()                                          # back: events may have been missed
    assert sessions.lookup("token", "10.0.0.1") is None


def test_a_session_that_expires_is_never_used_past_its_expiry():
    sessions, clock = vouched(seconds=60)
    sessions.remember("token", "10.0.0.1", anna(expires_in=timedelta(seconds=1)), sessions.epoch)
    assert sessions.lookup("token", "10.0.0.1")
    clock.move(1.0)
    assert sessions.lookup("token", "10.0.0.1") is None


def test_forgetting_an_account_drops_all_its_tokens_and_a_token_only_its_own():
    sessions, _ = vouched()
    sessions.remember("t1", "10.0.0.1", anna(), sessions.epoch)
    sessions.remember("t2", "10.0.0.1", {**anna(), "session_id": "s-2"}, sessions.epoch)
    sessions.remember("b1", "10.0.0.1", {**anna(), "account_id": "b"}, sessions.epoch)
    sessions.forget(token="t1")
    assert sessions.lookup("t1", "10.0.0.1") is None and sessions.lookup("t2", "10.0.0.1")
    sessions.forget(account_id="a-1")
    assert sessions.lookup("t2", "10.0.0.1") is None and sessions.lookup("b1", "10.0.0.1")


def test_an_answer_in_flight_while_access_changed_is_not_kept():
    sessions, _ = vouched()
    epoch = sessions.epoch  # the gateway starts asking profile ...
    sessions.forget(account_id="a-1")  # ... meanwhile the customer logs out elsewhere
    sessions.remember("token", "10.0.0.1", anna(), epoch)
    assert sessions.lookup("token", "10.0.0.1") is None


def test_zero_seconds_turns_remembering_off():
    sessions, _ = vouched(seconds=0)
    sessions.remember("token", "10.0.0.1", anna(), sessions.epoch)
    assert sessions.lookup("token", "10.0.0.1") is None


def test_the_oldest_answers_go_first_beyond_the_size():
    sessions, _ = vouched()
    sessions.size = 2
    for token in ("t1", "t2", "t3"):
        sessions.remember(token, "ip", anna(), sessions.epoch)
    assert sessions.lookup("t1", "ip") is None and sessions.lookup("t3", "ip")


class EchoProxy:
    """Stands for the gateway's RPC proxy to profile, whatever is called: each call answers the
    method's name, or with ``fail`` times out. (Not a profile: the proxy's wrapping is under test.)"""

    def __init__(self, fail=False):
        self.fail = fail

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if self.fail:
                raise TimeoutError(name)
            return name
        return call


def test_every_call_that_changes_access_forgets_even_when_it_fails():
    for fail in (False, True):
        for method in ACCESS_CHANGING:
            sessions, _ = vouched()
            sessions.remember("token", "ip", anna(), sessions.epoch)
            proxy = _ForgettingProxy(EchoProxy(fail), sessions)
            argument = "token" if method == "log_out" else "a-1"
            try:
                getattr(proxy, method)(argument, "more")
            except TimeoutError:
                assert fail
            assert sessions.lookup("token", "ip") is None, method


def test_reads_go_through_untouched():
    sessions, _ = vouched()
    sessions.remember("token", "ip", anna(), sessions.epoch)
    assert _ForgettingProxy(EchoProxy(), sessions).get("a-1") == "get"
    assert sessions.lookup("token", "ip")


class Profile:
    """profile.authenticate answering as told: a refusal's code, or yes."""

    def __init__(self, refusal=None):
        self.refusal = refusal
        self.asked = []

    def authenticate(self, token, ip):
        self.asked.append((token, ip))
        if self.refusal:
            raise DomainError(self.refusal)
        return anna()


def test_asking_again_later_forgets_a_session_profile_refuses_and_keeps_it_when_profile_is_away():
    for refusal, kept in ((None, True), ("unauthenticated", False), ("ip_not_allowed", False),
                          ("service_unavailable", True)):
        sessions, _ = vouched()
        sessions.remember("token", "10.0.0.1", anna(), sessions.epoch)
        profile = Profile(refusal)
        ask_again_later(profile, sessions, "token", "10.0.0.1")
        eventlet.sleep(0.01)   # off the request's path: a green thread of its own
        assert profile.asked == [("token", "10.0.0.1")]
        assert (sessions.lookup("token", "10.0.0.1") is not None) is kept, refusal
