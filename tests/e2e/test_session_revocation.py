"""Two gateway replicas remember the sessions they checked, and forget them when profile says so
(issue 19, item 2): a token revoked through one replica is refused by the other within the time
profile's event takes, whatever ended it; a replica that lost its event queue starts afresh."""
from __future__ import annotations

import os
import re
import signal
import time
import uuid
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from deploy.local import Stack
from tests.e2e.conftest import running_stack
from tests.support import RABBIT_API, RABBIT_AUTH, Api, bus_client, eventually

PASSWORD = "a long and unusual passphrase 7"
NEW_PASSWORD = "another long passphrase 8"
# Generous for a loaded machine: the event is published on commit and takes milliseconds (README).
EVENT_TIME = 10.0


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """The stack with a second gateway: (first, second) as clients; both believe X-Forwarded-For."""
    with running_stack(tmp_path_factory.mktemp("two-gateways"), TRUSTED_PROXIES="127.0.0.1/32") as stack:
        doubled = Stack(stack.var_dir, env=stack.env, ports=stack.ports, replicas={"gateway": 2})
        doubled.start(timeout=120)
        pid = doubled.pid("gateway-2")
        try:
            second = f"http://127.0.0.1:{doubled.replica_ports['gateway-2']}"
            yield stack, Api(stack.gateway_url), Api(second)
        finally:
            if pid:
                os.kill(pid, signal.SIGTERM)


def customer(gateway: Api, ip: str = "198.51.100.7") -> tuple[dict, Api]:
    login = f"r{uuid.uuid4().hex[:12]}"
    created = gateway.post("/api/v1/accounts", {
        "login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
        "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL"},
        headers={"X-Forwarded-For": f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"})
    assert created.status_code == 201, created.text
    return created.json(), log_in(gateway, created.json(), ip)


def log_in(gateway: Api, profile: dict, ip: str = "198.51.100.7", password: str = PASSWORD) -> Api:
    answer = gateway.post("/api/v1/sessions", {"login": profile["login"], "password": password},
                          headers={"X-Forwarded-For": ip})
    assert answer.status_code == 201, answer.text
    return gateway.as_customer(answer.json()["token"], profile=profile)


def on(gateway: Api, session: Api) -> Api:
    """The same token, sent to another replica."""
    return gateway.as_customer(session.token, profile=session.profile)


def reads(session: Api, ip: str = "198.51.100.7") -> int:
    return session.get("/api/v1/profile", headers={"X-Forwarded-For": ip}).status_code


def refused_within(session: Api, seconds: float, ip: str = "198.51.100.7") -> float:
    """Seconds until ``session`` is refused (asked as fast as the replica answers); fails past ``seconds``."""
    started = time.monotonic()
    while reads(session, ip) == 200:
        assert time.monotonic() - started < seconds, "the other replica still lets the token in"
    return time.monotonic() - started


def authenticate_calls(stack) -> float:
    """How many times profile checked a token (its Prometheus counter)."""
    metrics = requests.get(f"{stack.url('profile')}/metrics", timeout=5).text
    return sum(float(value) for value in re.findall(
        r'^introserv_rpc_calls_total\{[^}]*method="authenticate"[^}]*\} ([0-9.e+]+)$', metrics, re.M))


def profile_database(stack):
    return create_engine(stack.env["PROFILE_DATABASE_URL"], poolclass=NullPool)


def test_a_replica_checks_a_token_once_and_then_answers_without_asking_profile(replicas):
    stack, first, second = replicas
    _, anna = customer(first)
    there = on(second, anna)
    assert reads(there) == 200 and reads(anna) == 200     # each replica asks profile once
    before = authenticate_calls(stack)
    for _ in range(20):
        assert reads(there) == 200 and reads(anna) == 200
    assert authenticate_calls(stack) == before


def test_a_session_ended_through_one_replica_is_refused_by_the_other_at_once(replicas):
    stack, first, second = replicas
    waits = {}

    def revoke(name: str, act) -> None:
        profile, anna = customer(first)
        bystander = log_in(first, profile)
        there = on(second, anna)
        assert reads(there) == 200 and reads(on(second, bystander)) == 200   # both remembered there
        victim = act(anna, bystander)
        waits[name] = refused_within(on(second, victim), EVENT_TIME)

    revoke("log out", lambda anna, _: anna.delete("/api/v1/sessions/current").status_code == 204 and anna)
    revoke("log out others", lambda anna, other: (
        other.delete("/api/v1/sessions/others", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 204
        and anna))
    revoke("end one session", lambda anna, other: other.delete(
        f"/api/v1/sessions/{session_id(other, anna)}", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 204
        and anna)
    revoke("password change", lambda anna, other: other.put("/api/v1/security/password", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 204 and anna)
    revoke("freeze", lambda anna, other: other.post(
        "/api/v1/security/freeze", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 204 and anna)

    def narrow(anna, other):
        saved = other.put("/api/v1/security/ip-restriction", {"rules": ["203.0.113.0/24"], "password": PASSWORD,
                                                                "confirm_lockout": True},
                          headers={"X-Forwarded-For": "203.0.113.5"})
        assert saved.status_code == 200, saved.text
        return anna          # anna's address, 198.51.100.7, is no longer on the list
    revoke("IP list", narrow)

    def by_operator(anna, _):
        with bus_client(stack.env, "operator") as staff:
            staff.profile.freeze_by_operator(anna.profile["id"], "Olga from support")
        return anna
    revoke("operator freeze", by_operator)

    def by_reset(anna, _):
        confirmed = first.post("/api/v1/password-reset/confirm", {
            "token": reset_token(stack, first, anna.profile), "new_password": NEW_PASSWORD,
            "new_password_confirmation": NEW_PASSWORD}, headers={"X-Forwarded-For": "198.51.100.9"})
        assert confirmed.status_code == 204, confirmed.text
        return anna
    revoke("password reset", by_reset)
    print("refused by the other replica after (s):", {name: round(wait, 3) for name, wait in waits.items()})


def session_id(caller: Api, target: Api) -> str:
    """The id of ``target``'s session, as its owner lists it from another session."""
    listed = caller.get("/api/v1/sessions", headers={"X-Forwarded-For": "198.51.100.7"}).json()["items"]
    return next(item["id"] for item in listed if not item["current"])


def reset_token(stack, gateway: Api, profile: dict) -> str:
    """Asks for a reset link and reads it from the mail the customer gets."""
    asked = gateway.post("/api/v1/password-reset", {"login": profile["login"]},
                         headers={"X-Forwarded-For": "198.51.100.9"})
    assert asked.status_code == 202, asked.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = requests.get(f"{stack.url('mail_http')}/messages", params={"to": profile["email"]},
                             timeout=5).json()["items"]
        for item in items:
            if "Reset the password" in item["subject"]:
                return re.search(r"/reset-password\?token=([A-Za-z0-9_-]+)", item["text"]).group(1)
        time.sleep(0.2)
    raise AssertionError("no reset mail")


def test_a_replica_that_lost_its_event_queue_forgets_what_it_remembered(replicas):
    """An event published while a replica's queue is gone reaches nobody: a session ended meanwhile
    (here behind every gateway's back, straight in profile's table) must not outlive the gap."""
    stack, first, second = replicas
    _, anna = customer(first)
    there = on(second, anna)
    assert reads(there) == 200
    with profile_database(stack).begin() as connection:
        connection.execute(text("UPDATE sessions SET ended_at = CURRENT_TIMESTAMP WHERE account_id = :id"),
                           {"id": anna.profile["id"]})
    assert reads(there) == 200            # remembered: no event said otherwise
    closed = close_event_connections(stack)
    assert closed == 2                    # one queue, one connection per replica
    refused_within(there, EVENT_TIME)
    refused_within(anna, EVENT_TIME)


def close_event_connections(stack) -> int:
    """Close, through the broker, each gateway replica's connection that consumes profile's events."""
    owners = eventually(lambda: event_queue_owners(stack))
    for name in owners:
        requests.delete(f"{RABBIT_API}/connections/{quote(name, safe='')}", auth=RABBIT_AUTH, timeout=10)
    return len(owners)


def event_queue_owners(stack) -> list[str] | None:
    """The connections owning the replicas' event queues; None while the management API does not know
    them all yet (its details follow the queues by a statistics interval)."""
    vhost = quote(stack.env["AMQP_URI"].rsplit("/", 1)[1], safe="")
    queues = requests.get(f"{RABBIT_API}/queues/{vhost}", auth=RABBIT_AUTH, timeout=10).json()
    owners = []
    for queue in queues:
        if queue["name"].startswith("evt-profile-session_access_changed--gateway."):
            details = requests.get(f"{RABBIT_API}/queues/{vhost}/{quote(queue['name'], safe='')}",
                                   auth=RABBIT_AUTH, timeout=10).json().get("owner_pid_details")
            if not isinstance(details, dict) or "name" not in details:
                return None
            owners.append(details["name"])
    return owners or None
