"""Taxes: which VAT a buyer pays, and how a price splits into net and VAT.

Plan prices are what an individual pays, VAT included, wherever they live (docs/CONTRACTS.md, Plan).
So the gross stays the list price and only its split changes with the buyer's country;
a company under the EU reverse charge pays the net at the seller's rate, and outside the
EU the whole price is net.

Everything here is pure apart from reading the shipped rate file. Whether VIES knows a
company's VAT id is asked by profile (services/common/vat_ids.py) and comes with the profile.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Mapping

import yaml

from services.common import vat_ids
from services.common.errors import DomainError
from services.common.money import Money

RATES_FILE = Path(__file__).parent / "data" / "vat_rates.yml"

STANDARD = "standard"
REVERSE_CHARGE = "reverse_charge"
OUTSIDE_SCOPE = "outside_scope"
TREATMENT_KINDS = (STANDARD, REVERSE_CHARGE, OUTSIDE_SCOPE)

INDIVIDUAL = "individual"
COMPANY = "company"
VERIFIED = "verified"



# --- the rate table --------------------------------------------------------------------

@dataclass(frozen=True)
class RateEdition:
    """The standard rates in force from ``valid_from`` until the next edition."""

    valid_from: date
    rates: Mapping[str, Decimal]


class VatRates:
    """The shipped, dated table of standard VAT rates of the EU member states."""

    def __init__(self, editions: list[RateEdition]):
        if not editions:
            raise ValueError("the VAT rate table has no edition")
        self.editions = sorted(editions, key=lambda edition: edition.valid_from)
        self.members = frozenset(self.editions[-1].rates)

    @classmethod
    def load(cls, path: Path = RATES_FILE) -> VatRates:
        """Read the rate file; a rate must be a string so that 25.5 stays exact."""
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        editions = []
        for entry in document["editions"]:
            rates = {}
            for country, rate in entry["rates"].items():
                if not isinstance(rate, str):
                    raise ValueError(f"{path}: the rate of {country} must be a string, not {rate!r}")
                rates[country.upper()] = Decimal(rate)
            editions.append(RateEdition(valid_from=entry["valid_from"], rates=rates))
        return cls(editions)

    def edition(self, on: date | datetime | None = None) -> RateEdition:
        """The edition in force on a day; the newest one when no day is given."""
        if on is None:
            return self.editions[-1]
        day = _day(on)
        in_force = [edition for edition in self.editions if edition.valid_from <= day]
        # The file does not know rates older than its first edition; those days only
        # occur in tests with an early frozen clock, which get the oldest known table.
        return in_force[-1] if in_force else self.editions[0]

    def is_member(self, country: str) -> bool:
        """Whether a country (ISO 3166 alpha-2) is an EU member state."""
        return (country or "").upper() in self.members

    def standard_rate(self, country: str, on: date | datetime | None = None) -> Decimal:
        """The standard VAT rate of an EU country in percent, e.g. ``Decimal("23")``."""
        rates = self.edition(on).rates
        try:
            return rates[country.upper()]
        except KeyError:
            raise ValueError(f"{country!r} is not an EU member state") from None


VAT_RATES = VatRates.load()


def _day(moment: date | datetime) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        return moment.date()
    return moment


# --- the parties -----------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Seller:
    """Introserv as it appears on every invoice; configured through the environment."""

    name: str
    address: str
    country: str
    vat_id: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, rates: VatRates = VAT_RATES) -> Seller:
        """Read SELLER_NAME, SELLER_ADDRESS, SELLER_COUNTRY (default PL) and SELLER_VAT_ID."""
        environ = os.environ if environ is None else environ
        country = environ.get("SELLER_COUNTRY", "PL").strip().upper()
        if not rates.is_member(country):
            # Every rule in this module (OSS, reverse charge) is the rule of an EU seller.
            raise ValueError(f"SELLER_COUNTRY must be an EU member state, not {country!r}")
        # The default NIP has a valid check digit; production sets the real one.
        vat_id = validate_vat_id(environ.get("SELLER_VAT_ID", "PL1234563218"), country, rates)
        return cls(
            name=environ.get("SELLER_NAME", "Introserv"),
            address=environ.get("SELLER_ADDRESS", "ul. Przykładowa 1, 00-001 Warszawa"),
            country=country,
            vat_id=vat_id,
        )

    def to_party(self) -> dict:
        """The seller block of an invoice (docs/CONTRACTS.md, Invoice)."""
        return {"name": self.name, "address": self.address, "postal_address": None,
                "company_name": self.name, "vat_id": self.vat_id, "country": self.country}


@dataclass(frozen=True, kw_only=True)
class Buyer:
    """The customer as billed: a snapshot of the profile at the moment of the charge."""

    name: str
    address: str
    postal_address: dict | None = None
    company_name: str | None = None
    vat_id: str | None = None
    country: str
    profile_type: str = INDIVIDUAL
    company_verification: str = "none"
    vat_id_check: str = vat_ids.NOT_CHECKED

    @classmethod
    def from_profile(cls, profile: Mapping) -> Buyer:
        """Build the buyer from the Profile shape of docs/CONTRACTS.md (``profile.get`` over RPC)."""
        name = " ".join(part for part in (profile.get("first_name"), profile.get("last_name")) if part)
        address = ", ".join(part for part in (profile.get("address"), profile.get("city")) if part)
        return cls(
            name=name,
            address=address,
            postal_address=dict(profile["postal_address"]) if profile.get("postal_address") else None,
            company_name=profile.get("company_name") or None,
            vat_id=profile.get("vat_id") or None,
            country=(profile.get("country") or "").upper(),
            profile_type=profile.get("profile_type") or INDIVIDUAL,
            company_verification=profile.get("company_verification") or "none",
            vat_id_check=profile.get("vat_id_check") or vat_ids.NOT_CHECKED,
        )

    @property
    def is_company(self) -> bool:
        return self.profile_type == COMPANY

    def to_party(self) -> dict:
        """The buyer block of an invoice (docs/CONTRACTS.md, Invoice)."""
        return {"name": self.name, "address": self.address,
                "postal_address": dict(self.postal_address) if self.postal_address else None,
                "company_name": self.company_name, "vat_id": self.vat_id, "country": self.country}


# --- which VAT applies -----------------------------------------------------------------

@dataclass(frozen=True)
class TaxTreatment:
    """How VAT applies to one buyer: ``kind`` and the rate in percent charged on the invoice.

    ``country`` is the country whose rate is charged (None when no VAT is charged).
    """

    kind: str
    rate: Decimal
    country: str | None = None

    def __post_init__(self):
        if self.kind not in TREATMENT_KINDS:
            raise ValueError(f"unknown tax treatment {self.kind!r}")

    @property
    def vat_rate(self) -> str:
        """The rate as the contract writes it on invoice lines: ``"23.00"``."""
        return f"{self.rate:.2f}"


def tax_treatment(buyer: Buyer, seller: Seller, on: date | datetime | None = None,
                  rates: VatRates = VAT_RATES) -> TaxTreatment:
    """Which VAT the buyer pays: OSS rate, seller's rate, reverse charge or outside scope."""
    country = buyer.country.upper()
    if not rates.is_member(country):
        return TaxTreatment(OUTSIDE_SCOPE, Decimal(0))
    if country == seller.country:
        return TaxTreatment(STANDARD, rates.standard_rate(country, on), country)
    if _reverse_charge_applies(buyer, rates):
        return TaxTreatment(REVERSE_CHARGE, Decimal(0))
    # An individual, or a company whose VAT id is missing, invalid (by its check digits or by
    # VIES) or not yet reviewed, pays the VAT of its own country (the One-Stop Shop).
    return TaxTreatment(STANDARD, rates.standard_rate(country, on), country)


def _reverse_charge_applies(buyer: Buyer, rates: VatRates) -> bool:
    if not buyer.is_company or buyer.company_verification != VERIFIED or not buyer.vat_id:
        return False
    # VIES said the number is not registered (recorded only while VIES_ENABLED is on); an
    # unavailable or skipped check leaves it to the operator's review.
    if buyer.vat_id_check == vat_ids.INVALID:
        return False
    try:
        validate_vat_id(buyer.vat_id, buyer.country, rates)
    except DomainError:
        return False
    return True


# --- splitting a price -----------------------------------------------------------------

@dataclass(frozen=True)
class Amounts:
    """A price split into net, VAT and gross; ``net + vat == gross`` always."""

    net: Money
    vat: Money
    gross: Money

    def __post_init__(self):
        if self.net + self.vat != self.gross:
            raise ValueError(f"net {self.net} + vat {self.vat} != gross {self.gross}")

    @classmethod
    def zero(cls, currency: str) -> Amounts:
        return cls(Money.zero(currency), Money.zero(currency), Money.zero(currency))

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.net + other.net, self.vat + other.vat, self.gross + other.gross)

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(self.net - other.net, self.vat - other.vat, self.gross - other.gross)

    def __neg__(self) -> Amounts:
        return Amounts(-self.net, -self.vat, -self.gross)

    def to_wire(self) -> dict:
        return {"net": self.net.to_wire(), "vat": self.vat.to_wire(), "gross": self.gross.to_wire()}


def split_gross(gross: Money, rate: Decimal) -> Amounts:
    """Split a VAT-inclusive amount at ``rate`` percent: net rounded to the cent, VAT the rest.

    Rounds half away from zero, so a credit splits exactly as the charge it mirrors.
    """
    exact_net = Fraction(gross.minor) * 100 / (100 + Fraction(rate))
    net = Money(_round_half_away_from_zero(exact_net), gross.currency)
    return Amounts(net, gross - net, gross)


def _round_half_away_from_zero(value: Fraction) -> int:
    whole, remainder = divmod(abs(value.numerator), value.denominator)
    if 2 * remainder >= value.denominator:
        whole += 1
    return -whole if value < 0 else whole


def price_for(list_gross: Money, treatment: TaxTreatment, seller: Seller,
              on: date | datetime | None = None, rates: VatRates = VAT_RATES) -> Amounts:
    """What a buyer pays for a list price (VAT included for individuals), split net/VAT/gross.

    Works the same for negative amounts (credits): ``price_for(-x) == -price_for(x)``.
    """
    if treatment.kind == STANDARD:
        return split_gross(list_gross, treatment.rate)
    zero = Money.zero(list_gross.currency)
    if treatment.kind == REVERSE_CHARGE:
        net = split_gross(list_gross, rates.standard_rate(seller.country, on)).net
        return Amounts(net, zero, net)
    return Amounts(list_gross, zero, list_gross)


# --- VAT ids ---------------------------------------------------------------------------


def validate_vat_id(vat_id: str | None, country: str, rates: VatRates = VAT_RATES) -> str:
    """The shared VAT id check (services/common/vat_ids.py) against this rate table's members."""
    return vat_ids.validate_vat_id(vat_id, country, rates.members)
