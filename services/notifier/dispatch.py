"""What the notifier does with an event and with a delivery attempt: pure rules, no I/O.

:func:`occasion_for` reads an event of another service (docs/CONTRACTS.md) as the message
the customer must get; :func:`settings_from` reads profile's ``notification_settings``
answer, :func:`addressee_from_copy` the notifier's own copy of it; :func:`after_attempt`
decides what a delivery becomes after the relay answered.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.notifier.domain import LANGUAGES, IncompleteEvent, NotificationSettings, Route, kind_named
from services.notifier.mailer import MAX_ATTEMPTS, retry_delay

@dataclass(frozen=True)
class Occasion:
    """One message an event calls for: its kind, whose it is, its data, and a named address."""

    kind: str
    account_id: str
    data: dict[str, Any] = field(default_factory=dict)
    named_address: str | None = None


def occasion_for(event_type: str, payload: dict[str, Any]) -> Occasion:
    """The message an event calls for; :class:`IncompleteEvent` when the event cannot say.

    ``email_confirmation_requested`` is a confirmation of the registration address or of a
    new address (``purpose``), sent to the address being confirmed; ``email_changed`` is
    told to the OLD address (P3); ``password_reset_requested`` is the reset link, sent to the
    main address the event names (A1); ``invoice_pdf_ready`` is the invoice mail
    (``invoice_issued``), sent once the ledger has the invoice's PDF to attach. Every other event
    is the kind of the same name.
    """
    account_id = payload.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise IncompleteEvent(f"{event_type} names no account_id")
    if event_type == "email_confirmation_requested":
        to = _address(payload, "to", event_type)
        if payload.get("purpose") == "change":
            data = {**payload, "new_email": payload.get("new_email") or to}
            return Occasion("email_change_requested", account_id, data, to)
        return Occasion("email_confirmation", account_id, dict(payload), to)
    if event_type == "password_reset_requested":
        return Occasion("password_reset", account_id, dict(payload), _address(payload, "to", event_type))
    if event_type == "invoice_pdf_ready":
        return Occasion("invoice_issued", account_id, dict(payload))
    kind_named(event_type)
    if event_type == "email_changed":
        return Occasion(event_type, account_id, dict(payload), _address(payload, "old_email", event_type))
    return Occasion(event_type, account_id, dict(payload))


def _address(payload: dict, name: str, event_type: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or "@" not in value:
        raise IncompleteEvent(f"{event_type} needs an address in {name}")
    return value


@dataclass(frozen=True)
class Addressee:
    """Who the customer is to the notifier: addresses, consent, language, first name."""

    settings: NotificationSettings
    language: str
    first_name: str | None


def settings_from(answer: dict[str, Any]) -> Addressee:
    """Profile's ``notification_settings(account_id)`` answer; empty addresses mean the main e-mail."""
    emails = answer.get("emails") or {}
    settings = NotificationSettings(
        main_email=answer["email"],
        invoices=emails.get("invoices") or None,
        support=emails.get("support") or None,
        complaints=emails.get("complaints") or None,
        newsletter=bool(answer.get("newsletter")),
    )
    return Addressee(settings, language_of(answer.get("language")), answer.get("first_name"))


def from_the_copy(kind: str) -> bool:
    """Whether a message of this kind is addressed from the notifier's copy: mail about orders and
    money (the invoices address). Security mail asks profile for the address as it is now."""
    return kind_named(kind).route is Route.INVOICES


def addressee_from_copy(copy: Any) -> Addressee | None:
    """The customer as the copy (a ``Subscriber`` row) knows them; None while it does not know enough.

    Enough is the main address with both halves of what a mail needs: the contact (from
    ``account_registered``, ``profile_changed``, ``email_changed``) and the notification settings
    (from ``notification_settings_changed``, or the registration's, which are the defaults), or
    profile's whole answer (``answered``).
    """
    if copy is None or not copy.email:
        return None
    if not (copy.answered or (copy.contact_at is not None and copy.consent_at is not None)):
        return None
    settings = NotificationSettings(main_email=copy.email, invoices=copy.invoices_email or None,
                                    support=copy.support_email or None, complaints=copy.complaints_email or None,
                                    newsletter=bool(copy.newsletter))
    return Addressee(settings, language_of(copy.language), copy.first_name)


def language_of(value: Any) -> str:
    """The customer's language, English when the profile names none we write in."""
    return value if value in LANGUAGES else "en"


def invoice_filename(kind: str, number: str, language: str) -> str:
    """``faktura-2026-000123.pdf``, ``credit-note-2026-000124.pdf``: the number without its slash."""
    words = {("invoice", "pl"): "faktura", ("credit_note", "pl"): "korekta",
             ("credit_note", "en"): "credit-note"}
    stem = "".join(c if c.isalnum() or c == "-" else "-" for c in str(number))
    return f"{words.get((kind, language), 'invoice')}-{stem}.pdf"


def statement_filename(start: str, end: str, language: str) -> str:
    """``wyciag-2026-11-01-2026-11-30.pdf``, ``statement-...``."""
    return f"{'wyciag' if language == 'pl' else 'statement'}-{start}-{end}.pdf"


def pdf_from_base64(value: Any) -> bytes | None:
    """The PDF in the ledger's answer (``{"content": base64, ...}``, or the bare base64); None if it is not one."""
    if isinstance(value, dict):
        value = value.get("content") or value.get("pdf")
    if not isinstance(value, str):
        return None
    try:
        content = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return content if content.startswith(b"%PDF") else None


@dataclass(frozen=True)
class AfterAttempt:
    """What a delivery becomes: its state, its attempts so far and when to try again."""

    state: str
    attempts: int
    next_attempt_at: datetime | None = None


def after_attempt(attempts_before: int, now: datetime, *, sent: bool = False,
                  permanent: bool = False) -> AfterAttempt:
    """The delivery after one more attempt: sent, failed for good (5xx), retried later, or dead.

    A temporary failure waits ``retry_delay(attempt)`` (30 s doubling, at most an hour);
    the ``MAX_ATTEMPTS``-th temporary failure makes the message dead (visible, not retried).
    """
    attempts = attempts_before + 1
    if sent:
        return AfterAttempt("sent", attempts)
    if permanent:
        return AfterAttempt("failed", attempts)
    if attempts >= MAX_ATTEMPTS:
        return AfterAttempt("dead", attempts)
    return AfterAttempt("pending", attempts, now + timedelta(seconds=retry_delay(attempts)))
