"""Payment methods: which are offered to a customer, and whether they can pay with them now.

The catalogue is ``data/payment_methods.yml`` (countries and profile types per method).
On top of it one rule holds for every method (docs/requirements.md I3): none is available while a
company awaits review of its data, or while the postal address is missing.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.common.errors import DomainError
from services.ledger.tax import COMPANY, INDIVIDUAL, VAT_RATES, VERIFIED

METHODS_FILE = Path(__file__).parent / "data" / "payment_methods.yml"
LANGUAGES = ("en", "pl")
PROFILE_TYPES = (INDIVIDUAL, COMPANY)
WORLD = "world"

# Why a listed method cannot be used now: the code matches the error codes that the
# orders and ledger services answer with, the text is what the panel shows.
UNAVAILABLE_BECAUSE = {
    "payments_blocked": {"en": "blocked until your company data are verified",
                         "pl": "zablokowane do czasu weryfikacji danych firmy"},
    "postal_address_required": {"en": "postal address required",
                                "pl": "wymagany adres korespondencyjny"},
}

_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class PaymentMethod:
    """One way to pay, and to whom it is offered (``countries`` None: every country)."""

    id: str
    names: Mapping[str, str]
    countries: frozenset[str] | None
    excluded: frozenset[str]
    profile_types: frozenset[str]

    def offered_to(self, country: str, profile_type: str) -> bool:
        """Whether this method is offered in a country to a profile type."""
        country = country.upper()
        in_countries = self.countries is None or country in self.countries
        return in_countries and country not in self.excluded and profile_type in self.profile_types

    def name(self, language: str = "en") -> str:
        return self.names.get(language) or self.names["en"]


class PaymentMethods:
    """The catalogue of payment methods, in the order the panel shows them."""

    def __init__(self, methods: Iterable[PaymentMethod]):
        self.methods = list(methods)
        self.by_id = {method.id: method for method in self.methods}
        if len(self.by_id) != len(self.methods):
            raise ValueError("payment method ids must be unique")

    @classmethod
    def load(cls, path: Path = METHODS_FILE, eu: Iterable[str] = VAT_RATES.members) -> PaymentMethods:
        """Read the catalogue; ``eu`` is the region ``eu`` (the members of the VAT rate file)."""
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        regions = _Regions({"eu": list(eu), **(document.get("regions") or {})})
        methods = []
        for entry in document["methods"]:
            names = dict(entry["name"])
            if set(LANGUAGES) - set(names):
                raise ValueError(f"{path}: method {entry['id']} needs a name in {', '.join(LANGUAGES)}")
            profile_types = frozenset(entry["profile_types"])
            if not profile_types or profile_types - set(PROFILE_TYPES):
                raise ValueError(f"{path}: method {entry['id']} has bad profile_types {sorted(profile_types)}")
            methods.append(PaymentMethod(
                id=entry["id"], names=names,
                countries=regions.resolve(entry["countries"]),
                excluded=regions.resolve(entry.get("except") or []) or frozenset(),
                profile_types=profile_types,
            ))
        return cls(methods)

    def offered_to(self, country: str, profile_type: str) -> list[PaymentMethod]:
        """The methods offered in a country to a profile type."""
        _check_profile_type(profile_type)
        return [method for method in self.methods if method.offered_to(country, profile_type)]


class _Regions:
    def __init__(self, definitions: Mapping[str, list[str]]):
        self.definitions = definitions

    def resolve(self, names: list[str], seen: tuple[str, ...] = ()) -> frozenset[str] | None:
        """A set of country codes; None when ``world`` is among the names."""
        codes: set[str] = set()
        for name in names:
            if not isinstance(name, str):
                raise ValueError(f"country {name!r} in the payment methods must be a string (quote NO)")
            if name == WORLD:
                return None
            if _COUNTRY_CODE.match(name):
                codes.add(name)
            elif name in self.definitions and name not in seen:
                codes |= self.resolve(self.definitions[name], seen + (name,)) or set()
            else:
                raise ValueError(f"unknown country or region {name!r} in the payment methods")
        return frozenset(codes)


CATALOGUE = PaymentMethods.load()


def methods_for(country: str, profile_type: str, company_verification: str, has_postal_address: bool,
                language: str = "en", catalogue: PaymentMethods = CATALOGUE) -> list[dict]:
    """The methods offered to a customer: id, name, ``available``, and a ``reason`` when not."""
    if language not in LANGUAGES:
        raise ValueError(f"no payment method names in {language!r}")
    hindrances = _hindrances(profile_type, company_verification, has_postal_address)
    reason = "; ".join(UNAVAILABLE_BECAUSE[code][language] for code in hindrances) or None
    return [{"id": method.id, "name": method.name(language), "available": not hindrances,
             "reason": reason, "reason_code": hindrances[0] if hindrances else None}
            for method in catalogue.offered_to(country, profile_type)]


def check_offered(method_id: str, country: str, profile_type: str, company_verification: str,
                  has_postal_address: bool, catalogue: PaymentMethods = CATALOGUE) -> None:
    """Refuse with ``method_not_offered`` a payment by a method this customer cannot use now."""
    method = catalogue.by_id.get(method_id)
    if method is None or not method.offered_to(country, profile_type):
        raise DomainError("method_not_offered",
                          f"The payment method {method_id!r} is not offered to this customer.",
                          details={"method": method_id})
    hindrances = _hindrances(profile_type, company_verification, has_postal_address)
    if hindrances:
        raise DomainError("method_not_offered",
                          f"No payment method is available: {UNAVAILABLE_BECAUSE[hindrances[0]]['en']}.",
                          details={"method": method_id, "reason": hindrances[0]})


def is_offered(method_id: str, country: str, profile_type: str, company_verification: str,
               has_postal_address: bool, catalogue: PaymentMethods = CATALOGUE) -> bool:
    """Whether a customer can pay with this method now (see :func:`check_offered`)."""
    try:
        check_offered(method_id, country, profile_type, company_verification, has_postal_address, catalogue)
    except DomainError:
        return False
    return True


def _hindrances(profile_type: str, company_verification: str, has_postal_address: bool) -> list[str]:
    _check_profile_type(profile_type)
    hindrances = []
    # A company pays only once staff have verified its data (P8): pending, rejected or
    # never submitted alike.
    if profile_type == COMPANY and company_verification != VERIFIED:
        hindrances.append("payments_blocked")
    if not has_postal_address:
        hindrances.append("postal_address_required")
    return hindrances


def _check_profile_type(profile_type: str) -> None:
    if profile_type not in PROFILE_TYPES:
        raise ValueError(f"unknown profile type {profile_type!r}")
