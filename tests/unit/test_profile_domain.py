"""Rules of personal data (services/profile/domain.py)."""
from __future__ import annotations

import pytest

from services.common.errors import DomainError, ValidationError
from services.profile import domain
from services.profile.domain import CompanyState, company_after, payments_blocked, refuse_emptied_mandatory, refuse_immutable

INDIVIDUAL = CompanyState("individual", None, None, "none")


def test_login_email_and_country_cannot_be_edited():
    with pytest.raises(DomainError) as refused:
        refuse_immutable({"email": "x@example.com", "first_name": "A"})
    assert refused.value.error_code == "field_immutable" and set(refused.value.fields) == {"email"}
    refuse_immutable({"first_name": "A"})


def test_a_mandatory_field_cannot_be_emptied():
    with pytest.raises(DomainError) as refused:
        refuse_emptied_mandatory({"last_name": "", "city": None})
    assert set(refused.value.fields) == {"last_name", "city"}


def test_becoming_a_company_needs_a_review_and_blocks_payments():
    company = company_after(INDIVIDUAL, {"profile_type": "company", "company_name": "ACME", "vat_id": "pl 123-456"})
    assert company.company_verification == "pending" and company.vat_id == "PL123456"
    assert payments_blocked(company.profile_type, company.company_verification)
    verified = CompanyState("company", "ACME", "PL123456", "verified")
    assert not payments_blocked("company", "verified")
    assert company_after(verified, {"company_name": "ACME"}).company_verification == "verified"
    assert company_after(verified, {"vat_id": "PL999"}).company_verification == "pending"


def test_becoming_an_individual_drops_the_company_data():
    back = company_after(CompanyState("company", "ACME", "PL1", "verified"), {"profile_type": "individual"})
    assert back == INDIVIDUAL and not payments_blocked(back.profile_type, back.company_verification)


def test_a_company_needs_a_name():
    with pytest.raises(DomainError) as refused:
        company_after(INDIVIDUAL, {"profile_type": "company"})
    assert "company_name" in refused.value.fields


def test_an_invalid_vat_id_is_refused_with_the_reason():
    with pytest.raises(DomainError) as refused:
        company_after(INDIVIDUAL, {"profile_type": "company", "company_name": "ACME", "vat_id": "PL1234567890"}, "PL")
    assert refused.value.error_code == "invalid_vat_id"
    assert refused.value.details["reason"] == "its check digits do not match"
    valid = company_after(INDIVIDUAL, {"profile_type": "company", "company_name": "ACME", "vat_id": "DE 136 695 976"}, "DE")
    assert valid.vat_id == "DE136695976"


def test_support_finds_an_address_whatever_its_case_and_spaces():
    assert domain.email_search_key("  Anna.Nowak@Example.COM ") == "anna.nowak@example.com"
    for not_an_address in ("", "   ", None, 42, "a" * 255):
        with pytest.raises(ValidationError):
            domain.email_search_key(not_an_address)


def test_an_operator_action_needs_a_printable_operator_name():
    assert domain.operator_name(" support:ola ") == "support:ola"
    for bad in ("", "  ", None, "x" * 101, "ola\nroot"):
        with pytest.raises(ValidationError):
            domain.operator_name(bad)
