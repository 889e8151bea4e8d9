"""The ledger's use cases on a real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres).

No broker here: profile is the shared fake (tests/fakes.py) that answers ``get`` like the profile service. The RPC,
outbox relay and concurrency tests over RabbitMQ are in test_ledger_service.py.
"""
from __future__ import annotations

import json
import tracemalloc
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, insert, select, text

from services.common.clock import clock
from services.common.database import UnitOfWork, make_engine
from services.common.errors import DomainError
from services.common.migrations import upgrade
from services.common.money import Money
from services.ledger.application import Ledger
from services.ledger.forecast import BalanceForecasts
from services.ledger.models import Base, Posting, Transaction
from services.ledger.tax import Seller
from tests.fakes import FakeProfile
from tests.support import databases

pytestmark = pytest.mark.integration


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    with databases(tmp_path_factory.mktemp("ledger"), services=("ledger",)) as urls:
        upgrade("ledger", urls["ledger"])
        engine = make_engine(urls["ledger"], green=False)
        yield UnitOfWork(engine, "ledger", Base.metadata)
        engine.dispose()


@pytest.fixture
def profiles():
    """profile's ``get`` for the accounts a test adds (tests/fakes.py)."""
    return FakeProfile()


@pytest.fixture
def ledger(database, profiles):
    return Ledger(database, profiles, clock, Seller.from_env({}))


def outbox(uow, account_id: str, event_type: str | None = None) -> list[dict]:
    table = Base.metadata.tables["outbox"]
    with uow.transaction() as session:
        rows = session.execute(select(table.c.event_type, table.c.payload).order_by(table.c.id)).all()
    events = [(row.event_type, json.loads(row.payload)) for row in rows]
    return [dict(payload, type=kind) for kind, payload in events
            if payload.get("account_id") == account_id and (event_type is None or kind == event_type)]


def refused(call) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value


# --- the state machine ------------------------------------------------------------------

class LedgerAgainstModel(RuleBasedStateMachine):
    """Random payments, charges, refunds, adjustments and replays against a simple model."""

    ledger: Ledger = None
    profiles: FakeProfile = None
    charges = Bundle("charges")
    keys = Bundle("keys")

    def __init__(self):
        super().__init__()
        self.account = self.profiles.add()
        self.balance = 0
        self.refunded: dict[str, int] = {}
        self.charged: dict[str, int] = {}
        self.effects = 0

    def _key(self) -> str:
        return uuid.uuid4().hex

    @rule(target=keys, cents=st.integers(1, 5000))
    def credit(self, cents):
        key = self._key()
        args = (self.account, Money(cents, "EUR").to_wire(), key, f"pay-{key}")
        result = self.ledger.credit_payment(*args)
        self.balance += cents
        self.effects += 1
        assert result["balance_after"] == Money(self.balance, "EUR").to_wire()
        return ("credit_payment", args, result)

    @rule(target=charges, cents=st.integers(1, 5000))
    def charge(self, cents):
        key = self._key()
        args = (self.account, Money(cents, "EUR").to_wire(), key, f"order-{key[:8]}", "VPS S")
        if cents > self.balance:
            assert refused(lambda: self.ledger.charge(*args)).error_code == "insufficient_funds"
            return ("refused", args, None)
        result = self.ledger.charge(*args)
        self.balance -= cents
        self.effects += 1
        self.charged[result["id"]] = cents
        self.refunded[result["id"]] = 0
        return ("charge", args, result)

    @rule(charge=charges, cents=st.integers(1, 5000))
    def refund(self, charge, cents):
        operation, _, result = charge
        if operation != "charge":
            return
        key = self._key()
        args = (self.account, Money(cents, "EUR").to_wire(), key, "order", result["id"], "unused days")
        left = self.charged[result["id"]] - self.refunded[result["id"]]
        if cents > left:
            assert refused(lambda: self.ledger.refund(*args)).error_code == "refund_exceeds_charge"
            return
        self.ledger.refund(*args)
        self.balance += cents
        self.refunded[result["id"]] += cents
        self.effects += 1

    @rule(target=keys, cents=st.integers(-5000, 5000).filter(bool))
    def adjust(self, cents):
        key = self._key()
        args = (self.account, Money(cents, "EUR").to_wire(), key, "correction", "operator")
        if self.balance + cents < 0:
            assert refused(lambda: self.ledger.adjust(*args)).error_code == "insufficient_funds"
            return ("refused", args, None)
        result = self.ledger.adjust(*args)
        self.balance += cents
        self.effects += 1
        return ("adjust", args, result)

    @rule(used=st.one_of(keys, charges))
    def replay_an_old_key(self, used):
        operation, args, first = used
        if operation == "refused":
            return
        again = getattr(self.ledger, operation)(*args)
        assert again == first

    @rule(used=st.one_of(keys, charges))
    def replay_with_changed_arguments(self, used):
        operation, args, _ = used
        if operation == "refused":
            return
        changed = list(args)
        changed[1] = Money(Money.from_wire(args[1]).minor + 1, "EUR").to_wire()
        assert refused(lambda: getattr(self.ledger, operation)(*changed)).error_code == "idempotency_conflict"

    @invariant()
    def balance_matches_the_model_and_the_journal(self):
        assert self.ledger.get_balance(self.account) == Money(self.balance, "EUR").to_wire()
        assert self.balance >= 0
        with self.ledger.uow.transaction() as session:
            journal = session.scalar(select(func.coalesce(func.sum(Posting.amount_minor), 0))
                                     .where(Posting.ledger_account == f"customer:{self.account}"))
            movements = session.scalar(select(func.count()).select_from(Transaction)
                                       .where(Transaction.account_id == self.account))
        assert journal == self.balance
        assert movements == self.effects  # each key had exactly one effect

    @invariant()
    def books_are_sound(self):
        assert self.ledger.audit() == []


def test_ledger_agrees_with_a_simple_model(ledger, profiles):
    LedgerAgainstModel.ledger = ledger
    LedgerAgainstModel.profiles = profiles
    run_state_machine_as_test(LedgerAgainstModel, settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


# --- idempotency, refusals, events ------------------------------------------------------

def test_a_replayed_payment_moves_money_once(ledger, profiles):
    account = profiles.add()
    first = ledger.credit_payment(account, eur("10.00"), "pay-1", "P-1")
    again = ledger.credit_payment(account, eur("10.00"), "pay-1", "P-1")
    assert again == first
    assert ledger.get_balance(account) == eur("10.00")
    assert len(outbox(ledger.uow, account, "payment_received")) == 1


def test_a_key_reused_with_another_amount_is_a_conflict_and_moves_nothing(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("10.00"), "pay-1", "P-1")
    error = refused(lambda: ledger.credit_payment(account, eur("11.00"), "pay-1", "P-1"))
    assert error.error_code == "idempotency_conflict"
    assert ledger.get_balance(account) == eur("10.00")


def test_an_insufficient_charge_changes_nothing_and_does_not_use_up_its_key(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("3.00"), "pay-1", "P-1")
    assert refused(lambda: ledger.charge(account, eur("5.00"), "c-1", "o-1", "VPS")).error_code == "insufficient_funds"
    assert ledger.list_transactions(account)["items"][0]["kind"] == "payment"
    assert ledger.list_invoices(account)["items"] == []
    assert outbox(ledger.uow, account, "invoice_issued") == []
    ledger.credit_payment(account, eur("2.00"), "pay-2", "P-2")
    assert ledger.charge(account, eur("5.00"), "c-1", "o-1", "VPS")["balance_after"] == eur("0.00")


def test_an_unknown_account_has_zero_balance_and_no_transactions(ledger):
    assert ledger.get_balance("never-seen") == eur("0.00")
    assert ledger.list_transactions("never-seen") == {"items": [], "next_cursor": None}


def test_a_payment_to_an_account_nobody_has_is_not_found(ledger):
    assert refused(lambda: ledger.credit_payment("ghost", eur("1.00"), "k", "P")).error_code == "not_found"
    assert ledger.get_balance("ghost") == eur("0.00")


def test_movements_in_another_currency_are_refused(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("3.00"), "pay-1", "P-1")
    error = refused(lambda: ledger.credit_payment(account, {"amount": "3.00", "currency": "PLN"}, "pay-2", "P-2"))
    assert error.error_code == "currency_mismatch"
    assert ledger.get_balance(account) == eur("3.00")


@pytest.mark.parametrize("amount", [{"amount": 1.5, "currency": "EUR"}, {"amount": "1.005", "currency": "EUR"},
                                    {"amount": "1.00"}, "1.00", None, {"amount": "1.00", "currency": "XXX"},
                                    {"amount": "-1.00", "currency": "EUR"}, {"amount": "0.00", "currency": "EUR"}])
def test_malformed_amounts_are_validation_errors_and_leave_nothing(ledger, profiles, amount):
    account = profiles.add()
    assert refused(lambda: ledger.credit_payment(account, amount, "k", "P")).error_code == "validation_error"
    assert ledger.list_transactions(account)["items"] == []


def test_huge_strings_are_validation_errors(ledger, profiles):
    account = profiles.add()
    assert refused(lambda: ledger.credit_payment(account, eur("1.00"), "k" * 10_000, "P")).error_code == "validation_error"
    assert refused(lambda: ledger.credit_payment(account, eur("1.00"), "k", "P" * 10_000)).error_code == "validation_error"


def test_a_refund_of_another_customers_charge_is_not_found(ledger, profiles):
    alice, bob = profiles.add(), profiles.add()
    ledger.credit_payment(alice, eur("10.00"), "p", "P")
    ledger.credit_payment(bob, eur("10.00"), "p", "P")
    charge = ledger.charge(alice, eur("4.00"), "c", "o", "VPS")
    assert refused(lambda: ledger.refund(bob, eur("1.00"), "r", "o", charge["id"])).error_code == "not_found"
    assert ledger.get_balance(bob) == eur("10.00")


def test_a_refund_never_returns_more_than_the_charge_net_of_earlier_refunds(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("10.00"), "p", "P")
    charge = ledger.charge(account, eur("4.00"), "c", "o", "VPS")
    ledger.refund(account, eur("3.00"), "r1", "o", charge["id"], "unused days")
    error = refused(lambda: ledger.refund(account, eur("1.01"), "r2", "o", charge["id"]))
    assert error.error_code == "refund_exceeds_charge"
    ledger.refund(account, eur("1.00"), "r3", "o", charge["id"])
    assert ledger.get_balance(account) == eur("10.00")


def test_a_credit_limit_allows_overdraft(ledger, profiles):
    account = profiles.add()
    ledger.set_credit_limit(account, eur("5.00"), "operator")
    assert ledger.charge(account, eur("5.00"), "c", "o", "VPS")["balance_after"] == eur("-5.00")
    assert refused(lambda: ledger.charge(account, eur("0.01"), "c2", "o", "VPS")).error_code == "insufficient_funds"


def test_every_movement_writes_balance_changed_in_the_same_transaction(ledger, profiles):
    account = profiles.add()
    payment = ledger.credit_payment(account, eur("10.00"), "p", "P", "card")
    charge = ledger.charge(account, eur("4.00"), "c", "o-1", "VPS")
    ledger.refund(account, eur("1.00"), "r", "o-1", charge["id"])
    ledger.adjust(account, eur("-1.00"), "a", "fix", "operator")
    changed = outbox(ledger.uow, account, "balance_changed")
    assert [(e["kind"], e["amount"]["amount"], e["balance"]["amount"]) for e in changed] == [
        ("payment", "10.00", "10.00"), ("charge", "-4.00", "6.00"), ("refund", "1.00", "7.00"),
        ("adjustment", "-1.00", "6.00")]
    received = outbox(ledger.uow, account, "payment_received")[0]
    assert received["transaction_id"] == payment["id"] and received["method"] == "card"
    issued = outbox(ledger.uow, account, "refund_issued")[0]
    assert issued["order_id"] == "o-1" and issued["amount"] == eur("1.00")


def test_balance_changed_says_the_customer_s_alert_in_days_so_orders_forecasts_only_for_it(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("20.00"), "p1", "P")
    ledger.notification_settings_changed({"event_id": str(uuid.uuid4()), "occurred_at": "2026-01-01T00:00:00Z",
                                          "account_id": account, "low_balance_days": 30})
    ledger.charge(account, eur("5.00"), "c1", "o", "VPS")
    ledger.notification_settings_changed({"event_id": str(uuid.uuid4()), "occurred_at": "2026-01-02T00:00:00Z",
                                          "account_id": account, "low_balance_days": None})
    ledger.charge(account, eur("5.00"), "c2", "o", "VPS")
    changed = outbox(ledger.uow, account, "balance_changed")
    assert [e["alert_in_days"] for e in changed] == [None, 30, None]


def test_alerted_accounts_lists_each_account_with_an_alert_in_days_once_page_by_page(ledger, profiles, database):
    forecasts = BalanceForecasts(database, profiles, clock, Seller.from_env({}), "EUR")
    alerted, quiet = [profiles.add() for _ in range(3)], [profiles.add() for _ in range(2)]
    for account in alerted + quiet:
        ledger.credit_payment(account, eur("1.00"), f"p-{account}", "P")

    def days(account, value, second):
        ledger.notification_settings_changed({"event_id": str(uuid.uuid4()), "account_id": account,
                                              "occurred_at": f"2026-01-01T00:00:{second:02d}Z",
                                              "low_balance_days": value})
    for account in alerted:
        days(account, 10, 1)
    days(quiet[0], 10, 1)
    days(quiet[0], None, 2)   # set, then turned off
    seen, cursor = [], None
    while True:
        page = forecasts.alerted_accounts(2, cursor)
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(alerted) <= set(seen) and not set(quiet) & set(seen) and len(seen) == len(set(seen))


def test_balance_low_is_sent_once_per_crossing(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("20.00"), "p1", "P")
    ledger.notification_settings_changed({"event_id": str(uuid.uuid4()), "occurred_at": "2026-01-01T00:00:00Z",
                                          "account_id": account, "low_balance_threshold": eur("10.00")})
    ledger.charge(account, eur("5.00"), "c1", "o", "VPS")   # 15: above
    ledger.charge(account, eur("6.00"), "c2", "o", "VPS")   # 9: crosses
    ledger.charge(account, eur("1.00"), "c3", "o", "VPS")   # 8: still below
    ledger.credit_payment(account, eur("1.00"), "p2", "P")  # 9: still below
    ledger.credit_payment(account, eur("10.00"), "p3", "P")  # 19: back above
    ledger.charge(account, eur("10.00"), "c4", "o", "VPS")  # 9: crosses again
    lows = outbox(ledger.uow, account, "balance_low")
    assert [(e["balance"]["amount"], e["threshold"]["amount"]) for e in lows] == [("9.00", "10.00"), ("9.00", "10.00")]


def test_a_redelivered_or_older_settings_event_changes_nothing(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("20.00"), "p1", "P")
    newer = {"event_id": str(uuid.uuid4()), "occurred_at": "2026-02-01T00:00:00Z", "account_id": account,
             "low_balance_threshold": None}
    older = {"event_id": str(uuid.uuid4()), "occurred_at": "2026-01-01T00:00:00Z", "account_id": account,
             "low_balance_threshold": eur("50.00")}
    ledger.notification_settings_changed(newer)
    ledger.notification_settings_changed(older)
    ledger.notification_settings_changed(newer)
    ledger.charge(account, eur("1.00"), "c1", "o", "VPS")
    assert outbox(ledger.uow, account, "balance_low") == []


def test_transactions_page_newest_first_with_opaque_cursors(ledger, profiles):
    account = profiles.add()
    for number in range(5):
        ledger.credit_payment(account, eur(f"{number + 1}.00"), f"p{number}", f"P{number}")
    first = ledger.list_transactions(account, limit=2)
    second = ledger.list_transactions(account, limit=2, cursor=first["next_cursor"])
    third = ledger.list_transactions(account, limit=2, cursor=second["next_cursor"])
    amounts = [t["amount"]["amount"] for page in (first, second, third) for t in page["items"]]
    assert amounts == ["5.00", "4.00", "3.00", "2.00", "1.00"]
    assert third["next_cursor"] is None


def test_the_journal_cannot_be_rewritten(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("10.00"), "p", "P")
    for statement in ("UPDATE postings SET amount_minor = 0", "DELETE FROM transactions",
                      "UPDATE invoices SET number = 'x'"):
        with pytest.raises(Exception):
            with ledger.uow.transaction() as session:
                session.execute(text(statement))
    assert ledger.get_balance(account) == eur("10.00")


@pytest.fixture
def own_ledger(tmp_path, profiles, migrated_databases):
    """A ledger on a database of its own, for a test that breaks the books on purpose."""
    with databases(tmp_path, services=("ledger",), copies_of={"ledger": migrated_databases["ledger"]}) as urls:
        engine = make_engine(urls["ledger"], green=False)
        yield Ledger(UnitOfWork(engine, "ledger", Base.metadata), profiles, clock, Seller.from_env({}))
        engine.dispose()


def test_audit_reports_a_posting_that_breaks_the_books(own_ledger, profiles):
    ledger = own_ledger
    account = profiles.add()
    payment = ledger.credit_payment(account, eur("10.00"), "p", "P")
    with ledger.uow.transaction() as session:
        session.execute(insert(Posting).values(transaction_id=payment["id"], ledger_account=f"customer:{account}",
                                               amount_minor=1, currency="EUR", balance_after_minor=None))
    assert {problem["kind"] for problem in ledger.audit()} == {"unbalanced_transaction", "stored_balance_mismatch",
                                                             "transaction_balance_mismatch"}


def test_the_audit_reads_a_long_journal_without_holding_it(own_ledger, profiles):
    """40,000 postings (20,000 payments of one customer written with SQL after a real one, one with a
    wrong balance_after): the audit finds the break and holds 3 MB at most, where reading the
    journal whole held 25."""
    ledger, account = own_ledger, profiles.add()
    first = ledger.credit_payment(account, eur("10.00"), "p", "P")
    count, start = 20_000, first["balance_after"]["amount"]
    start_minor = int(start.replace(".", ""))
    with ledger.uow.transaction() as session:
        session.execute(insert(Transaction.__table__), [
            {"id": f"bulk-{n}", "account_id": account, "kind": "payment", "amount_minor": 100, "currency": "EUR",
             "balance_after_minor": start_minor + 100 * n, "description": "Payment", "idempotency_key": f"bulk-{n}",
             "fingerprint": "bulk", "created_at": clock.now()} for n in range(1, count + 1)])
        session.execute(insert(Posting.__table__), [
            {"transaction_id": f"bulk-{n}", "ledger_account": ledger_account, "amount_minor": minor, "currency": "EUR",
             "balance_after_minor": after} for n in range(1, count + 1)
            for ledger_account, minor, after in (
                (f"customer:{account}", 100, start_minor + 100 * n if n != 10_000 else 7),
                ("house:payments_received:EUR", -100, None))])
        session.execute(text("UPDATE balances SET balance_minor = balance_minor + :added WHERE account_id = :a"),
                        {"added": 100 * count, "a": account})
    tracemalloc.start()
    try:
        problems = ledger.audit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    broken = start_minor + 100 * 10_000
    assert problems == [  # the wrong balance_after, and the next entry measured from it
        {"kind": "balance_after_mismatch", "account_id": account, "expected_minor": broken, "recorded_minor": 7},
        {"kind": "balance_after_mismatch", "account_id": account, "expected_minor": 107,
         "recorded_minor": broken + 100}]
    assert peak < 8_000_000, peak
