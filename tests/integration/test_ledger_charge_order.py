"""Orders' one call: a list price priced for the customer and charged in one transaction (issue 16, item 1).

On a real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres), profile the shared fake:
the buyer's data come from the ledger's copy of the customer, kept from profile's events, and
profile is asked only when there is no copy yet.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Select

from services.common.locks import is_postgres
from tests import fakes
from tests.integration.test_ledger_invoices import GERMAN_COMPANY
from tests.integration.test_ledger_journal import (database, eur, ledger, outbox, profiles,  # noqa: F401 (fixtures)
                                                   refused)
from tests.support import statements_compiled, statements_executed, transactions_begun

pytestmark = pytest.mark.integration

LINE = {"description": "VPS M, 1 months", "gross": eur("11.99"), "period_from": "2026-01-01",
        "period_to": "2026-01-31"}


def profile_event(account_id: str, kind: str = "profile_changed", at: datetime | None = None, **changes) -> dict:
    """Profile's event (``kind`` says which, for the reader: the ledger keeps its copy from any of them alike)."""
    return {**fakes.profile_event(account_id, at, **changes), "fields": ["company_name"]}


def test_a_list_price_is_priced_for_a_reverse_charge_company_and_charged_with_its_invoice(ledger, profiles):
    account = profiles.add(**GERMAN_COMPANY)
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    charge = ledger.charge_order(account, eur("11.99"), "order:o-1:activate", "o-1", "VPS M, 1 months", [LINE])
    assert charge["amount"] == eur("-9.75") and charge["balance_after"] == eur("90.25")
    invoice = ledger.get_invoice(charge["invoice_id"])
    assert invoice["tax_treatment"] == "reverse_charge" and invoice["gross"] == eur("9.75")
    assert [line["gross"] for line in invoice["lines"]] == [eur("9.75")]
    assert invoice["buyer"]["company_name"] == "Beispiel GmbH"


def test_lines_priced_one_by_one_still_add_up_to_the_priced_amount(ledger, profiles):
    account = profiles.add(**GERMAN_COMPANY)
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    lines = [dict(LINE, gross=eur("0.01")), dict(LINE, gross=eur("0.01")), dict(LINE, gross=eur("11.99"))]
    charge = ledger.charge_order(account, eur("12.01"), "k", "o-1", "VPS M", lines)
    invoice = ledger.get_invoice(charge["invoice_id"])
    assert sum(int(line["gross"]["amount"].replace(".", "")) for line in invoice["lines"]) == \
        int(invoice["gross"]["amount"].replace(".", "")) == 976


def test_a_replay_of_the_same_list_price_answers_the_first_charge_even_after_the_buyer_changed(ledger, profiles):
    account = profiles.add(**GERMAN_COMPANY)
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    first = ledger.charge_order(account, eur("11.99"), "order:o-1:activate", "o-1", "VPS M, 1 months", [LINE])
    # The company is no longer reverse-charged: a new charge would cost the gross, the replay does not.
    ledger.profile_changed(profile_event(account, **{**GERMAN_COMPANY, "country": "PL", "vat_id": "PL1234563218"}))
    again = ledger.charge_order(account, eur("11.99"), "order:o-1:activate", "o-1", "VPS M, 1 months", [LINE])
    assert again == first and ledger.get_balance(account) == eur("90.25")
    other = refused(lambda: ledger.charge_order(account, eur("12.99"), "order:o-1:activate", "o-1", "VPS M, 1 months"))
    assert other.error_code == "idempotency_conflict"


def test_the_buyer_comes_from_the_copy_kept_from_profile_s_events_without_asking_profile(ledger, profiles):
    account = profiles.add()
    ledger.account_registered(profile_event(account, "account_registered"))
    ledger.profile_changed(profile_event(account, **GERMAN_COMPANY))
    ledger.profile_changed(profile_event(account, at=datetime.now(timezone.utc) - timedelta(minutes=5),
                                         company_name="Older GmbH"))  # late and older: ignored
    ledger.credit_payment(account, eur("100.00"), "p", "P", method="card")
    asked = profiles.calls
    charge = ledger.charge_order(account, eur("11.99"), "k", "o-1", "VPS M, 1 months", [LINE])
    assert profiles.calls == asked == 0
    invoice = ledger.get_invoice(charge["invoice_id"])
    assert invoice["buyer"]["company_name"] == "Beispiel GmbH" and invoice["tax_treatment"] == "reverse_charge"


def test_without_a_copy_profile_is_asked_once_and_its_answer_kept(ledger, profiles):
    account = profiles.add(**GERMAN_COMPANY)
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    ledger.charge_order(account, eur("11.99"), "k1", "o-1", "VPS M")
    ledger.charge_order(account, eur("11.99"), "k2", "o-2", "VPS M")
    assert profiles.calls == 1
    assert refused(lambda: ledger.charge_order("ghost-1", eur("1.00"), "k", "o", "VPS")).error_code == "not_found"


def test_a_charge_without_the_funds_moves_nothing_and_leaves_its_key_unused(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("5.00"), "p", "P")
    assert refused(lambda: ledger.charge_order(account, eur("9.90"), "k", "o-1", "VPS S")).error_code == \
        "insufficient_funds"
    ledger.credit_payment(account, eur("5.00"), "p2", "P")
    assert ledger.charge_order(account, eur("9.90"), "k", "o-1", "VPS S")["balance_after"] == eur("0.10")


def test_an_order_s_charge_and_a_payment_each_take_one_transaction(ledger, profiles):
    account = profiles.add()
    ledger.account_registered(profile_event(account, "account_registered"))
    with transactions_begun(ledger.uow.engine) as begun:
        ledger.credit_payment(account, eur("100.00"), "p", "P")
    assert len(begun) == 1
    with transactions_begun(ledger.uow.engine) as begun:
        ledger.credit_payment(account, eur("10.00"), "p2", "P", method="card")
    assert len(begun) == 1
    with transactions_begun(ledger.uow.engine) as begun:
        ledger.charge_order(account, eur("9.90"), "order:o-1:activate", "o-1", "VPS S, 1 months")
    assert len(begun) == 1
    assert [e["kind"] for e in outbox(ledger.uow, account, "balance_changed")] == ["payment", "payment", "charge"]


def test_a_payment_writes_in_one_statement_on_postgresql_and_its_events_in_order(ledger, profiles):
    account = profiles.add()
    ledger.account_registered(profile_event(account, "account_registered"))
    with statements_compiled(ledger.uow.engine) as first_payment, \
            statements_executed(ledger.uow.engine) as first_built:
        paid = ledger.credit_payment(account, eur("100.00"), "p", "P")
    sent = [line for line, _ in first_payment]
    writes = [statement for statement in sent if not statement.startswith("SELECT")]
    if is_postgres(ledger.uow.engine):   # the journal row, postings and balance as CTEs of the events' insert
        assert len(writes) == 1 and writes[0].startswith("WITH JOURNAL AS"), sent
    else:
        assert [" ".join(statement.split()[:3]) for statement in writes] == [
            "INSERT INTO TRANSACTIONS", "INSERT INTO POSTINGS", "UPDATE BALANCES SET", "INSERT INTO OUTBOX"], sent
    assert [(e["type"], e["transaction_id"]) for e in outbox(ledger.uow, account)] == [
        ("balance_changed", paid["id"]), ("payment_received", paid["id"])]
    with statements_compiled(ledger.uow.engine) as again, statements_executed(ledger.uow.engine) as built_again:
        ledger.credit_payment(account, eur("20.00"), "p2", "P")
    # Compiled once: the next payment's statements are the same compiled objects (SQLAlchemy's cache),
    # and built once: the same statement objects, whose cache keys are not worked out again (every one
    # on PostgreSQL; SQLite's four writes are built for each movement).
    assert [compiled for _, compiled in again] == [compiled for _, compiled in first_payment], again
    if not is_postgres(ledger.uow.engine):
        built_again = [statement for statement in built_again if isinstance(statement, Select)]
        first_built = [statement for statement in first_built if isinstance(statement, Select)]
    assert len(built_again) == len(first_built) >= 3 and all(
        mine is first for mine, first in zip(built_again, first_built)), (built_again, first_built)
    with statements_executed(ledger.uow.engine) as panel_reads:   # the panel's reads: built once too
        for _ in range(2):
            assert ledger.get_balance(account) == eur("120.00")
            assert [t["balance_after"] for t in ledger.list_transactions(account)["items"]] == [
                eur("120.00"), eur("100.00")]
    assert len(panel_reads) == 4 and panel_reads[0] is panel_reads[2] and panel_reads[1] is panel_reads[3], panel_reads
    assert ledger.audit() == []   # every posting there, the journal balanced, the balance its sum


def test_a_charge_for_an_account_nobody_has_writes_nothing(ledger, profiles):
    from sqlalchemy import select
    from services.ledger.models import Balance
    assert refused(lambda: ledger.charge_order("ghost-2", eur("1.00"), "k", "o", "VPS")).error_code == "not_found"
    assert refused(lambda: ledger.charge("ghost-2", eur("1.00"), "k", "o", "VPS")).error_code == "not_found"
    with ledger.uow.transaction() as session:
        assert session.scalar(select(Balance).where(Balance.account_id == "ghost-2")) is None


# --- many orders' charges in one call: the lifecycle clock's renewals (issue 16, item 10) ----------------

def renewal(account: str, order: str, amount: str = "9.90", key: str | None = None) -> dict:
    """``charge_order``'s arguments for an order's first renewal, as orders' clock sends them."""
    line = {"description": "VPS S, renewal", "gross": eur(amount), "period_from": "2026-02-01",
            "period_to": "2026-02-28"}
    return {"account_id": account, "amount": eur(amount), "idempotency_key": key or f"order:{order}:renew:1",
            "reference": order, "description": "VPS S, renewal for 1 months", "lines": [line]}


def registered(ledger, profiles, funds: str, **changes) -> str:
    account = profiles.add(**changes)
    ledger.account_registered(profile_event(account, "account_registered", **changes))
    ledger.credit_payment(account, eur(funds), "p", "P")
    return account


def test_many_charges_are_taken_in_one_transaction_each_answered_in_its_place(ledger, profiles):
    rich, short, company = (registered(ledger, profiles, "30.00"), registered(ledger, profiles, "10.00"),
                            registered(ledger, profiles, "50.00", **GERMAN_COMPANY))
    charges = [renewal(rich, "o-1"), renewal(rich, "o-2"), renewal(short, "o-3"), renewal(short, "o-4"),
               renewal(company, "o-5", "11.99"), renewal(rich, "o-6")]
    with transactions_begun(ledger.uow.engine) as begun:
        answers = ledger.charge_orders(charges)
    assert len(begun) == 1
    assert [sorted(answer) for answer in answers] == [["transaction"]] * 3 + [["error"]] + [["transaction"]] * 2
    assert answers[3]["error"]["code"] == "insufficient_funds"   # the short account's second order
    assert [a["transaction"]["balance_after"] for a in answers if "transaction" in a] == [
        eur("20.10"), eur("10.20"), eur("0.10"), eur("40.25"), eur("0.30")]
    assert answers[4]["transaction"]["amount"] == eur("-9.75")    # priced for the customer, as charge_order does
    # numbered together, in the list's order, without a gap: the refused charge took no number
    numbers = [ledger.get_invoice(a["transaction"]["invoice_id"])["number"] for a in answers if "transaction" in a]
    sequence = [int(number.split("/")[1]) for number in numbers]
    assert sequence == list(range(sequence[0], sequence[0] + 5))
    issued = outbox(ledger.uow, rich, "invoice_issued")
    assert [event["number"] for event in issued] == [numbers[0], numbers[1], numbers[4]]
    assert [e["kind"] for e in outbox(ledger.uow, short, "balance_changed")] == ["payment", "charge"]
    assert ledger.audit() == []


def test_a_call_again_answers_the_first_charges_and_each_one_replays_alone(ledger, profiles):
    account = registered(ledger, profiles, "30.00")
    charges = [renewal(account, "o-1"), renewal(account, "o-2")]
    first = ledger.charge_orders(charges)
    assert ledger.charge_orders(charges) == first
    # the clock's lone retry of one order (its lease expired) meets the same fingerprint
    assert ledger.charge_order(**charges[1]) == first[1]["transaction"]
    again = ledger.charge_orders([renewal(account, "o-1", "12.00"), renewal(account, "o-3")])
    assert again[0]["error"]["code"] == "idempotency_conflict" and "transaction" in again[1]
    assert ledger.get_balance(account) == eur("0.30")


def test_refusals_of_their_own_and_an_account_without_a_copy_asked_of_profile_once(ledger, profiles):
    known = registered(ledger, profiles, "30.00")
    unseen = profiles.add()   # no event yet: asked of profile, and its answer kept
    asked = profiles.calls
    answers = ledger.charge_orders([
        renewal("ghost-3", "o-1"), {"account_id": known, "amount": "9.90"}, "not a charge",
        renewal(unseen, "o-2"), renewal(known, "o-3")])
    assert [answer.get("error", {}).get("code") for answer in answers] == [
        "not_found", "validation_error", "validation_error", "insufficient_funds", None]
    assert profiles.calls == asked + 2   # the ghost and the unseen account, once each
    ledger.credit_payment(unseen, eur("10.00"), "p", "P")
    assert "transaction" in ledger.charge_orders([renewal(unseen, "o-2")])[0]
    assert profiles.calls == asked + 2   # the kept answer


def test_more_charges_than_one_call_takes_are_refused_whole(ledger, profiles):
    account = registered(ledger, profiles, "30.00")
    too_many = [renewal(account, f"o-{n}") for n in range(201)]
    assert refused(lambda: ledger.charge_orders(too_many)).error_code == "validation_error"
    assert refused(lambda: ledger.charge_orders({"charges": []})).error_code == "validation_error"
    assert ledger.get_balance(account) == eur("30.00") and ledger.charge_orders([]) == []
