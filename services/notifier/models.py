"""The notifier service's tables: every message it owes a customer, and its copy of where to send it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.tables import Serial, add_idempotency_table, add_messaging_tables


class Base(DeclarativeBase):
    pass


add_messaging_tables(Base.metadata)
add_idempotency_table(Base.metadata)  # the first answer to notify and send_newsletter, per key


class Delivery(Base):
    """One message to one address, written before it is sent (the (event, recipient) record).

    ``state`` is ``pending`` until the relay takes it (``sent``), refuses it for good
    (``failed``, a 5xx) or the last retry is spent (``dead``). A pending row is due at
    ``next_attempt_at``; the sender claims it by pushing that time past a lease.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", name="uq_deliveries_event_recipient"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_account", "account_id", "seq"),
    )

    # The order of writing: pages newest first without ties.
    seq: Mapped[int] = mapped_column(Serial, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    event_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    attachment_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attachment: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Subscriber(Base):
    """The notifier's copy of a customer's addresses, language and newsletter consent, from profile's events.

    The newsletter reads it (one RPC per customer would not do for a mailing), and so does every
    mail about orders and money (the invoices address), which would otherwise ask profile once
    per mail. Security mail still asks profile. ``*_at`` keep the time of the event last applied,
    so an older event arriving late changes nothing; ``answered``: profile's answer filled what no
    event had (an account older than the copy), and any event replaces it.
    """

    __tablename__ = "subscribers"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    newsletter: Mapped[bool] = mapped_column(Boolean, default=False)
    invoices_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    support_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    complaints_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    answered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    contact_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
