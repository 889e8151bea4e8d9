"""The notifier's use cases, each one unit of work.

An event becomes a :class:`Delivery` row (written once per event and address, before any
sending); the sender drains due rows through SMTP, retrying temporary failures with
backoff. The two never share a transaction: the handler's RPC calls to profile and ledger
happen before its transaction, the relay's conversation between the claim and the record.
"""
from __future__ import annotations

import functools
import hashlib
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import structlog
from nameko.exceptions import MethodNotFound
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.common.clock import as_utc, iso
from services.common.config import env_float, env_int
from services.common.errors import DomainError, NotFound, ServiceUnavailable, ValidationError
from services.common.idempotency import IdempotencyKeys, KeyedRequest
from services.common.locks import try_lock
from services.common.outbox import first_delivery, first_delivery_writing
from services.common.pagination import keyset_page
from services.common.schemas import load
from services.notifier import dispatch
from services.notifier.domain import (Attachment, IncompleteEvent, Message, NotificationSettings, compose,
                                      recipient_for)
from services.notifier.mailer import DeliveryFailure, PermanentFailure, RelaySession
from services.notifier.models import Delivery, Subscriber
from services.notifier.schemas import REQUESTED_MAIL, NewsletterSchema, NotifySchema, SentPageSchema

log = structlog.get_logger(__name__)

MAIL = "notifier.mail"            # processed_messages consumer of the mail handlers
SUBSCRIBERS = "notifier.subscribers"  # ... and of the newsletter copy's handlers
NEWSLETTER_CALLER = "operator"    # whose keys a newsletter's are: the operators' (there is no account)
ACCOUNT_ID_LENGTH = 36            # profile's account ids are UUIDs
# The copy of the addressee, read for every event that mails: built once (session.get builds and keys
# its statement on every call; README Performance).
COPY_OF = select(Subscriber).where(Subscriber.account_id == bindparam("account_id"))


class Notifications:
    """From an event, or an operator's newsletter, to delivery rows; and the list of what was sent."""

    def __init__(self, uow, profile, ledger, documents, clock):
        self.uow = uow
        self.profile = profile
        self.ledger = ledger
        self.documents = documents   # the ledger's document worker: the invoices' PDFs
        self.clock = clock
        self.keys = IdempotencyKeys(uow, clock)

    # -- events of the other services
    def on_event(self, event_type: str, payload: dict) -> str | None:
        """Record the message an event calls for, once per event; returns the delivery id."""
        event_id = _event_id(payload)
        occasion = dispatch.occasion_for(event_type, payload)
        copied = dispatch.from_the_copy(occasion.kind)
        # The inbox is not looked at first: _record's insert is the check, in the transaction that
        # writes the message, and a redelivery (rare) only composes a message it then drops.
        addressee = None
        if copied:
            with self.uow.read() as session:
                addressee = dispatch.addressee_from_copy(
                    session.scalars(COPY_OF, {"account_id": occasion.account_id}).first())
        answer = None
        if addressee is None:
            answer = self._settings(occasion.account_id)
            if answer is None:
                log.warning("event for an account profile does not know; nothing sent",
                            event_type=event_type, account_id=occasion.account_id)
                return self._record(event_id, None)
            addressee = dispatch.settings_from(answer)
        to = recipient_for(occasion.kind, addressee.settings, occasion.named_address)
        kept = (occasion.account_id, answer) if copied and answer is not None else None
        if to is None:
            return self._record(event_id, None, kept)
        data = {**occasion.data, "first_name": addressee.first_name or occasion.data.get("first_name")}
        message = compose(occasion.kind, addressee.language, data, to, idempotency_key=f"{event_id}:{to}")
        message = replace(message, attachments=self._attachments(occasion, addressee.language))
        return self._record(event_id, _delivery(event_id, occasion.account_id, addressee.language,
                                                message, self.clock.now()), kept)

    # -- mail other Introserv systems ask for (the support desk: replies and abuse reports)
    def notify(self, account_id, kind, data, idempotency_key) -> dict:
        """Write a ``support_reply`` or ``abuse_report`` to the customer's address for it (N3b, N3c).

        The same key again answers the first message and writes nothing; ``not_found`` when
        profile does not know the account.
        """
        request = load(NotifySchema, {"account_id": account_id, "kind": kind, "data": data,
                                        "idempotency_key": idempotency_key})
        try:
            fields = load(REQUESTED_MAIL[request["kind"]], request["data"])
        except ValidationError as error:
            raise ValidationError({f"data.{name}": problems for name, problems in error.fields.items()}) from None
        if len(request["account_id"]) > ACCOUNT_ID_LENGTH:
            raise NotFound("account")  # longer than profile's ids: no account, and no key to keep for one
        keyed = KeyedRequest.of(request["account_id"], request["kind"], request["idempotency_key"], {"data": fields},
                                field="idempotency_key")
        return self.keys.once(keyed, lambda: self._notify(keyed, fields))

    def _notify(self, keyed: KeyedRequest, fields: dict) -> dict:
        # The message's id follows from the key, so that a retry whose first attempt wrote it (or
        # one from before keys were kept with their requests) finds it instead of writing another.
        event_id = _keyed_id("request", f"{keyed.operation}:{keyed.caller}:{keyed.key}")
        try:
            self.on_event(keyed.operation, {**fields, "account_id": keyed.caller, "event_id": event_id})
        except IncompleteEvent as error:  # the schemas above ask for every field the message needs
            raise ValidationError({"data": [str(error)]}) from None
        with self.uow.transaction() as session:
            delivery = session.scalar(select(Delivery).where(Delivery.event_id == event_id))
            if delivery is None:
                raise NotFound("account")
            return sent_view(delivery)

    def _record(self, event_id: str, delivery: dict | None,
                kept: tuple[str, dict] | None = None) -> str | None:
        """The event marked processed with its delivery (if any) and, where the copy lacked it,
        profile's answer, at once. With no answer to keep (nearly always) that is one statement on
        PostgreSQL, which commits itself (``first_delivery_writing``): no BEGIN and no COMMIT."""
        if kept is None:
            with self.uow.read() as session:
                first = (first_delivery(session, MAIL, event_id) if delivery is None
                         else first_delivery_writing(session, MAIL, event_id, Delivery.__table__, delivery))
        else:
            with self.uow.transaction() as session:
                first = first_delivery(session, MAIL, event_id)
                if first:
                    _keep_answer(session, *kept)
                    if delivery is not None:
                        session.execute(insert(Delivery.__table__), delivery)
        if not first or delivery is None:
            return None  # nothing to send, or a redelivery raced us and won
        log.info("mail recorded", kind=delivery["kind"], delivery_id=delivery["id"], event_id=event_id)
        return delivery["id"]

    def _settings(self, account_id: str) -> dict | None:
        """Profile's ``notification_settings`` answer; None when profile does not know the account."""
        try:
            return self.profile.notification_settings(account_id)
        except DomainError as exc:
            if exc.error_code == "not_found":
                return None
            raise

    def _addressee(self, account_id: str) -> dispatch.Addressee | None:
        answer = self._settings(account_id)
        return dispatch.settings_from(answer) if answer is not None else None

    def _attachments(self, occasion: dispatch.Occasion, language: str) -> tuple[Attachment, ...]:
        if occasion.kind == "monthly_statement":
            return self._statement_attachment(occasion, language)
        if occasion.kind != "invoice_issued":
            return ()
        data = occasion.data
        try:
            # With the account: an invoice of another customer is not_found, never attached.
            pdf = dispatch.pdf_from_base64(self._invoice_pdf(data["invoice_id"], occasion.account_id))
        except MethodNotFound:
            log.warning("the ledger cannot give invoice PDFs yet; sending the invoice mail without one",
                        invoice_id=data["invoice_id"])
            return ()
        except DomainError as exc:
            if exc.error_code != "not_found":
                raise  # the ledger is away: the event is retried later
            pdf = None
        if pdf is None:
            log.warning("no PDF for the invoice; sending the invoice mail without one", invoice_id=data["invoice_id"])
            return ()
        return (Attachment(dispatch.invoice_filename(data["kind"], data["number"], language), pdf),)

    def _invoice_pdf(self, invoice_id: str, account_id: str) -> dict:
        """The stored PDF from the document worker that keeps it; from the ledger's RPC process while
        the worker is away or of a version without ``get_invoice_pdf``."""
        try:
            return self.documents.get_invoice_pdf(invoice_id, account_id)
        except (MethodNotFound, ServiceUnavailable):
            return self.ledger.get_invoice_pdf(invoice_id, account_id)

    def _statement_attachment(self, occasion: dispatch.Occasion, language: str) -> tuple[Attachment, ...]:
        """The month's statement as the ledger's document worker draws it; the ledger away retries the event."""
        data = occasion.data
        drawn = self.ledger.statement_pdf(occasion.account_id, data["from"], data["to"])
        pdf = dispatch.pdf_from_base64(drawn)
        if pdf is None:
            log.warning("no PDF for the monthly statement; sending the mail without one", account_id=occasion.account_id)
            return ()
        return (Attachment(dispatch.statement_filename(data["from"], data["to"], language), pdf),)

    # -- the copy of contact and settings, from profile's events (the newsletter and money mail read it)
    def remember_contact(self, payload: dict, email_field: str = "email", registration: bool = False) -> None:
        """A registration, a profile edit or a confirmed new address: the copy's contact.

        A registration also says the settings: the defaults (no other address, no newsletter),
        unless the copy already holds newer ones.
        """
        event_id, at = _event_id(payload), _occurred_at(payload)
        with self.uow.transaction() as session:
            if not first_delivery(session, SUBSCRIBERS, event_id):
                return
            subscriber = _subscriber(session, payload["account_id"])
            if registration and subscriber.consent_at is None and not subscriber.answered:
                subscriber.consent_at = at   # what a new row holds: the defaults
            if subscriber.contact_at is not None and as_utc(subscriber.contact_at) > at:
                return
            _copy_contact(subscriber, payload, email_field)
            subscriber.contact_at = at

    def remember_consent(self, payload: dict) -> None:
        """Changed notification settings: the newsletter consent (N1) and the other addresses (N3)."""
        event_id, at = _event_id(payload), _occurred_at(payload)
        with self.uow.transaction() as session:
            if not first_delivery(session, SUBSCRIBERS, event_id):
                return
            subscriber = _subscriber(session, payload["account_id"])
            if subscriber.consent_at is not None and as_utc(subscriber.consent_at) > at:
                return
            subscriber.newsletter = payload.get("newsletter") is True
            if isinstance(payload.get("emails"), dict):
                _copy_emails(subscriber, payload["emails"])
            subscriber.consent_at = at

    # -- for operators and support staff
    def send_newsletter(self, subject, text, idempotency_key=None) -> dict:
        """Write the newsletter to every customer who consented; the sender delivers it."""
        data = load(NewsletterSchema, {"subject": subject, "text": text, "idempotency_key": idempotency_key})
        key = data.get("idempotency_key")
        keyed = (KeyedRequest.of(NEWSLETTER_CALLER, "send_newsletter", key,
                                 {"subject": data["subject"], "text": data["text"]}, field="idempotency_key")
                 if key is not None else None)
        newsletter_id = _keyed_id("newsletter", key) if key is not None else f"newsletter:{uuid.uuid4()}"
        with self.uow.transaction() as session:
            if keyed is not None and (answer := self.keys.claim(session, keyed)) is not None:
                return answer
            recipients = self._write_newsletter(session, newsletter_id, data)
            answer = {"newsletter_id": newsletter_id, "recipients": recipients}
            if keyed is not None:
                self.keys.remember(session, keyed, answer)
        log.info("newsletter recorded", newsletter_id=newsletter_id, recipients=answer["recipients"])
        return answer

    def _write_newsletter(self, session, newsletter_id: str, data: dict) -> int:
        """A delivery for every subscriber who consented; how many. Recorded like an event, once per id."""
        if not first_delivery(session, MAIL, newsletter_id):
            # Written by the same key before the key's request was kept with it: count what it wrote.
            return session.scalar(select(func.count()).where(Delivery.event_id == newsletter_id))
        now = self.clock.now()
        written = []
        for subscriber in session.scalars(select(Subscriber).where(
                Subscriber.newsletter.is_(True), Subscriber.email.is_not(None))):
            settings = NotificationSettings(main_email=subscriber.email, newsletter=subscriber.newsletter)
            to = recipient_for("newsletter", settings)
            if to is None:
                continue
            message = compose("newsletter", subscriber.language,
                              {"first_name": subscriber.first_name, "subject": data["subject"],
                               "text": data["text"]}, to, idempotency_key=f"{newsletter_id}:{to}")
            written.append(_delivery(newsletter_id, subscriber.account_id, subscriber.language, message, now))
        if written:
            session.execute(insert(Delivery.__table__), written)
        return len(written)

    def list_sent(self, account_id, limit=50, cursor=None) -> dict:
        """What was sent to the customer, newest first: when, which kind, to which address, and its state."""
        account_id = load(SentPageSchema, {"account_id": account_id})["account_id"]
        query = select(Delivery).where(Delivery.account_id == account_id)
        with self.uow.transaction() as session:
            # Events are handled in parallel, so the order of writing is not the order of time: page by both.
            page = keyset_page(session, query, [Delivery.created_at, Delivery.seq], limit, cursor)
            known = bool(page.rows) or cursor is not None or session.get(Subscriber, account_id) is not None
        if not known and self._addressee(account_id) is None:
            raise NotFound("account")  # profile has never heard of it either
        return page.answer(sent_view)


class Sender:
    """Drains due deliveries through the mail relay, a round at a time; one claim at a time across replicas."""

    def __init__(self, uow, mailer, clock, batch: int | None = None, lease: timedelta | None = None,
                 budget: float | None = None):
        self.uow = uow
        self.mailer = mailer
        self.clock = clock
        self.batch = batch or env_int("NOTIFIER_SEND_BATCH", 50)
        # Longer than a batch of hung relays (each waits SMTP_TIMEOUT), so a claim outlives its sender.
        self.lease = lease or timedelta(seconds=env_float("NOTIFIER_LEASE_SECONDS", 900))
        # How long one call goes on with full rounds: a stopping service waits for it to finish.
        self.budget = budget if budget is not None else env_float("NOTIFIER_SEND_SECONDS", 5.0)

    def send_due(self) -> int:
        """Try due messages once each, round after round while the rounds come back full and the relay
        takes them (a burst of orders, a month end), for at most ``budget`` seconds; returns how many
        the relay took. After a round with a temporary failure (the relay away or deferring), or one
        the relay took none of, the rest wait for the next tick; a message refused for good (its
        address) among others taken does not hold them back.

        One round a tick held the relay to ``batch`` messages every ``NOTIFIER_TICK_SECONDS``
        (25 a second by default), so a burst's mails went out minutes behind it.
        """
        sent, deadline = 0, time.monotonic() + self.budget
        while True:
            due, taken, unwell = self._claim(), 0, False
            if due:
                with self.mailer.session() as relay:   # the round's messages on one connection (mailer.py)
                    for delivery in due:
                        failure = self._attempt(relay, delivery)
                        taken += failure is None
                        unwell = unwell or (failure is not None and not isinstance(failure, PermanentFailure))
            sent += taken
            if len(due) < self.batch or not taken or unwell or time.monotonic() >= deadline:
                return sent

    def _claim(self) -> list[Delivery]:
        now = self.clock.now()
        with self.uow.transaction() as session:
            if not try_lock(session, "notifier.deliveries"):
                return []
            due = list(session.scalars(
                select(Delivery).where(Delivery.state == "pending", Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at, Delivery.seq).limit(self.batch)))
            for delivery in due:
                delivery.next_attempt_at = now + self.lease
        return due

    def _attempt(self, relay: RelaySession, delivery: Delivery) -> DeliveryFailure | None:
        """Hand one message to the relay and record the outcome; why it was not taken, or None."""
        failure = None
        try:
            relay.send(_message(delivery))
        except DeliveryFailure as exc:
            failure = exc
        except Exception as exc:
            # A message we cannot even build must not stay claimed for ever: it spends its
            # attempts like a temporary failure and ends dead, visible to support staff.
            log.exception("could not hand a message to the relay", delivery_id=delivery.id)
            failure = DeliveryFailure(f"could not send: {exc!r}")
        outcome = dispatch.after_attempt(delivery.attempts, self.clock.now(), sent=failure is None,
                                         permanent=isinstance(failure, PermanentFailure))
        result = {"state": outcome.state, "attempts": outcome.attempts, "next_attempt_at": outcome.next_attempt_at}
        if failure is None:
            result["sent_at"] = self.clock.now()
        else:
            result["last_error"] = str(failure)[:500]
        with self.uow.read() as session:   # one statement, which commits itself: no BEGIN, no COMMIT
            session.execute(_outcome(tuple(result)), {"delivery_seq": delivery.seq, **result})
        if failure is not None:
            log.warning("mail not delivered", delivery_id=delivery.id, kind=delivery.kind, state=outcome.state,
                        attempts=outcome.attempts, error=str(failure)[:200])
        return failure


@functools.lru_cache(maxsize=4)
def _outcome(columns: tuple[str, ...]):
    """The UPDATE that writes an attempt's outcome into these columns, built once per outcome (sent, or
    not): built and keyed for each mail, it cost 0.63 to 0.74 ms of CPU against 0.25 to 0.27."""
    deliveries = Delivery.__table__
    return update(deliveries).where(deliveries.c.seq == bindparam("delivery_seq")) \
        .values({column: bindparam(column) for column in columns})


def mail_by_state(uow) -> dict[str, int]:
    """How many messages wait for the relay and how many failed or died (one grouped count, ``/metrics``)."""
    with uow.transaction() as session:
        rows = session.execute(select(Delivery.state, func.count())
                               .where(Delivery.state.in_(("pending", "failed", "dead"))).group_by(Delivery.state))
        return {state: count for state, count in rows}


def sent_view(delivery: Delivery) -> dict:
    """A delivery as support staff and the customer see it."""
    return {"id": delivery.id, "at": iso(as_utc(delivery.created_at)), "kind": delivery.kind,
            "to": delivery.recipient, "subject": delivery.subject, "state": delivery.state,
            "sent_at": iso(as_utc(delivery.sent_at)), "attempts": delivery.attempts,
            "error": delivery.last_error}


def _delivery(event_id: str, account_id: str | None, language: str, message: Message, now: datetime) -> dict:
    """The ``deliveries`` row of a message, due now."""
    attachment = message.attachments[0] if message.attachments else None
    return dict(id=str(uuid.uuid4()), event_id=event_id, account_id=account_id, kind=message.kind,
                recipient=message.to, language=language, subject=message.subject, text=message.text,
                html=message.html, attachment_name=attachment.filename if attachment else None,
                attachment=attachment.content if attachment else None, state="pending", attempts=0,
                next_attempt_at=now, created_at=now)


def _message(delivery: Delivery) -> Message:
    attachments = ((Attachment(delivery.attachment_name, delivery.attachment),)
                   if delivery.attachment is not None else ())
    return Message(delivery.kind, delivery.recipient, delivery.subject, delivery.text, delivery.html,
                   attachments, idempotency_key=f"{delivery.event_id}:{delivery.recipient}")


def _subscriber(session, account_id: str) -> Subscriber:
    """The customer's row under its lock: two events about one customer apply one after the other.

    Without the lock two consumers read the same ``*_at``, and the later commit wins even when
    it carries the older event (a withdrawn consent could come back).
    """
    locked = select(Subscriber).where(Subscriber.account_id == account_id).with_for_update() \
        .execution_options(populate_existing=True)
    subscriber = session.scalar(locked)
    if subscriber is None:
        try:
            with session.begin_nested():
                session.add(Subscriber(account_id=account_id, language="en", newsletter=False))
        except IntegrityError:
            pass  # a concurrent event about the same customer created it
        subscriber = session.scalar(locked)
    return subscriber


def _copy_contact(subscriber: Subscriber, source: dict, email_field: str = "email") -> None:
    """The main address, first name and language of an event or of profile's answer; what it lacks stays."""
    subscriber.email = source.get(email_field) or subscriber.email
    subscriber.first_name = source.get("first_name") or subscriber.first_name
    subscriber.language = dispatch.language_of(source.get("language") or subscriber.language)


def _copy_emails(subscriber: Subscriber, emails: dict) -> None:
    subscriber.invoices_email = emails.get("invoices") or None
    subscriber.support_email = emails.get("support") or None
    subscriber.complaints_email = emails.get("complaints") or None


def _keep_answer(session, account_id: str, answer: dict) -> None:
    """Profile's answer fills what no event has said yet; any later event replaces it (``answered``)."""
    subscriber = _subscriber(session, account_id)
    if subscriber.contact_at is None:
        _copy_contact(subscriber, answer)
    if subscriber.consent_at is None:
        subscriber.newsletter = answer.get("newsletter") is True
        _copy_emails(subscriber, answer.get("emails") or {})
    subscriber.answered = True


def _keyed_id(prefix: str, key: str) -> str:
    """The id of what a caller's idempotency key asked for: the same key, the same id (64 characters at most)."""
    return f"{prefix}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _event_id(payload: dict) -> str:
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 64:
        raise ValueError("an event without a usable event_id cannot be handled exactly once")
    return event_id


def _occurred_at(payload: dict) -> datetime:
    return as_utc(datetime.fromisoformat(payload["occurred_at"]))

