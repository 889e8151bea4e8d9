"""VAT ids: format and check digits (python-stdnum), shared by profile (input) and ledger (tax),
and the EU's VIES register, which profile asks whether a company's VAT id is registered.

What VIES said is kept with the profile as ``vat_id_check``: ``valid``, ``invalid`` (not
registered), ``unavailable`` (VIES or the member state did not answer) or ``not_checked`` (the
check is off, or there is nothing to ask about); the ledger's tax treatment reads it.
"""
from __future__ import annotations

import re

import stdnum.eu.vat
import structlog
from stdnum.exceptions import (InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength,
                               ValidationError as StdnumValidationError)

from services.common.config import env, env_bool, env_float
from services.common.errors import DomainError

log = structlog.get_logger(__name__)

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


# --- the VIES register -------------------------------------------------------------------

VALID, INVALID, UNAVAILABLE, NOT_CHECKED = "valid", "invalid", "unavailable", "not_checked"
VAT_ID_CHECKS = (VALID, INVALID, UNAVAILABLE, NOT_CHECKED)


class ViesRegister:
    """The EU's VIES register over its REST API: is a VAT id that passed the offline check registered?

    Asked only when ``VIES_ENABLED`` is on, each request within ``VIES_TIMEOUT`` seconds. An
    answer that is neither yes nor no (VIES or the member state down, a timeout, a garbled
    reply) is ``unavailable``: a customer is never refused because a tax office is down.
    """

    URL = "https://ec.europa.eu/taxation_customs/vies/rest-api/ms/{prefix}/vat/{number}"
    _NOT_REGISTERED = {"INVALID", "INVALID_INPUT"}

    def __init__(self, url: str = URL, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout

    @classmethod
    def from_env(cls) -> "ViesRegister | None":
        """The register as configured (``VIES_URL``, ``VIES_TIMEOUT``), or None unless ``VIES_ENABLED``."""
        if not env_bool("VIES_ENABLED"):
            return None
        return cls(url=env("VIES_URL", cls.URL), timeout=env_float("VIES_TIMEOUT", 5.0))

    def check(self, vat_id: str) -> str:
        """``valid``, ``invalid`` or ``unavailable`` for a normalised EU VAT id (``DE136695976``)."""
        # Imported here: the ledger's document worker reads the VAT rules through services/ledger/tax.py
        # and never asks VIES; requests and urllib3 would add about 4 MB to it (README Performance).
        import requests

        url = self.url.format(prefix=vat_id[:2], number=vat_id[2:])
        try:
            response = requests.get(url, timeout=self.timeout)
            response.raise_for_status()
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:  # ValueError: not JSON
            log.warning("vies_unavailable", vat_id=vat_id, error=repr(exc))
            return UNAVAILABLE
        if not isinstance(answer, dict):
            log.warning("vies_unavailable", vat_id=vat_id, error="not a VIES answer")
            return UNAVAILABLE
        if answer.get("isValid") is True:
            return VALID
        user_error = answer.get("userError")
        if user_error in self._NOT_REGISTERED or (answer.get("isValid") is False and not user_error):
            return INVALID
        log.warning("vies_unavailable", vat_id=vat_id, error=user_error)
        return UNAVAILABLE
