"""Rules of the customer's personal data (P1-P9, S1), security views (S2-S6) and
notification settings (N1-N3): no I/O here. The security rules proper live in security.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.clock import as_utc, iso
from services.common.errors import DomainError, ValidationError
from services.common.vat_ids import EU_MEMBERS, INVALID, NOT_CHECKED, VALID, validate_vat_id
from services.common.money import Money

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
    """A mandatory field may be changed, never emptied (docs/CONTRACTS.md: 400)."""
    emptied = {name: ["required"] for name in MANDATORY if name in changes and changes[name] in (None, "")}
    if emptied:
        raise ValidationError(emptied)


def phone_changes(changes: dict, current_phone: str | None) -> bool:
    """Whether an edit sets another phone number (or removes it): that number receives the calls
    that confirm operations (S7), so the change is re-authenticated and told to the customer."""
    return "phone" in changes and changes["phone"] != current_phone


def masked_phone(phone: str | None) -> str | None:
    """A number as the timeline and the e-mail show it: the country code and the last three digits."""
    if not phone:
        return None
    country = phone[:3] if phone.startswith("+") else ""
    return f"{country} … {phone[-3:]}".strip()


@dataclass
class CompanyState:
    profile_type: str
    company_name: str | None
    vat_id: str | None
    company_verification: str


def company_after(current: CompanyState, changes: dict, country: str | None = None) -> CompanyState:
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
    if vat_id and "vat_id" in changes and country:
        vat_id = validate_vat_id(vat_id, country)  # 422 invalid_vat_id with the reason
    vat_id = vat_id.replace(" ", "").replace("-", "").upper() if vat_id else None
    changed = (current.profile_type != "company" or name != current.company_name
               or vat_id != current.vat_id)
    state = "pending" if changed else current.company_verification
    return CompanyState("company", name, vat_id, state)


def vat_id_for_vies(company: CompanyState, country: str | None) -> str | None:
    """The VAT id VIES is asked about when company data are submitted: a company's, in the EU."""
    if company.profile_type != "company" or not company.vat_id or (country or "").upper() not in EU_MEMBERS:
        return None
    return company.vat_id


def vies_answer_reusable(answer: str, checked_at: datetime, now: datetime, cache_hours: float) -> bool:
    """A yes or no from VIES stands for ``VIES_CACHE_HOURS``; an unavailable one is asked again."""
    return answer in (VALID, INVALID) and now - as_utc(checked_at) < timedelta(hours=cache_hours)


def vat_id_check_after(company: CompanyState, asked: str | None, answer: str,
                       checked_at: datetime | None) -> tuple[str, datetime | None]:
    """What the profile keeps of VIES's answer: about the VAT id the company now has, else not_checked."""
    if asked is None or company.profile_type != "company" or company.vat_id != asked:
        return NOT_CHECKED, None
    return answer, checked_at


def payments_blocked(profile_type: str, company_verification: str) -> bool:
    """An unreviewed (or rejected) company cannot pay invoices (P8)."""
    return profile_type == "company" and company_verification != "verified"


def review_outcome(current: CompanyState, approved: bool) -> str:
    if current.profile_type != "company":
        raise DomainError("conflict", "This account is not a company profile.", status=409)
    return "verified" if approved else "rejected"


def profile_view(account) -> dict:
    """The Profile shape of docs/CONTRACTS.md."""
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
        "vat_id_check": account.vat_id_check,
        "vat_id_checked_at": iso(account.vat_id_checked_at),
        "payments_blocked": payments_blocked(account.profile_type, account.company_verification),
        "language": account.language,
        "created_at": iso(account.created_at),
    }


def account_overview(account) -> dict:
    """What support staff see of an account: the Profile shape, whether it is frozen, its security settings."""
    return {**profile_view(account), "frozen": account.frozen, "security": security_view(account)}


def operator_name(operator) -> str:
    """The support operator an action is recorded under: required, one line, at most 100 characters."""
    if not isinstance(operator, str) or not operator.strip() or len(operator) > 100 or not operator.isprintable():
        raise ValidationError({"operator": ["required"]})
    return operator.strip()


def email_search_key(email) -> str:
    """An address as support searches for it: whatever its case and surrounding spaces."""
    if not isinstance(email, str) or not email.strip() or len(email) > 254:
        raise ValidationError({"email": ["must be an e-mail address"]})
    return email.strip().lower()


# --------------------------------------------------------------------------- security (S1-S6)

def security_view(account, last_login: dict | None = None) -> dict:
    """GET /api/v1/security: what is set, never the secrets themselves (S2).

    ``last_login`` is :func:`previous_login_view` of the login before the caller's own (S4).
    """
    return {
        "login": account.login,
        "security_code_set": account.security_code_hash is not None,
        "ip_restriction": list(account.ip_rules or []),
        "two_factor_enabled": account.totp_secret is not None,
        "last_login": last_login,
        "operation_confirmation": account.confirm_operations,
    }


def verification_required(operation: str, reason: str) -> DomainError:
    """422: this customer confirms sensitive operations by phone, and no valid proof came with the request."""
    return DomainError("verification_required",
                       "Confirm this operation by phone first: start a verification with purpose "
                       "'operation' and send its id as verification_id.",
                       fields={"verification_id": [reason]}, details={"operation": operation})


def previous_login_view(session_row) -> dict | None:
    """S4 "last login": the newest login other than the one that opened the caller's session.

    Every session is one successful login, so the newest other session is that login: the one
    before the caller's, or a later one from somewhere else, which is what the customer must see.
    """
    if session_row is None:
        return None
    return {"ip": session_row.ip, "at": iso(as_utc(session_row.created_at))}


def login_view(attempt) -> dict:
    """One line of the login history (S4)."""
    return {"at": iso(attempt.at), "ip": attempt.ip, "success": attempt.success,
            "user_agent": attempt.user_agent, "outcome": attempt.reason}


def security_event_view(event) -> dict:
    """One entry of the security timeline."""
    return {"id": str(event.id), "kind": event.kind, "at": iso(event.at), "ip": event.ip,
            "details": dict(event.details or {})}


def refuse_mismatched_password(new_password, confirmation) -> None:
    """The new password and its confirmation must be the same text (S5)."""
    if new_password != confirmation:
        raise DomainError("password_mismatch", "The new password and its confirmation differ.",
                          fields={"new_password_confirmation": ["does not match new_password"]})


def wrong_password() -> DomainError:
    """Re-authentication failed: the current password in the request is not the account's."""
    return DomainError("wrong_password", "The current password is wrong.", fields={"password": ["wrong"]})


def refuse_lockout(allowed, caller_ip: str, confirmed: bool) -> None:
    """A list that shuts out the caller's own address needs ``confirm_lockout: true`` (S3)."""
    if allowed.restricted and not allowed.covers(caller_ip) and not confirmed:
        raise DomainError("would_lock_out",
                          f"These rules do not cover your current address {caller_ip}; you would lose "
                          "access. Send confirm_lockout: true if this is what you want.",
                          details={"ip": caller_ip})


# --------------------------------------------------------------------------- e-mail tokens (P3)

def email_token_refusal(token_row, now) -> DomainError | None:
    """Why an e-mail token cannot be used now (unknown, used or expired), or None."""
    if token_row is None:
        return DomainError("token_unknown", "This confirmation link is not valid.")
    if token_row.used_at is not None:
        return DomainError("token_expired", "This confirmation link was already used.")
    if as_utc(token_row.expires_at) <= now:
        return DomainError("token_expired", "This confirmation link has expired; request a new one.")
    return None


# --------------------------------------------------------------------------- notification settings (N1-N3)

NOTIFICATION_KINDS = ("invoices", "support", "complaints")


def notification_settings_view(account) -> dict:
    """N1-N3 as docs/CONTRACTS.md shapes them: null addresses fall back to the main e-mail when sending."""
    threshold = None
    if account.low_balance_minor is not None:
        threshold = Money(account.low_balance_minor, account.low_balance_currency).to_wire()
    return {
        "newsletter": bool(account.newsletter),
        "low_balance_threshold": threshold,
        "low_balance_days": account.low_balance_days,
        "monthly_statement": bool(account.monthly_statement),
        "emails": {"invoices": account.invoices_email, "support": account.support_email,
                   "complaints": account.complaints_email},
    }


def refuse_other_currency(amount: Money, balance_currency: str, field: str) -> None:
    """A money setting compared with the balance (the low-balance threshold) must be in the
    balance's currency: one in another currency could never be compared, and would never alert."""
    if amount.currency != balance_currency:
        raise DomainError("validation_error", f"Amounts here are in {balance_currency}, the currency of your "
                                              "balance.",
                          fields={field: [f"must be in {balance_currency}, the currency of your balance"]},
                          details={"balance_currency": balance_currency})


def apply_notification_settings(account, settings: dict) -> None:
    """Apply validated settings; a field left out keeps its value, null clears it."""
    if "newsletter" in settings:
        account.newsletter = settings["newsletter"]
    if "low_balance_threshold" in settings:
        threshold = settings["low_balance_threshold"]
        if threshold is not None and threshold.is_negative():
            raise ValidationError({"low_balance_threshold": ["must not be negative"]})
        account.low_balance_minor = None if threshold is None else threshold.minor
        account.low_balance_currency = None if threshold is None else threshold.currency
    if "low_balance_days" in settings:
        account.low_balance_days = settings["low_balance_days"]
    if "monthly_statement" in settings:
        account.monthly_statement = settings["monthly_statement"]
    for kind, address in (settings.get("emails") or {}).items():
        setattr(account, f"{kind}_email", address)


# --------------------------------------------------------------------------- sessions (A2)

SEEN_EVERY = timedelta(minutes=1)


def seen_again(last_seen_at: datetime | None, now: datetime) -> bool:
    """Whether a request now should move a session's ``last_seen_at``: at most once a minute,
    so checking a token stays a read on all but one request a minute."""
    return last_seen_at is None or as_utc(last_seen_at) + SEEN_EVERY <= now


def session_view(row, current_session_id: str | None) -> dict:
    """One live session of the account, as the customer sees it in the list."""
    return {"id": row.id, "created_at": iso(as_utc(row.created_at)),
            "last_seen_at": iso(as_utc(row.last_seen_at or row.created_at)), "ip": row.ip,
            "user_agent": row.user_agent, "current": row.id == current_session_id}


# --------------------------------------------------------------------------- password reset (A1)

RESET_TOKEN_LIFETIME = timedelta(hours=1)
# What ends every reset link issued before it: a new password (by reset or change) or a freeze.
RESET_ENDING_EVENTS = ("password_changed", "password_reset", "account_frozen")


def reset_token_refusal(token_row, now: datetime, ended_since: bool) -> DomainError | None:
    """Why a password reset token cannot be used now, or None.

    Unknown: 404 ``token_unknown``; used, expired, or issued before the password changed or the
    account was frozen (``ended_since``): 410 ``token_expired``.
    """
    if token_row is None:
        return DomainError("token_unknown", "This password reset link is not valid.")
    if token_row.used_at is not None or ended_since:
        return DomainError("token_expired", "This password reset link was already used; ask for a new one.")
    if as_utc(token_row.expires_at) <= now:
        return DomainError("token_expired", "This password reset link has expired; ask for a new one.")
    return None


def reset_requested_for(login: str | None, email: str | None) -> str:
    """What a reset request names, as one key for the per-name limit: ``login:anna`` or ``email:a@b.pl``."""
    return f"login:{login}" if login is not None else f"email:{email.casefold()}"


def frozen_refusal() -> DomainError:
    return DomainError("account_frozen", "This account is frozen; please contact support.")


# --------------------------------------------------------------------------- the confirmation mail again (P3)

def address_awaiting_confirmation(account, pending_change) -> tuple[str, str]:
    """(address, purpose) the confirmation mail goes to again: a pending new address first, else the
    unconfirmed registration address; 409 ``nothing_to_confirm`` when neither waits."""
    if pending_change is not None:
        return pending_change.email, "change"
    if not account.email_confirmed:
        return account.email, "registration"
    raise DomainError("nothing_to_confirm", "Your e-mail address is confirmed and no new address awaits "
                                            "confirmation.")
