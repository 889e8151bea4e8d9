"""The ledger service's tables: balances, the journal, and invoice documents.

The journal (``transactions`` and their ``postings``), the invoices and their PDFs are
append-only; migrations 0002 and 0003 install triggers that refuse UPDATE and DELETE on them. Only the running
balance of ``balances`` (and its alert state) changes, in the same transaction as the
entries that change it, and ``audit`` checks it against the journal.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, String,
                        UniqueConstraint)
from sqlalchemy.sql.expression import false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.profile_copy import add_profile_copy_table
from services.common.tables import Serial, add_messaging_tables


class Base(DeclarativeBase):
    pass


add_messaging_tables(Base.metadata)
add_profile_copy_table(Base.metadata)  # the customer as billed, from profile's events


class Balance(Base):
    """One customer's balance: its currency, limit, running total and alert threshold.

    The row exists from the customer's first movement (or registration); its row lock is
    what serialises two movements of the same customer on PostgreSQL.
    """

    __tablename__ = "balances"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_limit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Who set the limit: the operator's name as given, and the broker login that asked.
    credit_limit_operator: Mapped[str | None] = mapped_column(String(100), nullable=True)
    credit_limit_caller: Mapped[str | None] = mapped_column(String(64), nullable=True)
    low_balance_threshold_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # True from the movement that took the balance below the threshold until it is back
    # at or above it: balance_low is sent once per crossing.
    below_threshold: Mapped[bool] = mapped_column(Boolean, default=False)
    # When profile's settings behind the threshold were made: an older event changes nothing.
    threshold_as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The alert in days (services/ledger/forecast.py): the customer's setting, and whether the
    # forecast is under it (balance_running_out is sent once per crossing).
    low_balance_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    below_days: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The monthly statement (services/ledger/statements.py): asked for, and the first day of the last
    # month whose statement went out (so each month's goes once).
    monthly_statement: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    statement_sent_for: Mapped[date | None] = mapped_column(Date, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # The few accounts with an alert in days, for orders' daily forecast (ledger.alerted_accounts).
        Index("ix_balances_alert_in_days", "account_id", postgresql_where=text("low_balance_days IS NOT NULL"),
              sqlite_where=text("low_balance_days IS NOT NULL")),
    )


class Transaction(Base):
    """One movement of money (payment, charge, refund, adjustment); immutable."""

    __tablename__ = "transactions"

    seq: Mapped[int] = mapped_column(Serial, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    account_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # signed: positive adds to the balance
    currency: Mapped[str] = mapped_column(String(3))
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    idempotency_key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    refunds_transaction_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    method: Mapped[str | None] = mapped_column(String(40), nullable=True)
    operator: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The broker login of an operator's adjustment (the AMQP user_id), beside the name it gave.
    caller: Mapped[str | None] = mapped_column(String(64), nullable=True)
    invoice_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_transactions_account_key"),
        Index("ix_transactions_account_seq", "account_id", "seq"),
        Index("ix_transactions_refunds", "refunds_transaction_id"),
    )


class Posting(Base):
    """One leg of a transaction on one ledger account; a transaction's legs sum to zero.

    ``balance_after_minor`` is kept on customer legs only: the house accounts (payments
    received, revenue, refunds, adjustments) are touched by every customer, and a running
    total there would make every movement in the system wait for one row.
    """

    __tablename__ = "postings"

    id: Mapped[int] = mapped_column(Serial, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"))
    ledger_account: Mapped[str] = mapped_column(String(80))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    balance_after_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_postings_transaction", "transaction_id"),
        Index("ix_postings_account", "ledger_account", "id"),
    )


class InvoiceCounter(Base):
    """The last number given in a year: locked while a document takes the next one."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(Base):
    """An issued invoice or credit note: the document as issued, never changed."""

    __tablename__ = "invoices"

    seq: Mapped[int] = mapped_column(Serial, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    account_id: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    number_seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    transaction_id: Mapped[str] = mapped_column(String(36))
    corrects: Mapped[str | None] = mapped_column(String(36), nullable=True)
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str] = mapped_column(String(2), default="en")
    document: Mapped[dict] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("year", "number_seq", name="uq_invoices_year_seq"),
        Index("ix_invoices_account_seq", "account_id", "seq"),
        Index("ix_invoices_corrects", "corrects"),
    )


class InvoicePdf(Base):
    """An invoice's or credit note's PDF, rendered once by the document worker; never changed.

    ``sha256`` is the content's, so that a copy (a mail's attachment, an archive) can be checked
    against the books.
    """

    __tablename__ = "invoice_pdfs"

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    rendered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PdfBackfill(Base):
    """Which invoices were issued before the ledger kept PDFs, and how far the backfill has come.

    One row, written by migration 0003: ``through_seq`` is the last invoice issued before (their
    mail went out then, with a PDF rendered for it, so theirs are stored without a word), and
    every invoice up to ``rendered_seq`` has its PDF.
    """

    __tablename__ = "pdf_backfill"

    through_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    rendered_seq: Mapped[int] = mapped_column(BigInteger)
