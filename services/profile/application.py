"""The profile service's use cases for personal data and notification settings, and what
every use case of the service shares (hashing off the hub, the security timeline, e-mail
tokens). Sessions live in sessions.py, security settings in account_security.py.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from eventlet import tpool
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from services.common.clock import as_utc, iso
from services.common.config import env_float, env_int
from services.common.money import Money
from services.common.errors import DomainError, NotFound
from services.common.outbox import first_delivery, publish_later
from services.common.schemas import load
from services.common.vat_ids import INVALID, NOT_CHECKED, VALID, ViesRegister
from services.profile import domain, limits, security
from services.profile.models import Account, EmailToken, SecurityEvent, ViesAnswer
from services.profile.schemas import NotificationSettingsSchema, ProfilePatchSchema, RegistrationSchema


def make_hasher() -> security.PasswordHasher:
    """argon2id with OWASP's parameters by default (t=2, 19 MiB, p=1); cheaper in tests by env."""
    return security.PasswordHasher(time_cost=env_int("ARGON2_TIME_COST", 2),
                                   memory_cost=env_int("ARGON2_MEMORY_KIB", 19456),
                                   parallelism=env_int("ARGON2_PARALLELISM", 1))


# -- argon2 runs in a real thread (it releases the GIL) so it never stalls the eventlet hub

def hash_secret(hasher: security.PasswordHasher, secret: str) -> str:
    """The argon2id hash of a password (or a security code) to store."""
    return tpool.execute(hasher.hash, secret)


def verify_secret(hasher: security.PasswordHasher, stored: str | None, secret) -> bool:
    """Whether ``secret`` matches ``stored``; with nothing stored it spends the same time and says no."""
    if stored is None or not isinstance(secret, str):
        return tpool.execute(hasher.verify_dummy, secret if isinstance(secret, str) else "")
    return tpool.execute(hasher.verify, stored, secret)


def record_security_event(session, account: Account, kind: str, ip: str | None, now,
                          details: dict | None = None, notify: bool = True) -> None:
    """Write an entry of the security timeline and, when the customer must hear of it, its event."""
    details = details or {}
    session.add(SecurityEvent(account_id=account.id, kind=kind, at=now, ip=ip, details=details))
    if notify:
        publish_later(session, kind, {"account_id": account.id, "at": iso(now), "ip_address": ip,
                                      "first_name": account.first_name, **details})


def issue_email_token(session, account: Account, address: str, purpose: str, now) -> None:
    """A single-use token confirming ``address``, stored hashed; the notifier mails it (P3)."""
    token, digest = security.new_token()
    expires = now + timedelta(hours=env_float("EMAIL_TOKEN_HOURS", 24))
    session.add(EmailToken(token_hash=digest, account_id=account.id, email=address, purpose=purpose,
                           created_at=now, expires_at=expires))
    data = {"account_id": account.id, "to": address, "token": token, "purpose": purpose,
            "first_name": account.first_name, "language": account.language, "expires_at": iso(expires)}
    if purpose == "change":
        data["new_email"] = address
    publish_later(session, "email_confirmation_requested", data)


# An address shared by more accounts than this is not a customer's; support narrows it down by login.
FOUND_BY_EMAIL_AT_MOST = 100


class VatIdChecks:
    """Asks VIES whether a company's VAT id is registered (only with ``VIES_ENABLED``), reusing a
    yes or no for ``VIES_CACHE_HOURS``. Never inside a transaction: VIES may take ``VIES_TIMEOUT``.
    """

    def __init__(self, uow, register: ViesRegister | None, clock, cache_hours: float):
        self.uow = uow
        self.register = register
        self.clock = clock
        self.cache_hours = cache_hours

    @classmethod
    def from_env(cls, uow, clock) -> "VatIdChecks":
        return cls(uow, ViesRegister.from_env(), clock, env_float("VIES_CACHE_HOURS", 24))

    def check(self, company: domain.CompanyState, country: str | None) -> tuple[str | None, str, datetime | None]:
        """(the VAT id asked about or None, the answer, when it was given)."""
        vat_id = domain.vat_id_for_vies(company, country)
        if self.register is None or vat_id is None:
            return vat_id, NOT_CHECKED, None
        with self.uow.transaction() as session:
            kept = session.get(ViesAnswer, vat_id)
            if kept is not None and domain.vies_answer_reusable(kept.answer, kept.checked_at, self.clock.now(),
                                                                self.cache_hours):
                return vat_id, kept.answer, as_utc(kept.checked_at)
        answer = self.register.check(vat_id)
        now = self.clock.now()
        if answer in (VALID, INVALID):
            try:
                with self.uow.transaction() as session:
                    session.merge(ViesAnswer(vat_id=vat_id, answer=answer, checked_at=now))
            except IntegrityError:
                pass  # another worker kept its answer about this id a moment ago
        return vat_id, answer, now


class Profiles:
    """``guard`` re-authenticates a phone change (AccountSecurity); ``ledger`` tells the balance's currency."""

    def __init__(self, uow, hasher: security.PasswordHasher, clock, verification=None,
                 vat_id_checks: VatIdChecks | None = None, guard=None, ledger=None):
        self.uow = uow
        self.hasher = hasher
        self.clock = clock
        self.verification = verification
        self.vat_id_checks = vat_id_checks or VatIdChecks.from_env(uow, clock)
        self.guard = guard
        self.ledger = ledger

    # -- registration and personal data
    def register(self, data: dict, ip: str | None = None) -> dict:
        """A new account; ``ip`` (the client's, from the gateway) is limited to
        ``REGISTRATIONS_PER_IP_HOUR`` registrations an hour (429)."""
        data = load(RegistrationSchema, data)
        login = security.normalise_login(data.pop("login"))
        password = data.pop("password")
        security.check_password_policy(password, login)
        individual = domain.CompanyState("individual", None, None, "none")
        company = domain.company_after(individual, data, data["country"]) \
            if data.get("profile_type") == "company" else individual
        vat_id_check, vat_id_checked_at = domain.vat_id_check_after(
            company, *self.vat_id_checks.check(company, data["country"]))
        password_hash = hash_secret(self.hasher, password)
        now = self.clock.now()
        account = Account(
            id=str(uuid.uuid4()), login=login, password_hash=password_hash, email=data["email"],
            email_confirmed=False, first_name=data["first_name"], last_name=data["last_name"],
            city=data["city"], address=data["address"], country=data["country"],
            phone=data.get("phone"), phone_verified=False, postal_address=data.get("postal_address"),
            profile_type=company.profile_type, company_name=company.company_name, vat_id=company.vat_id,
            company_verification=company.company_verification, vat_id_check=vat_id_check,
            vat_id_checked_at=vat_id_checked_at, language=data.get("language", "en"),
            frozen=False, registration_ip=ip or None, created_at=now, updated_at=now)
        try:
            with self.uow.transaction() as session:
                limits.refuse_too_many_registrations(session, ip, now)
                if session.scalar(select(Account.id).where(Account.login == login)):
                    raise _login_taken()
                session.add(account)
                session.flush()
                publish_later(session, "account_registered", {
                    "account_id": account.id, "login": login, **buyer_fields(account)})
                issue_email_token(session, account, account.email, "registration", now)
        except IntegrityError:
            raise _login_taken() from None
        return domain.profile_view(account)

    def get(self, account_id: str) -> dict:
        with self.uow.read() as session:
            return domain.profile_view(account_or_not_found(session, account_id))

    def find_by_login(self, login: str) -> dict:
        try:
            login = security.normalise_login(login)
        except DomainError:
            raise NotFound("account") from None
        with self.uow.transaction() as session:
            account = session.scalar(select(Account).where(Account.login == login))
            if account is None:
                raise NotFound("account")
            return domain.profile_view(account)

    def find_by_email(self, email: str) -> dict:
        """Every account whose main e-mail is this address (one address may serve several), newest first."""
        key = domain.email_search_key(email)
        with self.uow.transaction() as session:
            accounts = session.scalars(select(Account).where(func.lower(Account.email) == key)
                                       .order_by(Account.created_at.desc()).limit(FOUND_BY_EMAIL_AT_MOST)).all()
            return {"items": [domain.profile_view(account) for account in accounts], "next_cursor": None}

    def update(self, account_id: str, changes: dict, ip: str | None = None) -> dict:
        domain.refuse_immutable(changes if isinstance(changes, dict) else {})
        changes = load(ProfilePatchSchema, changes)
        password, verification_id = changes.pop("password", None), changes.pop("verification_id", None)
        domain.refuse_emptied_mandatory(changes)
        company_submitted = bool({"profile_type", "company_name", "vat_id"} & changes.keys())
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id)
            phone_changes = domain.phone_changes(changes, account.phone)
            if company_submitted:
                planned, country = domain.company_after(_company(account), changes, account.country), account.country
        if company_submitted:
            # VIES is asked before the row is locked, about the company data as they will be.
            vies = self.vat_id_checks.check(planned, country)
        if phone_changes or password:
            self.guard.allow_phone_change(account_id, password, verification_id, ip, phone_changes)
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            company = domain.company_after(_company(account), changes, account.country) \
                if company_submitted else _company(account)
            for name in ("first_name", "last_name", "city", "address", "postal_address", "language"):
                if name in changes:
                    setattr(account, name, changes[name])
            if domain.phone_changes(changes, account.phone):
                if not phone_changes:  # changed by another request since it was read: check again
                    raise DomainError("conflict", "The phone number changed meanwhile; send the edit again.")
                account.phone = changes["phone"]
                account.phone_verified = False  # P6: a new number must be verified again
                record_security_event(session, account, "phone_changed", ip, now,
                                      {"phone": domain.masked_phone(account.phone)})
            review_needed = company.company_verification == "pending" and (
                account.company_verification != "pending" or company.company_name != account.company_name
                or company.vat_id != account.vat_id)
            account.profile_type = company.profile_type
            account.company_name = company.company_name
            account.vat_id = company.vat_id
            account.company_verification = company.company_verification
            if company_submitted:
                account.vat_id_check, account.vat_id_checked_at = domain.vat_id_check_after(company, *vies)
            account.updated_at = now
            publish_later(session, "profile_changed", {
                "account_id": account.id, "fields": sorted(changes), **buyer_fields(account)})
            if review_needed:
                publish_later(session, "company_review_requested", {"account_id": account.id,
                                                                    "company_name": account.company_name,
                                                                    "vat_id": account.vat_id,
                                                                    "vat_id_check": account.vat_id_check})
            return domain.profile_view(account)

    def change_country(self, account_id: str, country: str, ticket_id: str, caller: str | None = None) -> dict:
        """Support changes the country (it is immutable for the customer); the timeline keeps the
        ticket and the broker login that asked."""
        from services.profile.schemas import normalise_country
        from marshmallow import ValidationError as FieldError
        if not isinstance(ticket_id, str) or not ticket_id.strip() or len(ticket_id) > 64:
            raise DomainError("validation_error", "A support ticket id is required.",
                              fields={"ticket_id": ["required"]})
        try:
            country = normalise_country(country)
        except FieldError as exc:
            raise DomainError("validation_error", "Not a country.", fields={"country": exc.messages}) from None
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            previous = account.country
            account.country = country
            account.updated_at = self.clock.now()
            record_security_event(session, account, "country_changed", None, account.updated_at,
                                  {"from": previous, "to": country, "ticket_id": ticket_id.strip(),
                                   "caller": caller}, notify=False)
            publish_later(session, "country_changed", {"account_id": account.id, "from": previous,
                                                       "to": country, "ticket_id": ticket_id.strip(),
                                                       **buyer_fields(account)})
            return domain.profile_view(account)

    def review_company(self, account_id: str, approved: bool, operator: str, caller: str | None = None) -> dict:
        """An operator's verdict on the company; the timeline keeps it with the operator's name
        and the broker login that asked."""
        if not isinstance(approved, bool) or not isinstance(operator, str) or not operator.strip():
            raise DomainError("validation_error", "approved (bool) and operator are required.",
                              fields={"approved": ["required"], "operator": ["required"]})
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            account.company_verification = domain.review_outcome(_company(account), approved)
            account.updated_at = self.clock.now()
            record_security_event(session, account, "company_reviewed", None, account.updated_at,
                                  {"approved": approved, "operator": operator.strip(), "caller": caller},
                                  notify=False)
            publish_later(session, "company_reviewed", {
                "account_id": account.id, "approved": approved, "operator": operator.strip(),
                "company_verification": account.company_verification, **buyer_fields(account)})
            return domain.profile_view(account)

    # -- notification settings (N1-N3)
    def notification_settings(self, account_id: str) -> dict:
        """What the notifier and the ledger need to reach the customer (docs/CONTRACTS.md)."""
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id)
            return {"account_id": account.id, "email": account.email,
                    "email_confirmed": account.email_confirmed, "first_name": account.first_name,
                    "last_name": account.last_name, "language": account.language,
                    **domain.notification_settings_view(account)}

    def get_notifications(self, account_id: str) -> dict:
        with self.uow.transaction() as session:
            return domain.notification_settings_view(account_or_not_found(session, account_id))

    def update_notifications(self, account_id: str, settings: dict) -> dict:
        settings = load(NotificationSettingsSchema, settings)
        if settings.get("low_balance_threshold") is not None:
            threshold = Money.from_wire(settings["low_balance_threshold"], "low_balance_threshold")
            domain.refuse_other_currency(threshold, self._balance_currency(account_id), "low_balance_threshold")
            settings["low_balance_threshold"] = threshold
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            domain.apply_notification_settings(account, settings)
            account.updated_at = self.clock.now()
            view = domain.notification_settings_view(account)
            publish_later(session, "notification_settings_changed", {"account_id": account.id, **view})
            return view

    def _balance_currency(self, account_id: str) -> str:
        """The currency the ledger keeps this account's balance in (it owns the balance; one read,
        asked only when a threshold is set: the threshold is ours, the currency is the ledger's)."""
        with self.uow.transaction() as session:
            account_or_not_found(session, account_id)
        return Money.from_wire(self.ledger.get_balance(account_id), "balance").currency

    # -- the phone verified (P6): told by the gateway right after the check, and by the event
    def record_phone_verification(self, account_id: str, verification_id) -> dict:
        """Mark the phone verified now, once the verification service confirms that this verification
        verified this account's current number; so the next read of the profile says so.

        The gateway calls it before answering the customer's check; ``phone_verified`` (the event)
        comes later and finds it done.
        """
        proof = self.verification.verified_phone(account_id, verification_id)
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            _mark_phone_verified(account, proof.get("phone"), self.clock.now())
            return {"phone": account.phone, "phone_verified": account.phone_verified}

    # -- events from other services
    def phone_verified(self, payload: dict) -> None:
        """verification.phone_verified: the number is verified if it is still the account's number."""
        with self.uow.transaction() as session:
            if not first_delivery(session, "profile.phone_verified", payload["event_id"]):
                return
            account = session.scalar(select(Account).where(Account.id == payload.get("account_id"))
                                     .with_for_update())
            if account is not None:
                _mark_phone_verified(account, payload.get("phone"), self.clock.now())


def _mark_phone_verified(account: Account, phone, now) -> None:
    """The number is verified if it is still the account's number; again is a no-op."""
    if account.phone and account.phone == phone and not account.phone_verified:
        account.phone_verified = True
        account.updated_at = now


def _login_taken() -> DomainError:
    return DomainError("login_taken", "This login is already taken.", fields={"login": ["taken"]})


# Every read of a profile, and every change of one, starts here: built once, not for each call.
ACCOUNT = select(Account).where(Account.id == bindparam("account_id"))
ACCOUNT_LOCKED = ACCOUNT.with_for_update()


def account_or_not_found(session, account_id, lock: bool = False) -> Account:
    """The account row (locked for update when asked), or ``not_found``."""
    if not isinstance(account_id, str):
        raise NotFound("account")
    account = session.scalar(ACCOUNT_LOCKED if lock else ACCOUNT, {"account_id": account_id})
    if account is None:
        raise NotFound("account")
    return account


def _company(account: Account) -> domain.CompanyState:
    return domain.CompanyState(account.profile_type, account.company_name, account.vat_id,
                               account.company_verification)


def buyer_fields(account: Account) -> dict:
    """The data other services keep a copy of (the ledger's invoice buyer, for one)."""
    return {"first_name": account.first_name, "last_name": account.last_name,
            "email": account.email, "country": account.country, "city": account.city,
            "address": account.address, "postal_address": account.postal_address,
            "profile_type": account.profile_type, "company_name": account.company_name,
            "vat_id": account.vat_id, "company_verification": account.company_verification,
            "vat_id_check": account.vat_id_check,
            "payments_blocked": domain.payments_blocked(account.profile_type, account.company_verification),
            "language": account.language}
