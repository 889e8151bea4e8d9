from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import DomainError
from services.common.money import Money
from services.ledger.tax import (OUTSIDE_SCOPE, REVERSE_CHARGE, STANDARD, VAT_RATES, Buyer, RateEdition, Seller,
                                 TaxTreatment, VatRates, price_for, split_gross, tax_treatment, validate_vat_id)

SELLER = Seller.from_env({})
GERMAN_VAT_ID = "DE136695976"


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def individual(country: str, **overrides) -> Buyer:
    return Buyer(**{"name": "Anna Nowak", "address": "Main St 1, Town", "country": country, **overrides})


def company(country: str, vat_id: str | None, verification: str = "verified",
            vat_id_check: str = "not_checked") -> Buyer:
    return Buyer(name="Hans Schmidt", address="Hauptstraße 1, Berlin", country=country,
                 company_name="Schmidt GmbH", vat_id=vat_id, profile_type="company",
                 company_verification=verification, vat_id_check=vat_id_check)


def pays(buyer: Buyer, list_price: str) -> dict:
    amounts = price_for(eur(list_price), tax_treatment(buyer, SELLER), SELLER)
    return {"net": amounts.net.amount, "vat": amounts.vat.amount, "gross": amounts.gross.amount}


# --- who pays which VAT ----------------------------------------------------------------

def test_german_individual_pays_the_list_price_with_german_vat_inside():
    assert tax_treatment(individual("DE"), SELLER) == TaxTreatment(STANDARD, Decimal("19"), "DE")
    assert pays(individual("DE"), "123.00") == {"net": "103.36", "vat": "19.64", "gross": "123.00"}


def test_french_individual_pays_the_list_price_with_french_vat_inside():
    assert tax_treatment(individual("FR"), SELLER).rate == Decimal("20")
    assert pays(individual("FR"), "123.00") == {"net": "102.50", "vat": "20.50", "gross": "123.00"}


def test_polish_individual_pays_the_seller_rate():
    assert pays(individual("PL"), "123.00") == {"net": "100.00", "vat": "23.00", "gross": "123.00"}


def test_polish_company_pays_polish_vat_even_with_a_valid_vat_id():
    buyer = company("PL", "PL1234563218")
    assert tax_treatment(buyer, SELLER) == TaxTreatment(STANDARD, Decimal("23"), "PL")
    assert pays(buyer, "123.00") == {"net": "100.00", "vat": "23.00", "gross": "123.00"}


def test_german_company_with_a_reviewed_vat_id_pays_the_net_at_the_seller_rate():
    buyer = company("DE", GERMAN_VAT_ID)
    assert tax_treatment(buyer, SELLER).kind == REVERSE_CHARGE
    # list / 1.23, not list / 1.19: plan prices carry the seller's VAT for a company.
    assert pays(buyer, "123.00") == {"net": "100.00", "vat": "0.00", "gross": "100.00"}
    assert pays(buyer, "49.99") == {"net": "40.64", "vat": "0.00", "gross": "40.64"}


@pytest.mark.parametrize("verification", ["none", "pending", "rejected"])
def test_german_company_not_yet_reviewed_pays_like_a_german_individual(verification):
    buyer = company("DE", GERMAN_VAT_ID, verification)
    assert tax_treatment(buyer, SELLER) == TaxTreatment(STANDARD, Decimal("19"), "DE")
    assert pays(buyer, "123.00") == pays(individual("DE"), "123.00")


@pytest.mark.parametrize("vat_id", [None, "DE136695978", "FR40303265045"])
def test_german_company_without_a_valid_german_vat_id_pays_like_a_german_individual(vat_id):
    assert pays(company("DE", vat_id), "123.00") == pays(individual("DE"), "123.00")


def test_german_company_whose_vat_id_vies_does_not_know_pays_like_a_german_individual_even_when_reviewed():
    assert pays(company("DE", GERMAN_VAT_ID, vat_id_check="invalid"), "123.00") == pays(individual("DE"), "123.00")


@pytest.mark.parametrize("vat_id_check", ["valid", "unavailable", "not_checked"])
def test_a_reviewed_german_company_keeps_the_reverse_charge_unless_vies_said_invalid(vat_id_check):
    buyer = company("DE", GERMAN_VAT_ID, vat_id_check=vat_id_check)
    assert pays(buyer, "123.00") == {"net": "100.00", "vat": "0.00", "gross": "100.00"}


@pytest.mark.parametrize("country", ["US", "GB", "CH", "NO", "UA"])
def test_customer_outside_the_eu_pays_the_list_price_all_net(country):
    assert tax_treatment(individual(country), SELLER) == TaxTreatment(OUTSIDE_SCOPE, Decimal("0"))
    assert pays(individual(country), "123.00") == {"net": "123.00", "vat": "0.00", "gross": "123.00"}
    assert pays(company(country, "12-3456789"), "123.00")["gross"] == "123.00"


def test_treatment_rate_is_written_with_two_decimals_like_the_invoice_lines():
    assert tax_treatment(individual("FI"), SELLER).vat_rate == "25.50"
    assert tax_treatment(individual("US"), SELLER).vat_rate == "0.00"


def test_seller_in_germany_charges_german_vat_to_german_individuals():
    seller = Seller.from_env({"SELLER_COUNTRY": "DE", "SELLER_VAT_ID": GERMAN_VAT_ID})
    assert tax_treatment(individual("DE"), seller) == TaxTreatment(STANDARD, Decimal("19"), "DE")
    polish_company = company("PL", "PL1234563218")
    assert tax_treatment(polish_company, seller).kind == REVERSE_CHARGE
    # The reverse-charge net takes out the seller's rate, now 19 %.
    assert price_for(eur("119.00"), tax_treatment(polish_company, seller), seller).gross == eur("100.00")


# --- the rate file ---------------------------------------------------------------------

def test_rate_file_has_the_standard_rate_of_each_of_the_27_member_states():
    assert len(VAT_RATES.members) == 27
    expected = {"PL": "23", "DE": "19", "FR": "20", "HU": "27", "LU": "17", "FI": "25.5", "EE": "24",
                "RO": "21", "SK": "23", "GR": "24", "IE": "23", "MT": "18"}
    assert {country: str(VAT_RATES.standard_rate(country)) for country in expected} == expected
    assert not VAT_RATES.is_member("GB")


def test_a_new_rate_applies_from_its_date():
    rates = VatRates([RateEdition(date(2026, 1, 1), {"PL": Decimal("23"), "DE": Decimal("19")}),
                      RateEdition(date(2026, 7, 1), {"PL": Decimal("24"), "DE": Decimal("19")})])
    assert rates.standard_rate("PL", date(2026, 6, 30)) == Decimal("23")
    assert rates.standard_rate("PL", datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)) == Decimal("24")
    seller = Seller(name="S", address="A", country="PL", vat_id="PL1234563218")
    march = tax_treatment(individual("PL"), seller, on=date(2026, 3, 1), rates=rates)
    assert march.rate == Decimal("23")


# --- cent-exact splits -----------------------------------------------------------------

amounts_in_cents = st.integers(min_value=-10**13, max_value=10**13)
eu_rates = st.sampled_from(sorted({rate for rate in VAT_RATES.edition().rates.values()}))


@given(cents=amounts_in_cents, rate=eu_rates)
def test_net_and_vat_always_add_up_to_the_gross(cents, rate):
    amounts = split_gross(Money(cents, "EUR"), rate)
    assert amounts.net + amounts.vat == amounts.gross == Money(cents, "EUR")
    # The net is the exact quotient rounded to the nearest cent.
    assert abs(Decimal(amounts.net.minor) - Decimal(cents) * 100 / (100 + rate)) <= Decimal("0.5")


@given(cents=amounts_in_cents, rate=eu_rates)
def test_a_credit_splits_exactly_as_the_charge_it_mirrors(cents, rate):
    assert split_gross(Money(-cents, "EUR"), rate) == -split_gross(Money(cents, "EUR"), rate)


@given(cents=amounts_in_cents, country=st.sampled_from(["PL", "DE", "FI", "US"]), reverse=st.booleans())
def test_price_for_a_credit_is_the_negated_price_for_the_charge(cents, country, reverse):
    buyer = company(country, GERMAN_VAT_ID) if reverse and country == "DE" else individual(country)
    treatment = tax_treatment(buyer, SELLER)
    assert price_for(Money(-cents, "EUR"), treatment, SELLER) == -price_for(Money(cents, "EUR"), treatment, SELLER)


def test_half_cents_round_away_from_zero():
    # 0.03 / 1.20 = 0.025 exactly: the net takes the half cent, the same way for a credit.
    assert split_gross(Money(3, "EUR"), Decimal("20")).net == Money(3, "EUR")
    assert split_gross(Money(-3, "EUR"), Decimal("20")).net == Money(-3, "EUR")
    assert split_gross(Money(9, "EUR"), Decimal("20")).net == Money(8, "EUR")  # 0.075 -> 0.08


# --- VAT ids ---------------------------------------------------------------------------

@pytest.mark.parametrize("written, country, normalised", [
    ("DE136695976", "DE", "DE136695976"),
    ("de 136 695 976", "DE", "DE136695976"),
    ("123-456-32-18", "PL", "PL1234563218"),
    ("GR094259216", "GR", "EL094259216"),
    ("094259216", "GR", "EL094259216"),
    ("FR 40 303 265 045", "FR", "FR40303265045"),
])
def test_vat_id_is_normalised_with_its_country_prefix(written, country, normalised):
    assert validate_vat_id(written, country) == normalised


@pytest.mark.parametrize("vat_id, country, reason", [
    ("DE136695978", "DE", "its check digits do not match"),
    ("DE12", "DE", "it has the wrong length for a VAT id of DE"),
    ("DE136695976", "PL", "it is a VAT id of DE, not of PL"),
    ("", "DE", "a VAT id is required"),
    (None, "PL", "a VAT id is required"),
])
def test_invalid_vat_id_is_refused_with_the_reason(vat_id, country, reason):
    with pytest.raises(DomainError) as refused:
        validate_vat_id(vat_id, country)
    assert refused.value.error_code == "invalid_vat_id"
    assert refused.value.status == 422
    assert refused.value.fields == {"vat_id": [reason]}
    assert reason in refused.value.message


def test_tax_id_outside_the_eu_is_only_normalised():
    assert validate_vat_id("12-3456789", "US") == "123456789"
    with pytest.raises(DomainError):
        validate_vat_id("12#34", "US")


# --- parties ---------------------------------------------------------------------------

def test_seller_defaults_to_a_polish_seller_with_a_valid_nip():
    assert SELLER.country == "PL"
    assert validate_vat_id(SELLER.vat_id, "PL") == SELLER.vat_id
    assert SELLER.to_party()["vat_id"] == SELLER.vat_id


def test_seller_is_configured_from_the_environment():
    seller = Seller.from_env({"SELLER_NAME": "Introserv Sp. z o.o.", "SELLER_ADDRESS": "ul. Długa 2, Kraków",
                              "SELLER_COUNTRY": "pl", "SELLER_VAT_ID": "123-456-32-18"})
    assert seller == Seller(name="Introserv Sp. z o.o.", address="ul. Długa 2, Kraków", country="PL",
                            vat_id="PL1234563218")


def test_seller_outside_the_eu_or_with_a_bad_vat_id_is_refused_at_start():
    with pytest.raises(ValueError):
        Seller.from_env({"SELLER_COUNTRY": "US"})
    with pytest.raises(DomainError):
        Seller.from_env({"SELLER_VAT_ID": "PL1234563219"})


def test_buyer_is_taken_from_the_profile_as_it_is_now():
    profile = {"first_name": "Jan", "last_name": "Kowalski", "address": "ul. Polna 3", "city": "Łódź",
               "country": "pl", "postal_address": {"line1": "skr. 12", "city": "Łódź", "postcode": "90-001",
                                                   "country": "PL"},
               "profile_type": "company", "company_name": "Kowalski sp.j.", "vat_id": "PL1234563218",
               "company_verification": "pending", "vat_id_check": "valid", "email": "jan@example.com"}
    buyer = Buyer.from_profile(profile)
    assert buyer.to_party() == {"name": "Jan Kowalski", "address": "ul. Polna 3, Łódź",
                                "postal_address": profile["postal_address"], "company_name": "Kowalski sp.j.",
                                "vat_id": "PL1234563218", "country": "PL"}
    assert buyer.is_company and buyer.company_verification == "pending" and buyer.vat_id_check == "valid"
    assert Buyer.from_profile({**profile, "vat_id_check": None}).vat_id_check == "not_checked"
