"""Asking the EU's VIES register about a VAT id (services/common/vat_ids.py), against a local
stand-in that answers as VIES's REST API does."""
from __future__ import annotations

import time

import pytest

from deploy.ports import free_port
from services.common.vat_ids import INVALID, UNAVAILABLE, VALID, ViesRegister
from tests.fakes import ViesStandIn

GERMAN_VAT_ID = "DE136695976"


def test_a_registered_vat_id_is_valid_and_vies_is_asked_by_country_and_number():
    with ViesStandIn(registered={GERMAN_VAT_ID}) as vies:
        assert ViesRegister(url=vies.url).check(GERMAN_VAT_ID) == VALID
    assert vies.asked == [GERMAN_VAT_ID]


def test_a_vat_id_the_register_does_not_know_is_invalid():
    with ViesStandIn(registered=set()) as vies:
        assert ViesRegister(url=vies.url).check(GERMAN_VAT_ID) == INVALID


def test_a_member_state_that_does_not_answer_leaves_the_vat_id_unavailable_not_invalid():
    with ViesStandIn(registered={GERMAN_VAT_ID}, mode="down") as vies:
        assert ViesRegister(url=vies.url).check(GERMAN_VAT_ID) == UNAVAILABLE


def test_vies_that_does_not_answer_within_the_timeout_is_unavailable_after_that_timeout():
    with ViesStandIn(registered={GERMAN_VAT_ID}, mode="slow", delay=3) as vies:
        started = time.monotonic()
        assert ViesRegister(url=vies.url, timeout=0.3).check(GERMAN_VAT_ID) == UNAVAILABLE
        assert time.monotonic() - started < 2.5  # the caller got its answer before VIES did


def test_vies_out_of_reach_or_answering_something_else_is_unavailable():
    closed = f"http://127.0.0.1:{free_port()}/rest-api/ms/{{prefix}}/vat/{{number}}"
    assert ViesRegister(url=closed, timeout=2).check(GERMAN_VAT_ID) == UNAVAILABLE
    with ViesStandIn() as vies:
        not_vies = vies.url.replace("/rest-api/", "/elsewhere/")   # a 404 page
        assert ViesRegister(url=not_vies).check(GERMAN_VAT_ID) == UNAVAILABLE


def test_vies_is_asked_only_when_enabled_with_its_url_and_timeout(monkeypatch):
    for name in ("VIES_ENABLED", "VIES_URL", "VIES_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert ViesRegister.from_env() is None
    monkeypatch.setenv("VIES_ENABLED", "true")
    register = ViesRegister.from_env()
    assert (register.url, register.timeout) == (ViesRegister.URL, 5.0)
    assert register.URL == "https://ec.europa.eu/taxation_customs/vies/rest-api/ms/{prefix}/vat/{number}"
    monkeypatch.setenv("VIES_URL", "http://vies.internal/ms/{prefix}/vat/{number}")
    monkeypatch.setenv("VIES_TIMEOUT", "2.5")
    register = ViesRegister.from_env()
    assert (register.url, register.timeout) == ("http://vies.internal/ms/{prefix}/vat/{number}", 2.5)


@pytest.mark.parametrize("off", ["0", "false", "no", ""])
def test_vies_stays_off_for_anything_but_a_yes(monkeypatch, off):
    monkeypatch.setenv("VIES_ENABLED", off)
    assert ViesRegister.from_env() is None
