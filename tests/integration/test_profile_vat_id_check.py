"""A company's VAT id asked of VIES when the customer submits company data (``VIES_ENABLED``), kept
with the profile for the operator who reviews the company, and read by the ledger's tax treatment.

Profile and the ledger run in-process over a private vhost and real databases; VIES is a local
stand-in speaking its REST API (tests/fakes.py).
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.pool import NullPool

from services.ledger.service import LedgerService
from services.profile.service import ProfileService
from tests.fakes import ViesStandIn
from tests.support import eventually

GERMAN_VAT_ID = "DE136695976"       # registered, says the stand-in
UNKNOWN_GERMAN_VAT_ID = "DE129273398"  # right check digits, not in the register
PASSWORD = "a long and unusual passphrase 7"


@pytest.fixture
def vies():
    with ViesStandIn(registered={GERMAN_VAT_ID}) as stand_in:
        yield stand_in


@pytest.fixture
def profile(run_service, rpc_as, vies):
    """The profile service as the gateway calls it for the customer (the operator's calls: ``rpc_client``)."""
    run_service(ProfileService, VIES_ENABLED="true", VIES_URL=vies.url, VIES_TIMEOUT="1", VIES_CACHE_HOURS="24")
    return rpc_as("gateway").profile


def register(profile, **company) -> dict:
    login = f"c{uuid.uuid4().hex[:12]}"
    return profile.register({"login": login, "password": PASSWORD, "email": f"{login}@example.com",
                             "first_name": "Hans", "last_name": "Schmidt", "city": "Berlin",
                             "address": "Hauptstraße 1", "country": "DE", **company})


def german_company(profile, vat_id=GERMAN_VAT_ID) -> dict:
    return register(profile, profile_type="company", company_name="Schmidt GmbH", vat_id=vat_id)


def test_a_registered_companys_vat_id_is_recorded_valid_with_the_time_and_shown_to_the_operator(profile, vies,
                                                                                                rpc_client):
    before = time.time()
    account = german_company(profile)
    assert account["vat_id_check"] == "valid"
    seen = rpc_client.profile.get(account["id"])   # what the operator reviewing the company reads
    assert seen["company_verification"] == "pending" and seen["vat_id_check"] == "valid"
    checked_at = seen["vat_id_checked_at"]
    assert checked_at.endswith("Z") and _epoch(checked_at) >= before - 1
    assert vies.asked == [GERMAN_VAT_ID]


def test_a_vat_id_vies_does_not_know_is_accepted_recorded_invalid_and_told_to_the_review_queue(
        profile, vies, service_databases):
    account = register(profile)
    changed = profile.update(account["id"], {"profile_type": "company", "company_name": "Schmidt GmbH",
                                             "vat_id": UNKNOWN_GERMAN_VAT_ID})
    assert changed["vat_id"] == UNKNOWN_GERMAN_VAT_ID and changed["vat_id_check"] == "invalid"
    assert profile.get(account["id"])["vat_id_check"] == "invalid"
    [requested] = outbox(service_databases["profile"], "company_review_requested", account["id"])
    assert requested["vat_id"] == UNKNOWN_GERMAN_VAT_ID and requested["vat_id_check"] == "invalid"
    # A correct VAT id later is asked about again and replaces the verdict.
    fixed = profile.update(account["id"], {"vat_id": GERMAN_VAT_ID})
    assert fixed["vat_id_check"] == "valid"
    assert vies.asked == [UNKNOWN_GERMAN_VAT_ID, GERMAN_VAT_ID]


def test_an_answer_is_reused_for_vies_cache_hours_so_vies_is_asked_once_per_vat_id(profile, vies):
    first, second = german_company(profile), german_company(profile)
    renamed = profile.update(first["id"], {"company_name": "Schmidt & Söhne GmbH"})
    assert [first["vat_id_check"], second["vat_id_check"], renamed["vat_id_check"]] == ["valid"] * 3
    assert profile.get(second["id"])["vat_id_checked_at"] == profile.get(first["id"])["vat_id_checked_at"]
    assert vies.asked == [GERMAN_VAT_ID]


def test_vies_that_does_not_answer_in_time_leaves_the_vat_id_unavailable_and_is_asked_again_next_time(
        profile, vies):
    vies.mode, vies.delay = "slow", 3
    started = time.monotonic()
    account = german_company(profile)
    assert account["vat_id_check"] == "unavailable"
    assert time.monotonic() - started < 2.9   # VIES_TIMEOUT=1: the customer did not wait for VIES
    vies.mode = "ok"
    assert profile.update(account["id"], {"vat_id": GERMAN_VAT_ID})["vat_id_check"] == "valid"
    assert vies.asked == [GERMAN_VAT_ID, GERMAN_VAT_ID]


def test_an_individual_or_a_company_outside_the_eu_is_not_checked(profile, vies):
    assert register(profile)["vat_id_check"] == "not_checked"
    swiss = register(profile, country="CH", profile_type="company", company_name="Muster AG", vat_id="CHE116281710")
    assert (swiss["vat_id_check"], swiss["vat_id_checked_at"]) == ("not_checked", None)
    company = german_company(profile)
    assert profile.update(company["id"], {"profile_type": "individual"})["vat_id_check"] == "not_checked"
    assert vies.asked == [GERMAN_VAT_ID]


def test_without_vies_enabled_nothing_is_asked_and_every_company_is_not_checked(run_service, rpc_as, vies):
    run_service(ProfileService, VIES_URL=vies.url)   # VIES_ENABLED is off by default
    account = german_company(rpc_as("gateway").profile, vat_id=UNKNOWN_GERMAN_VAT_ID)
    assert account["vat_id_check"] == "not_checked" and account["vat_id_checked_at"] is None
    assert vies.asked == []


def test_the_ledger_reverse_charges_a_reviewed_company_only_when_vies_did_not_call_its_vat_id_invalid(
        profile, run_service, rpc_client, service_databases):
    run_service(LedgerService)
    registered, unknown = german_company(profile), german_company(profile, vat_id=UNKNOWN_GERMAN_VAT_ID)
    for account in (registered, unknown):
        rpc_client.profile.review_company(account["id"], True, "operator@introserv")
    # The ledger prices from its copy of the customer, which the review's event reaches seconds later.
    eventually(lambda: ledger_copies_verified(service_databases["ledger"], [registered["id"], unknown["id"]]))
    price = {"amount": "123.00", "currency": "EUR"}
    assert rpc_client.ledger.price(registered["id"], price)["tax_treatment"] == "reverse_charge"
    as_individual = rpc_client.ledger.price(unknown["id"], price)
    assert (as_individual["tax_treatment"], as_individual["vat_rate"], as_individual["gross"]) == \
        ("standard", "19.00", price)


def ledger_copies_verified(url: str, account_ids: list[str]) -> bool:
    """Whether the ledger's copies of these accounts say their company is verified."""
    copies = json_column(url, text("SELECT profile FROM profile_copies WHERE account_id IN :ids")
                         .bindparams(bindparam("ids", expanding=True)), ids=account_ids)
    return [copy["company_verification"] for copy in copies] == ["verified"] * len(account_ids)


def outbox(url: str, event_type: str, account_id: str) -> list[dict]:
    payloads = json_column(url, text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"), t=event_type)
    return [p for p in payloads if p.get("account_id") == account_id]


def json_column(url: str, query, **parameters) -> list[dict]:
    """The one column ``query`` selects, decoded (JSON text on SQLite and in text columns)."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        values = connection.execute(query, parameters).scalars().all()
    engine.dispose()
    return [json.loads(value) if isinstance(value, str) else value for value in values]


def _epoch(iso_time: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()
