import pytest

from services.common.errors import DomainError
from services.ledger.payment_methods import CATALOGUE, check_offered, is_offered, methods_for


def offered(country: str, profile_type: str = "individual", verification: str = "none",
            postal: bool = True, language: str = "en") -> list[dict]:
    return methods_for(country, profile_type, verification, postal, language)


def ids(methods: list[dict]) -> list[str]:
    return [method["id"] for method in methods]


def test_polish_individual_can_pay_by_blik_and_pln_transfer():
    methods = offered("PL")
    assert ids(methods) == ["card", "sepa_transfer", "bank_transfer_pln", "blik", "paypal", "crypto"]
    assert all(method["available"] and method["reason"] is None for method in methods)


def test_german_individual_gets_sepa_but_no_polish_methods():
    assert ids(offered("DE")) == ["card", "sepa_transfer", "paypal", "crypto"]


def test_companies_outside_sepa_can_pay_by_international_wire_and_individuals_cannot():
    assert "swift_transfer" in ids(offered("US", "company", "verified"))
    assert "swift_transfer" not in ids(offered("US"))
    assert "swift_transfer" not in ids(offered("DE", "company", "verified"))


@pytest.mark.parametrize("country", ["NO", "CH", "GB"])
def test_sepa_transfer_reaches_the_sepa_countries_outside_the_eu(country):
    assert "sepa_transfer" in ids(offered(country))
    assert "swift_transfer" not in ids(offered(country, "company", "verified"))


def test_blik_is_for_individuals_only():
    assert "blik" not in ids(offered("PL", "company", "verified"))


def test_country_code_case_does_not_matter():
    assert ids(offered("pl")) == ids(offered("PL"))


def test_company_awaiting_review_sees_the_methods_but_none_is_available():
    methods = offered("PL", "company", "pending")
    assert ids(methods) == ["card", "sepa_transfer", "bank_transfer_pln", "paypal", "crypto"]
    assert all(not method["available"] for method in methods)
    assert {method["reason"] for method in methods} == {"blocked until your company data are verified"}
    assert {method["reason_code"] for method in methods} == {"payments_blocked"}


@pytest.mark.parametrize("verification", ["none", "rejected"])
def test_company_without_verified_data_cannot_pay(verification):
    assert not any(method["available"] for method in offered("DE", "company", verification))


def test_customer_without_postal_address_cannot_pay():
    methods = offered("DE", postal=False)
    assert methods and not any(method["available"] for method in methods)
    assert {method["reason"] for method in methods} == {"postal address required"}


def test_both_reasons_are_given_when_both_apply():
    methods = offered("PL", "company", "pending", postal=False, language="pl")
    assert methods[0]["reason"] == "zablokowane do czasu weryfikacji danych firmy; wymagany adres korespondencyjny"


def test_method_names_are_in_the_customers_language():
    assert offered("PL", language="pl")[0]["name"] == "Karta płatnicza (Visa, Mastercard)"
    assert offered("PL")[0]["name"] == "Card (Visa, Mastercard)"


def test_every_method_has_a_name_in_both_languages():
    assert all(set(method.names) >= {"en", "pl"} for method in CATALOGUE.methods)


def test_payment_by_an_offered_method_is_accepted():
    assert is_offered("blik", "PL", "individual", "none", True)
    check_offered("sepa_transfer", "DE", "company", "verified", True)


@pytest.mark.parametrize("method, country, profile_type, verification, postal", [
    ("blik", "DE", "individual", "none", True),          # not offered in Germany
    ("blik", "PL", "company", "verified", True),         # not offered to companies
    ("wire_by_pigeon", "PL", "individual", "none", True),  # no such method
    ("card", "PL", "company", "pending", True),          # company awaiting review
    ("card", "PL", "individual", "none", False),         # no postal address
])
def test_payment_by_a_method_not_offered_now_is_refused(method, country, profile_type, verification, postal):
    assert not is_offered(method, country, profile_type, verification, postal)
    with pytest.raises(DomainError) as refused:
        check_offered(method, country, profile_type, verification, postal)
    assert refused.value.error_code == "method_not_offered"
    assert refused.value.status == 422


def test_unknown_profile_type_is_a_programming_error():
    with pytest.raises(ValueError):
        offered("PL", "alien")
