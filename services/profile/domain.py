"""Rules of the customer's personal data (P1-P9, S1): no I/O here."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.clock import iso
from services.common.errors import DomainError, ValidationError

IMMUTABLE = ("login", "email", "country")
MANDATORY = ("first_name", "last_name", "city", "address")


def refuse_immutable(changes: dict) -> None:
    """Login never changes (S1); e-mail has its own flow (P3); country goes through support (P7)."""
    named = [name for name in IMMUTABLE if name in changes]
    if named:
        how = {"login": "The billing login can never be changed.",
               "email": "Change the e-mail address with POST /api/v1/profile/email-change.",
               "country": "The country is changed by support; please open a ticket."}
        raise DomainError("field_immutable", " ".join(how[n] for n in named),
                          fields={n: ["cannot be changed here"] for n in named})


def refuse_emptied_mandatory(changes: dict) -> None:
    """A mandatory field may be changed, never emptied (API.md: 400)."""
    emptied = {name: ["required"] for name in MANDATORY if name in changes and changes[name] in (None, "")}
    if emptied:
        raise ValidationError(emptied)


@dataclass
class CompanyState:
    profile_type: str
    company_name: str | None
    vat_id: str | None
    company_verification: str


def company_after(current: CompanyState, changes: dict) -> CompanyState:
    """Company data and their review state after a change (P8).

    Becoming a company, or changing a company's name or VAT id, needs a new review by
    Introserv staff; until then invoices cannot be paid. Becoming an individual drops the
    company data.
    """
    profile_type = changes.get("profile_type", current.profile_type)
    if profile_type == "individual":
        return CompanyState("individual", None, None, "none")
    name = changes.get("company_name", current.company_name)
    vat_id = changes.get("vat_id", current.vat_id)
    if not name:
        raise ValidationError({"company_name": ["required for a company profile"]})
    vat_id = vat_id.replace(" ", "").replace("-", "").upper() if vat_id else None
    changed = (current.profile_type != "company" or name != current.company_name
               or vat_id != current.vat_id)
    state = "pending" if changed else current.company_verification
    return CompanyState("company", name, vat_id, state)


def payments_blocked(profile_type: str, company_verification: str) -> bool:
    """An unreviewed (or rejected) company cannot pay invoices (P8)."""
    return profile_type == "company" and company_verification != "verified"


def review_outcome(current: CompanyState, approved: bool) -> str:
    if current.profile_type != "company":
        raise DomainError("conflict", "This account is not a company profile.", status=409)
    return "verified" if approved else "rejected"


def profile_view(account) -> dict:
    """The API.md Profile shape."""
    return {
        "id": account.id,
        "login": account.login,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "email": account.email,
        "email_confirmed": account.email_confirmed,
        "phone": account.phone,
        "phone_verified": account.phone_verified,
        "city": account.city,
        "address": account.address,
        "country": account.country,
        "postal_address": account.postal_address,
        "profile_type": account.profile_type,
        "company_name": account.company_name,
        "vat_id": account.vat_id,
        "company_verification": account.company_verification,
        "payments_blocked": payments_blocked(account.profile_type, account.company_verification),
        "language": account.language,
        "created_at": iso(account.created_at),
    }
