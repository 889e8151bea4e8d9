"""The journal's rules (B1-B3): double entry, limits, refunds, alerts. No I/O.

Every movement is a transaction of postings on ledger accounts that sum to zero. A
customer's balance is their own ledger account; the house keeps one account per kind of
counterpart and currency (payments received, revenue, refunds paid out, operator
adjustments). A posting's sign is its effect on that account's balance as the customer
sees it: a payment is +X for the customer and -X for payments received. Idempotency keys
(B3) are kept on the journal's rows and bound to their requests by ``services.common.idempotency``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.common.clock import iso
from services.common.errors import DomainError, ValidationError
from services.common.money import Money

PAYMENT = "payment"
CHARGE = "charge"
REFUND = "refund"
ADJUSTMENT = "adjustment"
KINDS = (PAYMENT, CHARGE, REFUND, ADJUSTMENT)

# The house account each kind of movement is balanced against.
COUNTERPART = {
    PAYMENT: "payments_received",
    CHARGE: "revenue",
    REFUND: "refunds_paid_out",
    ADJUSTMENT: "operator_adjustments",
}

CUSTOMER_PREFIX = "customer:"


def customer_account(account_id: str) -> str:
    """The ledger account holding one customer's balance."""
    return f"{CUSTOMER_PREFIX}{account_id}"


def house_account(kind: str, currency: str) -> str:
    """The house ledger account a movement of ``kind`` is balanced against."""
    return f"house:{COUNTERPART[kind]}:{currency}"


@dataclass(frozen=True)
class Leg:
    """One posting: an amount on a ledger account."""

    ledger_account: str
    amount: Money


def legs_for(kind: str, account_id: str, amount: Money) -> list[Leg]:
    """The postings of a movement that changes a customer's balance by ``amount`` (signed)."""
    if kind not in KINDS:
        raise ValueError(f"unknown movement kind {kind!r}")
    legs = [Leg(customer_account(account_id), amount), Leg(house_account(kind, amount.currency), -amount)]
    check_balanced(legs)
    return legs


def check_balanced(legs: Iterable[Leg]) -> None:
    """Refuse a transaction whose postings do not sum to zero in one currency."""
    legs = list(legs)
    if len(legs) < 2:
        raise ValueError("a transaction has at least two postings")
    currencies = {leg.amount.currency for leg in legs}
    if len(currencies) != 1 or sum(leg.amount.minor for leg in legs) != 0:
        raise ValueError(f"postings do not balance: {legs}")


def signed_amount(kind: str, amount: Money) -> Money:
    """The change to the customer's balance: charges take, payments and refunds give.

    ``amount`` is what the caller named: positive for payments, charges and refunds;
    signed (either way, not zero) for an operator's adjustment.
    """
    if kind == ADJUSTMENT:
        if amount.minor == 0:
            raise ValidationError({"amount": ["must not be zero"]})
        return amount
    if amount.minor <= 0:
        raise ValidationError({"amount": ["must be greater than zero"]})
    return -amount if kind == CHARGE else amount


def check_currency(account_currency: str, amount: Money) -> None:
    """Each account has one currency; money in another is refused (B1)."""
    if amount.currency != account_currency:
        raise DomainError(
            "currency_mismatch",
            f"This account is kept in {account_currency}; a movement in {amount.currency} is refused.",
            fields={"amount": [f"must be in {account_currency}"]},
            details={"account_currency": account_currency, "currency": amount.currency})


def balance_after(balance: Money, change: Money, credit_limit: Money) -> Money:
    """The balance after a movement; refused with ``insufficient_funds`` below the credit limit.

    A movement that adds money is always allowed, even to a balance already below the
    limit (an operator may have lowered the limit meanwhile).
    """
    after = balance + change
    if change.minor < 0 and after.minor < -credit_limit.minor:
        available = balance + credit_limit
        raise DomainError(
            "insufficient_funds",
            f"The balance is {balance}; {-change} cannot be taken from it.",
            details={"balance": balance.to_wire(), "available": available.to_wire(),
                     "requested": (-change).to_wire()})
    return after


def check_refund(charged: Money, refunded_before: Money, amount: Money) -> None:
    """A refund returns at most what its charge took, net of earlier refunds."""
    left = charged - refunded_before
    if amount > left:
        raise DomainError(
            "refund_exceeds_charge",
            f"At most {left} of this charge can still be refunded.",
            fields={"amount": [f"at most {left.amount}"]},
            details={"refundable": left.to_wire(), "requested": amount.to_wire()})


@dataclass(frozen=True)
class AlertDecision:
    send_low_balance: bool
    below_threshold: bool


def low_balance_alert(threshold: Money | None, below_before: bool, change: Money,
                      after: Money) -> AlertDecision:
    """Whether this movement sends ``balance_low`` (N2): once per crossing below the threshold.

    The alert is armed again only when the balance is back at or above the threshold; a
    payment that leaves the balance still below it sends nothing.
    """
    if threshold is None:
        return AlertDecision(False, False)
    if after >= threshold:
        return AlertDecision(False, False)
    if below_before or change.minor >= 0:
        return AlertDecision(False, below_before)
    return AlertDecision(True, True)


def below_after_threshold_change(threshold: Money | None, balance: Money, below_before: bool) -> bool:
    """The alert state after the customer changes the threshold.

    A balance at or above the new threshold re-arms the alert; a balance already below it
    keeps its state, so the next charge tells the customer (a new threshold is not itself
    a crossing).
    """
    if threshold is None or balance >= threshold:
        return False
    return below_before


def transaction_view(tx) -> dict:
    """The Transaction shape of docs/CONTRACTS.md (plus ``invoice_id`` of the document it issued)."""
    view = {
        "id": tx.id,
        "at": iso(tx.created_at),
        "kind": tx.kind,
        "amount": Money(tx.amount_minor, tx.currency).to_wire(),
        "balance_after": Money(tx.balance_after_minor, tx.currency).to_wire(),
        "reference": tx.reference,
        "description": tx.description,
        "invoice_id": tx.invoice_id,
    }
    if tx.kind == REFUND:
        view["credit_note_id"] = tx.invoice_id
        view["charge_id"] = tx.refunds_transaction_id
    if tx.kind == PAYMENT:
        view["method"] = tx.method
    return view


# --- audit: the books recomputed from the journal ---------------------------------------

def transaction_discrepancies(postings_by_transaction: Mapping[str, list[tuple[str, int, str]]]) -> list[dict]:
    """The audit's first half: the transactions whose legs do not balance (fewer than two, a sum other than
    zero, or two currencies). ``postings_by_transaction``: transaction id -> [(ledger account, minor, currency)]."""
    problems: list[dict] = []
    for transaction_id, legs in postings_by_transaction.items():
        total = sum(minor for _, minor, _ in legs)
        currencies = {currency for _, _, currency in legs}
        if len(legs) < 2 or total != 0 or len(currencies) != 1:
            problems.append({"kind": "unbalanced_transaction", "transaction_id": transaction_id,
                             "sum_minor": total, "postings": len(legs), "currencies": sorted(currencies)})
    return problems


def account_discrepancies(account_id: str, postings: Iterable[tuple[int, int | None]], stored: int,
                          last_balance_after: int | None) -> list[dict]:
    """The audit's second half, one customer at a time: their postings, ``(minor, balance_after_minor)`` in
    journal order, read once (an iterator will do: the audit streams them), against the stored running
    balance and the last transaction's ``balance_after``."""
    problems: list[dict] = []
    running = journal = 0
    for minor, recorded_after in postings:
        running += minor
        journal += minor
        if recorded_after is not None and recorded_after != running:
            problems.append({"kind": "balance_after_mismatch", "account_id": account_id,
                             "expected_minor": running, "recorded_minor": recorded_after})
            running = recorded_after  # report each break once, not every entry after it
    if stored != journal:
        problems.append({"kind": "stored_balance_mismatch", "account_id": account_id,
                         "journal_minor": journal, "stored_minor": stored})
    if last_balance_after is not None and last_balance_after != journal:
        problems.append({"kind": "transaction_balance_mismatch", "account_id": account_id,
                         "journal_minor": journal, "last_balance_after_minor": last_balance_after})
    return problems
