"""The verification service's tables."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.tables import add_messaging_tables


class Base(DeclarativeBase):
    pass


add_messaging_tables(Base.metadata)

# Where a verification stands. A start is booked as ``calling`` before any gateway is
# asked (so concurrent starts count against the limits) and becomes ``sent`` when a
# gateway placed the call, or ``failed`` when none did.
CALLING = "calling"
SENT = "sent"
FAILED = "failed"
VERIFIED = "verified"


class Verification(Base):
    """One verification attempt: whom we called, how, through which gateway, and the sealed code."""

    __tablename__ = "verifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    phone: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    operation: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    gateway: Mapped[str | None] = mapped_column(String(16), nullable=True)
    provider_call_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # HMAC-SHA256 of the code under a per-attempt salt; the code itself is never stored.
    code_salt: Mapped[str | None] = mapped_column(String(32), nullable=True)
    code_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts_left: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A verification of purpose ``operation`` is spent once, as the proof for one operation.
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_for: Mapped[str | None] = mapped_column(String(40), nullable=True)
    used_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        Index("ix_verifications_phone_created_at", "phone", "created_at"),
        Index("ix_verifications_account_created_at", "account_id", "created_at"),
    )
