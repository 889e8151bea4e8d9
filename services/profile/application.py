"""The profile service's use cases: each opens one unit of work and applies the rules."""
from __future__ import annotations

import uuid
from datetime import timedelta

from eventlet import tpool
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from services.common.clock import as_utc, iso
from services.common.config import env_float, env_int
from services.common.errors import DomainError, NotFound
from services.common.outbox import publish_later
from services.common.schemas import load
from services.profile import domain, security
from services.profile.models import Account, LoginAttempt, Session
from services.profile.schemas import ProfilePatchSchema, RegistrationSchema


def make_hasher() -> security.PasswordHasher:
    """argon2id with OWASP's parameters by default (t=2, 19 MiB, p=1); cheaper in tests by env."""
    return security.PasswordHasher(time_cost=env_int("ARGON2_TIME_COST", 2),
                                   memory_cost=env_int("ARGON2_MEMORY_KIB", 19456),
                                   parallelism=env_int("ARGON2_PARALLELISM", 1))


def invalid_credentials() -> DomainError:
    return DomainError("invalid_credentials", "The login or the password is wrong.")


class Profiles:
    def __init__(self, uow, hasher: security.PasswordHasher, clock):
        self.uow = uow
        self.hasher = hasher
        self.clock = clock

    # -- hashing off the eventlet hub: argon2 releases the GIL in a real thread
    def _hash(self, secret: str) -> str:
        return tpool.execute(self.hasher.hash, secret)

    def _verify(self, stored: str | None, secret: str) -> bool:
        if stored is None:
            return tpool.execute(self.hasher.verify_dummy, secret)
        return tpool.execute(self.hasher.verify, stored, secret)

    # -- registration and personal data
    def register(self, data: dict) -> dict:
        data = load(RegistrationSchema(), data)
        login = security.normalise_login(data.pop("login"))
        password = data.pop("password")
        security.check_password_policy(password, login)
        company = domain.company_after(domain.CompanyState("individual", None, None, "none"), data) \
            if data.get("profile_type") == "company" else domain.CompanyState("individual", None, None, "none")
        password_hash = self._hash(password)
        now = self.clock.now()
        account = Account(
            id=str(uuid.uuid4()), login=login, password_hash=password_hash, email=data["email"],
            email_confirmed=False, first_name=data["first_name"], last_name=data["last_name"],
            city=data["city"], address=data["address"], country=data["country"],
            phone=data.get("phone"), phone_verified=False, postal_address=data.get("postal_address"),
            profile_type=company.profile_type, company_name=company.company_name, vat_id=company.vat_id,
            company_verification=company.company_verification, language=data.get("language", "en"),
            frozen=False, created_at=now, updated_at=now)
        try:
            with self.uow.transaction() as session:
                if session.scalar(select(Account.id).where(Account.login == login)):
                    raise _login_taken()
                session.add(account)
                session.flush()
                publish_later(session, "account_registered", {
                    "account_id": account.id, "login": login, "email": account.email,
                    "first_name": account.first_name, "language": account.language,
                    "country": account.country})
        except IntegrityError:
            raise _login_taken() from None
        return domain.profile_view(account)

    def get(self, account_id: str) -> dict:
        with self.uow.transaction() as session:
            return domain.profile_view(_account(session, account_id))

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

    def update(self, account_id: str, changes: dict) -> dict:
        domain.refuse_immutable(changes if isinstance(changes, dict) else {})
        changes = load(ProfilePatchSchema(), changes)
        domain.refuse_emptied_mandatory(changes)
        with self.uow.transaction() as session:
            account = _account(session, account_id, lock=True)
            company = domain.company_after(_company(account), changes) \
                if {"profile_type", "company_name", "vat_id"} & changes.keys() else _company(account)
            for name in ("first_name", "last_name", "city", "address", "postal_address", "language"):
                if name in changes:
                    setattr(account, name, changes[name])
            if "phone" in changes and changes["phone"] != account.phone:
                account.phone = changes["phone"]
                account.phone_verified = False  # P6: a new number must be verified again
            review_needed = company.company_verification == "pending" and (
                account.company_verification != "pending" or company.company_name != account.company_name
                or company.vat_id != account.vat_id)
            account.profile_type = company.profile_type
            account.company_name = company.company_name
            account.vat_id = company.vat_id
            account.company_verification = company.company_verification
            account.updated_at = self.clock.now()
            publish_later(session, "profile_changed", {
                "account_id": account.id, "fields": sorted(changes), **_buyer(account)})
            if review_needed:
                publish_later(session, "company_review_requested", {"account_id": account.id,
                                                                    "company_name": account.company_name,
                                                                    "vat_id": account.vat_id})
            return domain.profile_view(account)

    def change_country(self, account_id: str, country: str, ticket_id: str) -> dict:
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
            account = _account(session, account_id, lock=True)
            previous = account.country
            account.country = country
            account.updated_at = self.clock.now()
            publish_later(session, "country_changed", {"account_id": account.id, "from": previous,
                                                       "to": country, "ticket_id": ticket_id.strip(),
                                                       **_buyer(account)})
            return domain.profile_view(account)

    def review_company(self, account_id: str, approved: bool, operator: str) -> dict:
        if not isinstance(approved, bool) or not isinstance(operator, str) or not operator.strip():
            raise DomainError("validation_error", "approved (bool) and operator are required.",
                              fields={"approved": ["required"], "operator": ["required"]})
        with self.uow.transaction() as session:
            account = _account(session, account_id, lock=True)
            account.company_verification = domain.review_outcome(_company(account), approved)
            account.updated_at = self.clock.now()
            publish_later(session, "company_reviewed", {
                "account_id": account.id, "approved": approved, "operator": operator.strip(),
                "company_verification": account.company_verification, **_buyer(account)})
            return domain.profile_view(account)

    # -- sessions
    def log_in(self, login: str, password: str, otp: str | None, ip: str, user_agent: str) -> dict:
        now = self.clock.now()
        key = login.strip().lower()[:64] if isinstance(login, str) else ""
        with self.uow.transaction() as session:
            ip_failures = session.scalars(select(LoginAttempt.at).where(
                LoginAttempt.ip == ip, LoginAttempt.success.is_(False),
                LoginAttempt.at > now - security.IP_FAILURE_WINDOW)).all()
            wait = security.ip_limited(ip_failures, now)
            if not wait:
                failures, last_failure = _consecutive_failures(session, key)
                wait = security.login_backoff(failures, last_failure, now)
            account = session.scalar(select(Account).where(Account.login == key))
        if wait:
            raise DomainError("rate_limited", "Too many failed logins; wait and try again.",
                              details={"retry_after": wait})
        matches = self._verify(account.password_hash if account else None, password or "")
        refusal = None
        if not matches:
            refusal = invalid_credentials()
        elif account.frozen:
            refusal = DomainError("account_frozen", "This account is frozen; please contact support.")
        with self.uow.transaction() as session:
            session.add(LoginAttempt(account_id=account.id if account else None, login=key, ip=ip,
                                     user_agent=user_agent[:300], at=now, success=refusal is None,
                                     reason=refusal.error_code if refusal else "ok"))
            if refusal is None:
                token, digest = security.new_token()
                expires = now + timedelta(hours=env_float("SESSION_HOURS", 12))
                session.add(Session(id=str(uuid.uuid4()), account_id=account.id, token_hash=digest,
                                    ip=ip, user_agent=user_agent[:300], created_at=now, expires_at=expires))
                session.execute(update(Account).where(Account.id == account.id)
                                .values(last_login_ip=ip, last_login_at=now))
        if refusal is not None:
            raise refusal
        return {"token": token, "expires_at": iso(expires)}

    def authenticate(self, token: str, ip: str) -> dict:
        if not isinstance(token, str) or not token:
            raise _unauthenticated()
        now = self.clock.now()
        with self.uow.transaction() as session:
            row = session.execute(
                select(Session.id, Session.account_id, Session.expires_at, Account.frozen)
                .join(Account, Account.id == Session.account_id)
                .where(Session.token_hash == security.token_hash(token), Session.ended_at.is_(None))).first()
        if row is None or as_utc(row.expires_at) <= now or row.frozen:
            raise _unauthenticated()
        return {"account_id": row.account_id, "session_id": row.id}

    def log_out(self, token: str) -> None:
        with self.uow.transaction() as session:
            session.execute(update(Session).where(Session.token_hash == security.token_hash(token),
                                                  Session.ended_at.is_(None))
                            .values(ended_at=self.clock.now()))

    def end_other_sessions(self, account_id: str, session_id: str) -> int:
        with self.uow.transaction() as session:
            result = session.execute(update(Session).where(
                Session.account_id == account_id, Session.id != session_id,
                Session.ended_at.is_(None)).values(ended_at=self.clock.now()))
            return result.rowcount


def _login_taken() -> DomainError:
    return DomainError("login_taken", "This login is already taken.", fields={"login": ["taken"]})


def _unauthenticated() -> DomainError:
    return DomainError("unauthenticated", "Log in first: the token is missing, wrong or ended.")


def _account(session, account_id, lock: bool = False) -> Account:
    if not isinstance(account_id, str):
        raise NotFound("account")
    query = select(Account).where(Account.id == account_id)
    account = session.scalar(query.with_for_update() if lock else query)
    if account is None:
        raise NotFound("account")
    return account


def _company(account: Account) -> domain.CompanyState:
    return domain.CompanyState(account.profile_type, account.company_name, account.vat_id,
                               account.company_verification)


def _buyer(account: Account) -> dict:
    """The data other services keep a copy of (the ledger's invoice buyer, for one)."""
    return {"first_name": account.first_name, "last_name": account.last_name,
            "email": account.email, "country": account.country, "city": account.city,
            "address": account.address, "postal_address": account.postal_address,
            "profile_type": account.profile_type, "company_name": account.company_name,
            "vat_id": account.vat_id, "company_verification": account.company_verification,
            "language": account.language}


def _consecutive_failures(session, login: str):
    """Failed logins for ``login`` since its last success, and when the last one was."""
    recent = session.execute(select(LoginAttempt.success, LoginAttempt.at)
                             .where(LoginAttempt.login == login)
                             .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc()).limit(30)).all()
    count = 0
    for success, _ in recent:
        if success:
            break
        count += 1
    return count, (recent[0].at if count else None)
