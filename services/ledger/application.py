"""The ledger's use cases: each money movement is one unit of work.

A movement locks the customer's balance row (SELECT ... FOR UPDATE on PostgreSQL), checks
its idempotency key again under that lock, writes the transaction, its postings, the new
running balance and its events in the outbox, and last the invoice or credit note with the
next number of the year (the one lock every charge shares, held only from that statement to
the commit: ``numbering.py``), and commits them together. Whatever it needs from profile (the
buyer for an invoice, the country for a payment method) it reads from its copy of the customer
(``services/common/profile_copy.py``, kept from profile's events) in that transaction; only
when it has no copy does it ask profile ``get``, before the transaction opens: no transaction
is ever held across an RPC call.
"""
from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.exc import IntegrityError

from services.common.clock import as_utc
from services.common.config import env
from services.common.errors import DomainError, NotFound, ValidationError
from services.common.idempotency import KeyedRequest
from services.common.locks import is_postgres, try_lock
from services.common.money import Money
from services.common.outbox import first_delivery, publish_later
from services.common.pagination import keyset_page
from services.common import profile_copy
from services.common.profile_copy import ProfileCopies, keep_answer, read
from services.common.schemas import load
from services.common.wording import CUSTOMER_TEXTS as WORDING
from services.ledger import domain, invoicing, payment_methods, tax
from services.ledger.invoice_view import invoice_view, invoice_views
from services.ledger.models import Balance, Invoice, Posting, Transaction
from services.ledger.writes import Movement, Writes
from services.ledger.schemas import (AdjustmentSchema, ChargeSchema, CreditLimitSchema, PaymentSchema,
                                     PriceSchema, RefundSchema)

# The most charges one ``charge_orders`` call takes: its transaction holds their balances' locks.
MAX_CHARGES_AT_ONCE = 200

# Every payment's and charge's first two statements, built once: building and keying a statement
# for each call cost as much as a tenth of a payment's CPU (README Performance).
LOCKED_BALANCE = select(Balance).where(Balance.account_id == bindparam("account_id")).with_for_update() \
    .execution_options(populate_existing=True)
# The balance as the panel reads it: two columns, no entity (session.get builds and keys its statement
# on every call: 0.43 ms of CPU a read in process against 0.27 for this one; README Performance).
BALANCE = select(Balance.balance_minor, Balance.currency).where(Balance.account_id == bindparam("account_id"))
# The panel's list of movements (its first page a statement built once: pagination.keyset_page).
TRANSACTIONS_OF = select(Transaction).where(Transaction.account_id == bindparam("account_id"))
KEYED_TRANSACTION = select(Transaction).where(Transaction.account_id == bindparam("account_id"),
                                              Transaction.idempotency_key == bindparam("key"))


def default_currency() -> str:
    """Every new account's currency: ``LEDGER_CURRENCY``, EUR unless configured."""
    return env("LEDGER_CURRENCY", "EUR").upper()


# How many of the customers' postings the audit reads from the database at a time.
AUDIT_ROWS_AT_ONCE = 5000


def _one_snapshot(session) -> None:
    """Let every query of this transaction see the same committed state (PostgreSQL).

    The audit reads the journal, then the balances: under READ COMMITTED a payment committed
    between the two reads would look like a discrepancy, and the periodic audit runs while
    money moves. SQLite's one writer makes its transactions serializable already.
    """
    if is_postgres(session):
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


class Ledger:
    def __init__(self, uow, profiles, clock, seller: tax.Seller, currency: str | None = None):
        self.uow = uow
        self.profiles = profiles  # anything with get(account_id) -> the Profile shape (docs/CONTRACTS.md)
        self.copies = ProfileCopies(uow, profiles)
        self.clock = clock
        self.seller = seller
        self.currency = currency or default_currency()

    # -- money in and out ---------------------------------------------------------------

    def credit_payment(self, account_id, amount, idempotency_key, reference, method=None, caller=None) -> dict:
        """The payment system (or support staff, matching a transfer by hand: ``caller`` keeps which)
        reports a payment; a method must be offered to the customer.

        One transaction: the balance locked, the key checked under its lock, the method checked
        against the copy of the customer, the movement written. Profile is asked (before that
        transaction) only for an account the ledger has no balance or no copy of.
        """
        data = _load(PaymentSchema, account_id=account_id, amount=amount, idempotency_key=idempotency_key,
                     reference=reference, method=method)
        request = _Request("credit_payment", data)
        asked = None
        while True:
            with self.uow.transaction() as session:
                balance = (self._lock_balance(session, data["account_id"]) if asked is not None
                           else self._locked_balance(session, data["account_id"]))
                if (replay := self._replay(request, session)) is not None:
                    return replay
                # The customer's copy: for the method's rules, and for a description in their language.
                needs_profile = data["method"] is not None or not data["description"]
                profile = read(session, data["account_id"]) if needs_profile else None
                if balance is not None and (not needs_profile or profile is not None or asked is not None):
                    if asked is not None:
                        keep_answer(session, data["account_id"], asked)
                    profile = profile or asked
                    if data["method"] is not None:
                        payment_methods.check_offered(
                            data["method"], profile["country"], profile["profile_type"],
                            profile["company_verification"], bool(profile.get("postal_address")))
                    tx = self._move(session, balance, domain.PAYMENT, request, method=data["method"],
                                    caller=caller, description=data["description"] or WORDING.say(
                                        "Payment received", (profile or {}).get("language") or "en"),
                                    announce=lambda tx: ("payment_received", {
                                        "account_id": tx.account_id, "transaction_id": tx.id,
                                        "amount": _money(tx.amount_minor, tx), "balance": _money(tx.balance_after_minor, tx),
                                        "reference": tx.reference, "method": tx.method}))
                    return domain.transaction_view(tx)
            asked = self.profiles.get(data["account_id"])  # not_found for an account nobody has

    def charge_order(self, account_id, amount, idempotency_key, reference, description, lines=None) -> dict:
        """Price a list amount for this customer and take it, with its invoice, in one transaction.

        Orders' one call per paid order: ``amount`` and the lines' ``gross`` are list prices
        (what an individual pays); the answer is the charge transaction, whose ``amount`` is
        what this customer paid. The key is bound to the list prices, so a replay of the same
        call (the lifecycle timer finishing an interrupted order) answers the first charge.
        """
        data = _load(ChargeSchema, account_id=account_id, amount=amount, idempotency_key=idempotency_key,
                     reference=reference, description=description, lines=lines)
        _invoice_lines(data)  # the list prices' lines must add up, as a charge's must
        request = _Request("charge_order", data)

        def charge(session, profile):
            balance = self._lock_balance(session, data["account_id"])
            if (replay := self._replay(request, session)) is not None:
                return replay
            return domain.transaction_view(self._priced_charge(session, balance, request, profile, Writes(session)))
        return self._as_customer(data["account_id"], charge)

    def charge_orders(self, charges) -> list[dict]:
        """Many orders' ``charge_order`` in one transaction: the lifecycle clock's renewals at month end.

        ``charges``: up to ``MAX_CHARGES_AT_ONCE`` dicts of ``charge_order``'s arguments, taken in
        the list's order (an account's in the order its orders renew). Each is answered in its
        place: ``{"transaction": ...}``, the answer ``charge_order`` gives (a key seen before
        answers its first charge), or ``{"error": {"code", "message"}}`` for one refused (a short
        balance, an account nobody has, a key used with other arguments, invalid arguments). A
        refusal is decided before anything of its charge is written; any other failure fails the
        whole call, and nothing of it is written. Keys and fingerprints are ``charge_order``'s, so
        one charge of a call that did not answer is finished later by ``charge_order`` alone. The
        invoices are numbered together, by the last statements before the commit.
        """
        if not isinstance(charges, list) or len(charges) > MAX_CHARGES_AT_ONCE:
            raise ValidationError({"charges": [f"must be a list of at most {MAX_CHARGES_AT_ONCE} charges"]})
        schema, requests = ChargeSchema, []
        for arguments in charges:
            try:
                if not isinstance(arguments, dict):
                    raise ValidationError({"charge": ["must be an object of charge_order's arguments"]})
                data = load(schema, arguments)
                _invoice_lines(data)
                requests.append(_Request("charge_order", data))
            except DomainError as refused:
                requests.append(refused)
        accounts = sorted({r.account_id for r in requests if isinstance(r, _Request)})
        return self._as_customers(accounts, lambda session, copies: self._charge_all(session, requests, copies, accounts))

    def _charge_all(self, session, requests: list, copies: dict, accounts: list[str]) -> list[dict]:
        """``charge_orders`` in its transaction: the balances locked and the keys looked up in one statement
        each, every charge decided in memory, then all written together (writes.py)."""
        known = [a for a in accounts if copies.get(a) is not None]
        balances = self._lock_balances(session, known)
        firsts = {(tx.account_id, tx.idempotency_key): tx for tx in session.scalars(select(Transaction).where(
            Transaction.account_id.in_(known),
            Transaction.idempotency_key.in_(sorted({r.key for r in requests if isinstance(r, _Request)}))))}
        writes, answers = Writes(session, gather=True), []
        for request in requests:
            try:
                if isinstance(request, DomainError):
                    raise request
                if copies.get(request.account_id) is None:
                    raise NotFound("account")
                first = firsts.get((request.account_id, request.key))
                if first is not None:
                    answers.append({"transaction": request.keyed.replay(first.fingerprint,
                                                                        domain.transaction_view(first))})
                    continue
                tx = self._priced_charge(session, balances[request.account_id], request,
                                         copies[request.account_id], writes)
                firsts[(request.account_id, request.key)] = tx
                answers.append({"transaction": domain.transaction_view(tx)})
            except DomainError as refused:
                answers.append({"error": {"code": refused.error_code, "message": refused.message}})
        writes.flush()  # the invoices' numbers last: numbering.py
        return answers

    def charge(self, account_id, amount, idempotency_key, reference, description, lines=None) -> dict:
        """Take an already priced amount from the balance and issue its invoice."""
        data = _load(ChargeSchema, account_id=account_id, amount=amount, idempotency_key=idempotency_key,
                     reference=reference, description=description, lines=lines)
        invoice_lines = _invoice_lines(data)
        request = _Request("charge", data)

        def charge(session, profile):
            balance = self._lock_balance(session, data["account_id"])
            if (replay := self._replay(request, session)) is not None:
                return replay
            buyer = tax.Buyer.from_profile(profile)
            treatment = tax.tax_treatment(buyer, self.seller, on=self.clock.now())
            tx = self._charge_in(session, balance, request, buyer, invoice_lines, treatment, profile.get("language"))
            return domain.transaction_view(tx)
        return self._as_customer(data["account_id"], charge)

    def _priced_charge(self, session, balance: Balance, request: "_Request", profile: dict,
                       writes: Writes) -> Transaction:
        """``charge_order``'s charge: the list prices priced for this buyer, taken with the invoice."""
        buyer = tax.Buyer.from_profile(profile)
        now = self.clock.now()
        treatment = tax.tax_treatment(buyer, self.seller, on=now)
        priced = _priced(request.data, lambda price: tax.price_for(price, treatment, self.seller, on=now).gross)
        return self._charge_in(session, balance, request.priced(priced), buyer, _invoice_lines(priced),
                               treatment, profile.get("language"), writes)

    def _as_customer(self, account_id: str, work):
        """``work(session, profile)`` in one transaction, with the copy of the customer read in it.

        Without a copy, profile is asked first (``not_found`` for an account nobody has: nothing
        is written), outside any transaction, and its answer kept in the transaction of the work.
        """
        asked = None
        while True:
            with self.uow.transaction() as session:
                profile = read(session, account_id)
                if profile is None and asked is not None:
                    keep_answer(session, account_id, asked)
                    profile = asked
                if profile is not None:
                    return work(session, profile)
            asked = self.profiles.get(account_id)

    def _as_customers(self, account_ids: list[str], work):
        """``work(session, copies)`` in one transaction, ``copies`` by account id, as ``_as_customer`` for
        many: the accounts without a copy are asked of profile first, and an account nobody has is
        left out of ``copies`` (its charges refused ``not_found``) instead of failing the others."""
        asked: dict[str, dict | None] = {}
        while True:
            with self.uow.transaction() as session:
                copies = profile_copy.read_all(session, account_ids)
                missing = [a for a in account_ids if copies.get(a) is None and a not in asked]
                if not missing:
                    for account_id, answer in asked.items():
                        if copies.get(account_id) is None and answer is not None:
                            keep_answer(session, account_id, answer)
                            copies[account_id] = answer
                    return work(session, copies)
            for account_id in missing:  # outside any transaction
                try:
                    asked[account_id] = self.profiles.get(account_id)
                except DomainError as error:
                    if error.error_code != "not_found":
                        raise
                    asked[account_id] = None

    def _charge_in(self, session, balance: Balance, request: "_Request", buyer: tax.Buyer,
                   invoice_lines: list, treatment, language: str | None, writes: Writes | None = None) -> Transaction:
        """The charge's movement and its invoice, in the caller's transaction, whose last write this is
        (``writes``: gathered for the end of the transaction instead: writes.py)."""
        # Written in the buyer's language now: the invoice keeps the language of its issue.
        language = language or "en"
        invoice_lines = [replace(line, description=WORDING.say(line.description, language)) for line in invoice_lines]
        invoice_id = str(uuid.uuid4())
        writes = writes or Writes(session)
        tx = self._move(session, balance, domain.CHARGE, request, invoice_id=invoice_id,
                        description=WORDING.say(request.data["description"] or "Charge", language), writes=writes)
        now = as_utc(tx.created_at)
        document = invoicing.build_invoice(
            invoice_id=invoice_id, number=None, seller=self.seller,
            buyer=buyer, lines=invoice_lines, treatment=treatment, currency=tx.currency,
            order_id=tx.reference, issued_at=now)
        writes.document(*self._to_number(tx, document, language))  # the last write: numbering.py
        return tx

    def refund(self, account_id, amount, idempotency_key, reference, charge_id, description=None) -> dict:
        """Return money to the balance against a charge, never more than it took, with a credit note."""
        data = _load(RefundSchema, account_id=account_id, amount=amount, idempotency_key=idempotency_key,
                     reference=reference, charge_id=charge_id, description=description)
        request = _Request("refund", data)
        if (replay := self._replay(request)) is not None:
            return replay
        with self.uow.transaction() as session:
            balance = self._lock_balance(session, data["account_id"], create=False)
            if (replay := self._replay(request, session)) is not None:
                return replay
            charge = session.scalar(select(Transaction).where(
                Transaction.id == data["charge_id"], Transaction.account_id == data["account_id"],
                Transaction.kind == domain.CHARGE))
            if charge is None:
                raise NotFound("charge")
            refunded = session.scalar(select(func.coalesce(func.sum(Transaction.amount_minor), 0)).where(
                Transaction.refunds_transaction_id == charge.id))
            domain.check_refund(Money(-charge.amount_minor, charge.currency),
                                Money(int(refunded), charge.currency), data["amount"])
            invoice = session.scalar(select(Invoice).where(Invoice.id == charge.invoice_id))
            earlier = session.scalars(select(Invoice).where(Invoice.corrects == invoice.id)).all()
            note_id = str(uuid.uuid4())
            # In the language of the invoice it corrects (its buyer's at its issue).
            language = invoice.language
            tx = self._move(session, balance, domain.REFUND, request, invoice_id=note_id,
                            refunds_transaction_id=charge.id,
                            description=WORDING.say(data["description"] or f"Refund of {charge.description}",
                                                    language)[:500])
            now = as_utc(tx.created_at)
            document = invoicing.credit_note_for(
                invoice.document, invoice_id=note_id, number=None, issued_at=now,
                amount=data["amount"], description=WORDING.say(
                    data["description"] or f"Refund for invoice {invoice.document['number']}", language),
                earlier_credit_notes=[note.document for note in earlier])
            publish_later(session, "refund_issued", {
                "account_id": tx.account_id, "transaction_id": tx.id, "amount": data["amount"].to_wire(),
                "balance": _money(tx.balance_after_minor, tx), "reference": tx.reference,
                "order_id": invoice.document.get("order_id") or tx.reference, "charge_id": charge.id})
            self._issue(session, tx, document, invoice.language)  # the last write
            return domain.transaction_view(tx)

    def adjust(self, account_id, amount, idempotency_key, reason, operator, caller=None) -> dict:
        """An operator's correction, either way, with the reason, the operator's name and the
        broker login that asked for it (``caller``)."""
        data = _load(AdjustmentSchema, account_id=account_id, amount=amount, idempotency_key=idempotency_key,
                     reason=reason, operator=operator)
        request = _Request("adjust", data)
        replay, known = self._first_look(request)
        if replay is not None:
            return replay
        if not known:
            self.profiles.get(data["account_id"])  # not_found for an account nobody has
        with self.uow.transaction() as session:
            balance = self._lock_balance(session, data["account_id"])
            if (replay := self._replay(request, session)) is not None:
                return replay
            tx = self._move(session, balance, domain.ADJUSTMENT, request, operator=data["operator"],
                            caller=caller, description=data["reason"])
            return domain.transaction_view(tx)

    def set_credit_limit(self, account_id, limit, operator, caller=None) -> dict:
        """Allow an account to go this far below zero (an operator decision, kept with the
        operator's name and the broker login that asked); 0.00 forbids overdraft."""
        data = _load(CreditLimitSchema, account_id=account_id, limit=limit, operator=operator)
        if data["limit"].is_negative():
            raise ValidationError({"limit": ["must not be negative"]})
        with self.uow.transaction() as session:
            balance = self._lock_balance(session, data["account_id"])
            domain.check_currency(balance.currency, data["limit"])
            balance.credit_limit_minor = data["limit"].minor
            balance.credit_limit_operator = data["operator"]
            balance.credit_limit_caller = caller
            balance.updated_at = self.clock.now()
            return self._balance_view(balance)

    # -- reading ------------------------------------------------------------------------

    def get_balance(self, account_id) -> dict:
        """The balance as money; 0.00 in the default currency for an account with no movement yet."""
        account_id = _account_id(account_id)
        with self.uow.read() as session:
            balance = session.execute(BALANCE, {"account_id": account_id}).first()
        if balance is None:
            return Money.zero(self.currency).to_wire()
        return Money(balance.balance_minor, balance.currency).to_wire()

    def list_transactions(self, account_id, limit=50, cursor=None) -> dict:
        params = {"account_id": _account_id(account_id)}
        with self.uow.read() as session:
            return keyset_page(session, TRANSACTIONS_OF, [Transaction.seq], limit, cursor, params).answer(
                domain.transaction_view)

    def list_invoices(self, account_id, limit=50, cursor=None) -> dict:
        query = select(Invoice).where(Invoice.account_id == _account_id(account_id))
        with self.uow.transaction() as session:
            page = keyset_page(session, query, [Invoice.seq], limit, cursor)
            return {"items": invoice_views(session, page.rows), "next_cursor": page.next_cursor}

    def get_invoice(self, invoice_id, account_id=None) -> dict:
        """One invoice; with ``account_id`` another customer's invoice is not found."""
        with self.uow.transaction() as session:
            return invoice_view(session, self._invoice(session, invoice_id, account_id))

    def price(self, account_id, amount) -> dict:
        """What this customer pays for a list price, split into net, VAT and gross (I2)."""
        data = _load(PriceSchema, account_id=account_id, amount=amount)
        profile = self.copies.get(data["account_id"])
        currency = self._currency_of(data["account_id"])
        domain.check_currency(currency, data["amount"])
        now = self.clock.now()
        treatment = tax.tax_treatment(tax.Buyer.from_profile(profile), self.seller, on=now)
        amounts = tax.price_for(data["amount"], treatment, self.seller, on=now)
        return {**amounts.to_wire(), "vat_rate": treatment.vat_rate, "tax_treatment": treatment.kind}

    def payment_methods(self, account_id) -> dict:
        """The methods offered to the customer, each available or with the reason it is not (I3)."""
        profile = self.profiles.get(_account_id(account_id))
        items = payment_methods.methods_for(
            profile["country"], profile["profile_type"], profile["company_verification"],
            bool(profile.get("postal_address")), language=profile.get("language") or "en")
        return {"items": items, "next_cursor": None}

    def audit(self) -> list[dict]:
        """Recompute every balance from the journal; the discrepancies, empty when sound."""
        with self.uow.transaction() as session:
            _one_snapshot(session)
            return self._audit(session)

    def audit_unless_running(self) -> list[dict] | None:
        """The audit, or None when another replica is running it right now (the periodic one)."""
        with self.uow.transaction() as session:
            _one_snapshot(session)
            if not try_lock(session, "ledger.audit"):
                return None
            return self._audit(session)

    def _audit(self, session) -> list[dict]:
        """The rules are domain's; the journal is never held in memory whole (README Performance, "Memory").

        The database sums each transaction's legs and sends back only those that do not balance, with
        the transactions that have none; the customers' postings come in journal order, a few thousand
        rows at a time, and each account is checked as they pass. What is held: a balance and a last
        ``balance_after`` per account.
        """
        unbalanced = (select(Posting.transaction_id).group_by(Posting.transaction_id)
                      .having((func.count() < 2) | (func.sum(Posting.amount_minor) != 0)
                              | (func.count(Posting.currency.distinct()) != 1)))
        legs: dict[str, list] = {}
        for row in session.execute(select(Posting.transaction_id, Posting.ledger_account, Posting.amount_minor,
                                          Posting.currency).where(Posting.transaction_id.in_(unbalanced))
                                   .order_by(Posting.id)):
            legs.setdefault(row.transaction_id, []).append((row.ledger_account, row.amount_minor, row.currency))
        # NOT EXISTS, an anti-join on the postings' index: PostgreSQL runs ``NOT IN (subquery)`` as a scan of
        # the postings per transaction once their ids outgrow work_mem (12 minutes at 100,000 renewals).
        has_legs = select(Posting.id).where(Posting.transaction_id == Transaction.id).exists()
        for tx_id in session.scalars(select(Transaction.id).where(~has_legs)):
            legs[tx_id] = []
        problems = domain.transaction_discrepancies(legs)

        stored = {row.account_id: row.balance_minor for row in session.execute(select(Balance.account_id, Balance.balance_minor))}
        last_seq = select(Transaction.account_id, func.max(Transaction.seq).label("seq")) \
            .group_by(Transaction.account_id).subquery()
        last = {row.account_id: row.balance_after_minor for row in session.execute(
            select(Transaction.account_id, Transaction.balance_after_minor)
            .join(last_seq, Transaction.seq == last_seq.c.seq))}
        customers = session.execute(
            select(Posting.ledger_account, Posting.amount_minor, Posting.balance_after_minor)
            .where(Posting.ledger_account.startswith(domain.CUSTOMER_PREFIX, autoescape=True))
            .order_by(Posting.ledger_account, Posting.id).execution_options(yield_per=AUDIT_ROWS_AT_ONCE))
        for ledger_account, postings in itertools.groupby(customers, key=lambda row: row.ledger_account):
            account = ledger_account[len(domain.CUSTOMER_PREFIX):]
            problems += domain.account_discrepancies(account, ((row.amount_minor, row.balance_after_minor)
                                                               for row in postings),
                                                     stored.pop(account, 0), last.get(account))
        for account in sorted(stored):  # a balance without a single posting
            problems += domain.account_discrepancies(account, (), stored[account], last.get(account))
        return problems

    # -- what profile tells us ----------------------------------------------------------

    def account_registered(self, event: dict) -> None:
        """The account exists in the ledger from its registration, at 0.00 in the default currency."""
        with self.uow.transaction() as session:
            if first_delivery(session, "ledger.account_registered", event["event_id"]):
                self._lock_balance(session, event["account_id"])
            profile_copy.from_event(session, event)

    def profile_changed(self, event: dict) -> None:
        """Keep the copy of the customer as billed (buyer data, payment eligibility) up to date."""
        self.copies.apply(event)

    def notification_settings_changed(self, event: dict) -> None:
        """Keep our copy of the low-balance threshold (N2), ignoring settings older than it."""
        as_of = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        with self.uow.transaction() as session:
            if not first_delivery(session, "ledger.notification_settings_changed", event["event_id"]):
                return
            balance = self._lock_balance(session, event["account_id"])
            if balance.threshold_as_of is not None and as_utc(balance.threshold_as_of) > as_of:
                return
            threshold = _threshold(event.get("low_balance_threshold"), balance.currency)
            balance.low_balance_threshold_minor = None if threshold is None else threshold.minor
            balance.below_threshold = domain.below_after_threshold_change(
                threshold, Money(balance.balance_minor, balance.currency), balance.below_threshold)
            balance.threshold_as_of = as_of
            balance.low_balance_days = event.get("low_balance_days")
            if balance.low_balance_days is None:
                balance.below_days = False
            wanted = bool(event.get("monthly_statement"))
            if wanted and not balance.monthly_statement:
                # The first statement is of the first whole month after the customer asked.
                balance.statement_sent_for = as_of.date().replace(day=1)
            balance.monthly_statement = wanted
            balance.updated_at = self.clock.now()

    # -- the parts of a movement ----------------------------------------------------------

    def _move(self, session, balance: Balance, kind: str, request: "_Request", *, description: str,
              invoice_id=None, refunds_transaction_id=None, method=None, operator=None,
              caller=None, writes: Writes | None = None, announce=None) -> Transaction:
        """One movement: transaction, postings, running balance, balance events, written now (or gathered
        in ``writes``: writes.py). A refusal (currency, funds) comes before anything is written.

        ``announce(tx)``, if given, is one more event (type, data) about the movement, written after the
        balance's in the same statement: a payment's ``payment_received``.
        """
        amount = request.data["amount"]
        domain.check_currency(balance.currency, amount)
        change = domain.signed_amount(kind, amount)
        before = Money(balance.balance_minor, balance.currency)
        after = domain.balance_after(before, change, Money(balance.credit_limit_minor, balance.currency))
        now = self.clock.now()
        written = dict(
            id=str(uuid.uuid4()), account_id=balance.account_id, kind=kind, amount_minor=change.minor,
            currency=change.currency, balance_after_minor=after.minor, reference=request.data.get("reference"),
            description=description, idempotency_key=request.key, fingerprint=request.fingerprint,
            refunds_transaction_id=refunds_transaction_id, method=method, operator=operator, caller=caller,
            invoice_id=invoice_id, created_at=now)
        # Written as statements (writes.py), not through the session's unit of work: a payment's flushes
        # were a quarter of the ledger's CPU (README Performance). ``tx`` is the row as written, for the views.
        tx = Transaction(**written)
        customer = domain.customer_account(balance.account_id)
        postings = [
            {"transaction_id": tx.id, "ledger_account": leg.ledger_account, "amount_minor": leg.amount.minor,
             "currency": leg.amount.currency, "balance_after_minor": after.minor if leg.ledger_account == customer else None}
            for leg in domain.legs_for(kind, balance.account_id, change)]
        threshold = (None if balance.low_balance_threshold_minor is None
                     else Money(balance.low_balance_threshold_minor, balance.currency))
        alert = domain.low_balance_alert(threshold, balance.below_threshold, change, after)
        moved = {"balance_minor": after.minor, "below_threshold": alert.below_threshold, "updated_at": now}
        for name, value in moved.items():   # the locked row as it now is, with nothing left to flush
            set_committed_value(balance, name, value)
        events = [("balance_changed", {
            "account_id": tx.account_id, "balance": after.to_wire(), "transaction_id": tx.id,
            "kind": kind, "amount": change.to_wire(),
            # null: no alert in days, so a forecast would decide nothing (orders then gives none)
            "alert_in_days": balance.low_balance_days})]
        if alert.send_low_balance:
            events.append(("balance_low", {
                "account_id": tx.account_id, "balance": after.to_wire(), "threshold": threshold.to_wire()}))
        if announce is not None:
            events.append(announce(tx))
        (writes or Writes(session)).movement(Movement(written, postings, balance.account_id, moved, events))
        return tx

    def _issue(self, session, tx: Transaction, document: dict, language: str) -> None:
        """Number the document and write it with its ``invoice_issued`` event: the transaction's last write.

        The year's counter is locked from here to the commit, so nothing of the movement may
        come after it (``numbering.py``).
        """
        Writes(session).document(*self._to_number(tx, document, language))

    @staticmethod
    def _to_number(tx: Transaction, document: dict, language: str) -> tuple[dict, dict]:
        """The document's ``invoices`` row and ``invoice_issued`` event, both still without their number."""
        return ({
            "id": document["id"], "account_id": tx.account_id, "year": invoicing.number_year(as_utc(tx.created_at)),
            "kind": document["kind"], "transaction_id": tx.id, "corrects": document["corrects"],
            "gross_minor": Money.from_wire(document["gross"]).minor,
            "language": language if language in ("en", "pl") else "en",
            "document": document, "issued_at": tx.created_at,
        }, {
            "account_id": tx.account_id, "invoice_id": document["id"], "kind": document["kind"],
            "gross": document["gross"], "issued_at": document["issued_at"], "order_id": document["order_id"],
        })

    def _lock_balances(self, session, account_ids: list[str]) -> dict[str, Balance]:
        """The balance rows of these accounts, locked in the order of their ids in one statement (a missing
        one created as ``_lock_balance`` creates it)."""
        locked = {balance.account_id: balance for balance in session.scalars(
            select(Balance).where(Balance.account_id.in_(account_ids)).order_by(Balance.account_id)
            .with_for_update().execution_options(populate_existing=True))}
        for account_id in account_ids:
            if account_id not in locked:
                locked[account_id] = self._lock_balance(session, account_id)
        return locked

    def _locked_balance(self, session, account_id: str) -> Balance | None:
        """The account's balance row, locked until the transaction ends; None when there is none yet."""
        return session.scalar(LOCKED_BALANCE, {"account_id": account_id})

    def _lock_balance(self, session, account_id: str, create: bool = True) -> Balance:
        balance = session.scalar(LOCKED_BALANCE, {"account_id": account_id})
        if balance is None:
            if not create:
                raise NotFound("account")
            try:
                with session.begin_nested():
                    session.add(Balance(account_id=account_id, currency=self.currency, balance_minor=0,
                                        credit_limit_minor=0, below_threshold=False, updated_at=self.clock.now()))
            except IntegrityError:
                pass  # a concurrent first movement created it
            balance = session.scalar(LOCKED_BALANCE, {"account_id": account_id})
        return balance

    def _replay(self, request: "_Request", session=None) -> dict | None:
        """The first answer to a key already used with these arguments; a conflict with others."""
        def find(s):
            tx = s.scalar(KEYED_TRANSACTION, {"account_id": request.account_id, "key": request.key})
            return None if tx is None else request.keyed.replay(tx.fingerprint, domain.transaction_view(tx))
        if session is not None:
            return find(session)
        with self.uow.transaction() as own:
            return find(own)

    def _first_look(self, request: "_Request") -> tuple[dict | None, bool]:
        """Before asking profile anything: a replay's answer, and whether we know the account."""
        with self.uow.transaction() as session:
            return self._replay(request, session), session.get(Balance, request.account_id) is not None

    def _currency_of(self, account_id: str) -> str:
        with self.uow.transaction() as session:
            balance = session.get(Balance, account_id)
            return balance.currency if balance is not None else self.currency

    def _invoice(self, session, invoice_id, account_id) -> Invoice:
        if not isinstance(invoice_id, str) or len(invoice_id) > 36:
            raise NotFound("invoice")
        invoice = session.scalar(select(Invoice).where(Invoice.id == invoice_id))
        if invoice is None or (account_id is not None and invoice.account_id != account_id):
            raise NotFound("invoice")
        return invoice

    def _balance_view(self, balance: Balance) -> dict:
        return {"account_id": balance.account_id,
                "balance": Money(balance.balance_minor, balance.currency).to_wire(),
                "credit_limit": Money(balance.credit_limit_minor, balance.currency).to_wire()}


class _Request:
    """A money-moving call: its arguments, and its idempotency key bound to them.

    A key is the account's, whatever the operation (one key, one effect per account): the
    journal row that carries it is looked up by account and key, and its fingerprint, which
    names the operation, must match.
    """

    def __init__(self, operation: str, data: dict):
        self.data = data
        self.account_id = data["account_id"]
        self.keyed = KeyedRequest.of(self.account_id, operation, data["idempotency_key"],
                                     {name: value for name, value in data.items() if name != "idempotency_key"},
                                     field="idempotency_key")
        self.key, self.fingerprint = self.keyed.key, self.keyed.fingerprint

    def priced(self, data: dict) -> "_Request":
        """The same request (key and fingerprint) with the amounts this customer pays."""
        priced = _Request.__new__(_Request)
        priced.data, priced.account_id, priced.keyed = data, self.account_id, self.keyed
        priced.key, priced.fingerprint = self.key, self.fingerprint
        return priced


def _load(schema, **arguments) -> dict:
    return load(schema, arguments)


def _account_id(account_id) -> str:
    if not isinstance(account_id, str) or not 1 <= len(account_id) <= 64:
        raise ValidationError({"account_id": ["must be an account id"]})
    return account_id


def _money(minor: int, tx: Transaction) -> dict:
    return Money(minor, tx.currency).to_wire()


def _threshold(value, currency: str) -> Money | None:
    if value is None:
        return None
    threshold = Money.from_wire(value, "low_balance_threshold")
    # A threshold in another currency than the account's cannot be compared: no alert.
    return threshold if threshold.currency == currency else None


def _invoice_lines(data: dict) -> list[invoicing.InvoiceLine]:
    """The charge's invoice lines: those given, which must add up to the amount, or one line."""
    amount = data["amount"]
    if not data["lines"]:
        return [invoicing.InvoiceLine(description=data["description"] or "Charge", gross=amount)]
    lines = [invoicing.InvoiceLine(description=line["description"], gross=line["gross"],
                                   quantity=line["quantity"], period_from=line["period_from"],
                                   period_to=line["period_to"]) for line in data["lines"]]
    if any(line.gross.currency != amount.currency for line in lines) \
            or sum(line.gross.minor for line in lines) != amount.minor:
        raise ValidationError({"lines": ["the lines' gross amounts must add up to the amount, in its currency"]})
    if any(line.gross.minor <= 0 for line in lines):
        raise ValidationError({"lines": ["each line's gross must be greater than zero"]})
    return lines



def _priced(data: dict, price) -> dict:
    """A charge of list prices in this customer's prices: the amount priced, the lines priced to add up to it."""
    amount = price(data["amount"])
    priced = {**data, "amount": amount}
    if data["lines"]:
        lines = [{**line, "gross": price(line["gross"])} for line in data["lines"]]
        rest = amount.minor - sum(line["gross"].minor for line in lines[:-1])
        lines[-1]["gross"] = Money(rest, amount.currency)  # rounding per line never moves the total
        priced["lines"] = lines
    return priced
