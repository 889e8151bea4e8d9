"""VAT ids: format and check digits (python-stdnum), shared by profile (input) and ledger (tax).

Offline only; the online VIES check is the ledger's adapter (services/ledger/tax.py).
"""
from __future__ import annotations

import re

import stdnum.eu.vat
from stdnum.exceptions import (InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength,
                               ValidationError as StdnumValidationError)

from services.common.errors import DomainError

EU_MEMBERS = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split())
# Greece is GR in ISO 3166 but EL in VAT ids (and in VIES).
_VAT_PREFIX = {"GR": "EL"}
_REASONS = {
    InvalidLength: "it has the wrong length for a VAT id of {country}",
    InvalidFormat: "it is not in the format of a VAT id of {country}",
    InvalidChecksum: "its check digits do not match",
    InvalidComponent: "it is not a VAT id of {country}",
}
_SEPARATORS = re.compile(r"[\s.\-/,:]")


def validate_vat_id(vat_id: str | None, country: str, members: frozenset[str] = EU_MEMBERS) -> str:
    """Check a VAT id offline (format and check digits) and return it normalised, e.g. ``DE136695976``.

    Raises ``DomainError("invalid_vat_id")`` with the reason. Outside the EU there is no
    common format to check: the id is only normalised.
    """
    country = (country or "").upper()
    text = _SEPARATORS.sub("", vat_id or "").upper()
    if not text:
        raise invalid_vat_id("a VAT id is required", country)
    if country not in members:
        if not text.isalnum() or not 2 <= len(text) <= 20:
            raise invalid_vat_id("it must be 2 to 20 letters and digits", country)
        return text
    prefix = _VAT_PREFIX.get(country, country)
    written_prefix = "EL" if text[:2] == "GR" else text[:2]
    if written_prefix in {_VAT_PREFIX.get(c, c) for c in members}:
        if written_prefix != prefix:
            raise invalid_vat_id(f"it is a VAT id of {written_prefix}, not of {country}", country)
        text = prefix + text[2:]
    else:
        # Written without the country prefix (e.g. a bare Polish NIP).
        text = prefix + text
    try:
        return stdnum.eu.vat.validate(text)
    except StdnumValidationError as exc:
        template = _REASONS.get(type(exc), "it is not a valid VAT id of {country}")
        raise invalid_vat_id(template.format(country=country), country) from None


def invalid_vat_id(reason: str, country: str) -> DomainError:
    return DomainError("invalid_vat_id", f"The VAT id is not valid: {reason}.",
                       fields={"vat_id": [reason]}, details={"reason": reason, "country": country})
