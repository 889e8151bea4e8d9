"""What support staff's tools ask the profile service over RPC: find by e-mail, the account's
overview, an operator's freeze (the methods the operator CLI needs beyond the contract's)."""
from __future__ import annotations

import uuid

import pytest

from services.common.errors import DomainError
from services.profile.service import ProfileService

PASSWORD = "a long and unusual passphrase 7"
HOME = "198.51.100.7"


@pytest.fixture
def profile(run_service, rpc_client):
    """The profile service as support staff's tools call it (the ``operator`` login)."""
    run_service(ProfileService)
    return rpc_client.profile


@pytest.fixture
def panel(profile, rpc_as):
    """The same service as the gateway calls it for a customer."""
    return rpc_as("gateway").profile


def register(profile, **overrides) -> dict:
    login = overrides.pop("login", f"c{uuid.uuid4().hex[:12]}")
    return profile.register({"login": login, "password": PASSWORD, "email": f"{login}@example.com",
                             "first_name": "Anna", "last_name": "Nowak", "city": "Warszawa",
                             "address": "ul. Prosta 1", "country": "PL", **overrides})


def code_of(call, *args) -> str:
    with pytest.raises(DomainError) as error:
        call(*args)
    return error.value.error_code


def test_an_address_finds_every_account_it_serves_whatever_its_case(profile, panel):
    shared = f"Family.{uuid.uuid4().hex[:6]}@Example.com"
    older = register(panel, email=shared)
    newer = register(panel, email=shared.lower())
    register(panel)  # someone else

    found = profile.find_by_email(f"  {shared.upper()} ")
    assert [item["id"] for item in found["items"]] == [newer["id"], older["id"]]   # newest first
    assert found["next_cursor"] is None and found["items"][0]["login"] == newer["login"]
    assert profile.find_by_email("nobody@example.com") == {"items": [], "next_cursor": None}
    assert code_of(profile.find_by_email, "") == "validation_error"
    assert code_of(profile.find_by_email, 42) == "validation_error"


def test_the_overview_shows_the_profile_with_its_frozen_state_and_security_settings(profile, panel):
    account = register(panel)
    panel.set_security_code(account["id"], "fox trot 42", HOME)

    overview = profile.account_overview(account["id"])
    assert {key: overview[key] for key in account} == account
    assert overview["frozen"] is False
    assert overview["security"]["security_code_set"] is True and overview["security"]["two_factor_enabled"] is False
    assert code_of(profile.account_overview, str(uuid.uuid4())) == "not_found"


def test_an_operator_freeze_ends_the_sessions_and_names_the_operator_on_the_timeline(profile, panel):
    account = register(panel)
    session = panel.log_in(account["login"], PASSWORD, None, HOME, "pytest")

    assert profile.freeze_by_operator(account["id"], "support:ola") == {"account_id": account["id"], "frozen": True}
    assert code_of(panel.authenticate, session["token"], HOME) == "unauthenticated"
    assert code_of(panel.log_in, account["login"], PASSWORD, None, HOME, "pytest") == "account_frozen"
    assert profile.account_overview(account["id"])["frozen"] is True
    frozen = profile.security_events(account["id"])["items"][0]
    assert frozen["kind"] == "account_frozen" and frozen["details"] == {"operator": "support:ola", "caller": "operator", "sessions_ended": 1}

    # a second freeze changes nothing; refusals leave the account as it was
    assert profile.freeze_by_operator(account["id"], "support:ola")["frozen"] is True
    assert [e["kind"] for e in profile.security_events(account["id"])["items"]].count("account_frozen") == 1
    assert code_of(profile.freeze_by_operator, account["id"], " ") == "validation_error"
    assert code_of(profile.freeze_by_operator, str(uuid.uuid4()), "support:ola") == "not_found"

    profile.unfreeze(account["id"], "support:ola")
    assert profile.account_overview(account["id"])["frozen"] is False
    assert panel.log_in(account["login"], PASSWORD, None, HOME, "pytest")["token"]
