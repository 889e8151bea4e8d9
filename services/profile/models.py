"""The profile service's tables: accounts, their sessions, login history and security settings."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, false, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.tables import add_messaging_tables


class Base(DeclarativeBase):
    pass


add_messaging_tables(Base.metadata)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    login: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(String(254))
    email_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    postal_address: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    profile_type: Mapped[str] = mapped_column(String(10), default="individual")
    company_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    vat_id: Mapped[str | None] = mapped_column(String(20), nullable=True)
    company_verification: Mapped[str] = mapped_column(String(10), default="none")
    # What VIES said of vat_id when the company data were last submitted (services/common/vat_ids.py).
    vat_id_check: Mapped[str] = mapped_column(String(12), default="not_checked", server_default="not_checked")
    vat_id_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    # "Confirm sensitive operations by call" (issue 8): cancel, password and IP list need a proof.
    confirm_operations: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    # security settings (S2, S3, S6); secrets are only ever stored hashed, the TOTP seed excepted
    security_code_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip_rules: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    recovery_code_hashes: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    # notification settings (N1-N3)
    newsletter: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    low_balance_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    low_balance_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    # The alert in days: when the balance forecast's days fall under it (null: no such alert).
    low_balance_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A statement of the past month mailed to the invoices address on the 1st (opt-in).
    monthly_statement: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    invoices_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    support_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    complaints_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    last_login_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the client address it was registered from: registrations are limited per address
    registration_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # support finds customers by e-mail whatever its case (profile.find_by_email); registrations
    # are limited per address
    __table_args__ = (Index("ix_accounts_email_lower", func.lower(email)),
                      Index("ix_accounts_registration_ip_created_at", "registration_ip", "created_at"))


class Session(Base):
    """A login: the token is kept only as its SHA-256 (it has 256 bits of entropy)."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When a request last came with this token, to the minute: written at most once a minute
    # (sessions.SEEN_EVERY), never on every request.
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_sessions_account_created", "account_id", "created_at"),)


class LoginAttempt(Base):
    """Every login attempt, for the customer's history (S4) and the brute-force limits."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    login: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    success: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32), default="")
    # Whether the account had logged in from this address in the 30 days before: failures from
    # such an address count apart from everyone else's (a stranger cannot keep the owner out).
    familiar: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_login_attempts_account_at", "account_id", "at"),
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )


class EmailToken(Base):
    """A single-use e-mail confirmation token (P3), kept only as its SHA-256."""

    __tablename__ = "email_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))  # the address this token confirms
    purpose: Mapped[str] = mapped_column(String(16))  # registration | change
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SecurityEvent(Base):
    """One entry of the customer's security timeline: a change of a setting or a new-IP login."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_security_events_account_id", "account_id", "id"),)


class SecurityCodeCheck(Base):
    """A check of an account's security code by support, for the rate limit (S2)."""

    __tablename__ = "security_code_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    matched: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_security_code_checks_account_at", "account_id", "at"),)


class ViesAnswer(Base):
    """What VIES last said of a VAT id (valid or invalid), reused for ``VIES_CACHE_HOURS``."""

    __tablename__ = "vies_answers"

    vat_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    answer: Mapped[str] = mapped_column(String(12))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PasswordResetRequest(Base):
    """A "forgot password" request (A1), kept for the rate limits whether or not an account matched.

    ``requested_for`` is the SHA-256 of what was typed (``login:anna`` or ``email:anna@...``), so
    the names strangers try are not kept in the clear.
    """

    __tablename__ = "password_reset_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requested_for: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_password_reset_requests_ip_at", "ip", "at"),
        Index("ix_password_reset_requests_for_at", "requested_for", "at"),
    )


class PasswordResetToken(Base):
    """A single-use password reset token mailed to an account (A1), kept only as its SHA-256."""

    __tablename__ = "password_reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_password_reset_tokens_account_created", "account_id", "created_at"),)
