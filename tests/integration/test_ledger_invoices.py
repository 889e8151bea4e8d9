"""Issue 5's wiring in the ledger on a real database: prices, invoices, credit notes, methods (PDFs:
test_ledger_invoice_pdfs.py)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from services.common.money import Money
from tests.integration.test_ledger_journal import (database, eur, ledger, outbox, profiles,  # noqa: F401 (fixtures)
                                                   refused)
from tests.support import statements_sent

pytestmark = pytest.mark.integration

GERMAN_COMPANY = dict(country="DE", profile_type="company", company_name="Beispiel GmbH", vat_id="DE136695976",
                      company_verification="verified", first_name="Hans", last_name="Müller")


@pytest.mark.parametrize("buyer,expected", [
    (dict(country="DE"), ("10.08", "1.91", "11.99", "19.00", "standard")),
    (dict(country="FR"), ("9.99", "2.00", "11.99", "20.00", "standard")),
    (dict(country="PL", profile_type="company", company_name="Firma sp. z o.o.", vat_id="PL1234563218",
          company_verification="verified"), ("9.75", "2.24", "11.99", "23.00", "standard")),
    (GERMAN_COMPANY, ("9.75", "0.00", "9.75", "0.00", "reverse_charge")),
    (dict(country="US"), ("11.99", "0.00", "11.99", "0.00", "outside_scope")),
])
def test_price_splits_a_list_price_for_each_kind_of_customer(ledger, profiles, buyer, expected):
    account = profiles.add(**buyer)
    price = ledger.price(account, eur("11.99"))
    assert (price["net"]["amount"], price["vat"]["amount"], price["gross"]["amount"], price["vat_rate"],
            price["tax_treatment"]) == expected


def test_price_of_an_account_nobody_has_is_not_found(ledger):
    assert refused(lambda: ledger.price("ghost", eur("1.00"))).error_code == "not_found"


def test_a_charge_issues_an_invoice_with_the_buyer_as_they_were_then(ledger, profiles):
    account = profiles.add(**GERMAN_COMPANY)
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    charge = ledger.charge(account, eur("19.50"), "c", "order-7", "VPS M, 2 months", lines=[
        {"description": "VPS M", "gross": eur("9.75"), "period_from": "2026-01-01", "period_to": "2026-01-31"},
        {"description": "VPS M", "gross": eur("9.75"), "period_from": "2026-02-01", "period_to": "2026-02-28"}])
    profiles.accounts[account]["company_name"] = "Renamed GmbH"  # later changes do not touch the invoice
    invoice = ledger.get_invoice(charge["invoice_id"])
    assert invoice["kind"] == "invoice" and invoice["order_id"] == "order-7" and invoice["corrects"] is None
    assert invoice["buyer"]["company_name"] == "Beispiel GmbH" and invoice["buyer"]["vat_id"] == "DE136695976"
    assert invoice["seller"]["country"] == "PL"
    assert invoice["tax_treatment"] == "reverse_charge"
    assert [line["period_from"] for line in invoice["lines"]] == ["2026-01-01", "2026-02-01"]
    assert invoice["gross"] == eur("19.50")
    issued = outbox(ledger.uow, account, "invoice_issued")
    assert [(e["invoice_id"], e["number"], e["kind"]) for e in issued] == [
        (invoice["id"], invoice["number"], "invoice")]


def test_charge_lines_that_do_not_add_up_are_refused_and_nothing_moves(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    error = refused(lambda: ledger.charge(account, eur("10.00"), "c", "o", "VPS",
                                          lines=[{"description": "VPS", "gross": eur("9.99")}]))
    assert error.error_code == "validation_error" and "lines" in error.fields
    error = refused(lambda: ledger.charge(account, eur("10.00"), "c", "o", "VPS",
                                          lines=[{"description": "VPS", "gross": eur("10.00"), "colour": "red"}]))
    assert error.error_code == "validation_error"
    assert ledger.get_balance(account) == eur("100.00")
    assert ledger.list_invoices(account)["items"] == []


def test_credit_notes_reference_their_invoice_and_the_documents_match_the_ledger(ledger, profiles):
    account = profiles.add(country="DE")
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    first = ledger.charge(account, eur("30.00"), "c1", "order-1", "Dedicated S")
    second = ledger.charge(account, eur("11.99"), "c2", "order-2", "VPS S")
    refund = ledger.refund(account, eur("10.01"), "r1", "order-1", first["id"], "unused days")
    ledger.refund(account, eur("11.99"), "r2", "order-2", second["id"], "cancelled")
    note = ledger.get_invoice(refund["credit_note_id"])
    assert note["kind"] == "credit_note" and note["corrects"] == first["invoice_id"]
    assert note["gross"] == eur("-10.01") and note["order_id"] == "order-1"
    documents = ledger.list_invoices(account)["items"]
    invoiced = sum(Money.from_wire(d["gross"]).minor for d in documents)
    moved = sum(-Money.from_wire(t["amount"]).minor for t in ledger.list_transactions(account)["items"]
                if t["kind"] in ("charge", "refund"))
    assert invoiced == moved == 3000 + 1199 - 1001 - 1199
    for document in documents:
        assert Money.from_wire(document["net"]) + Money.from_wire(document["vat"]) == Money.from_wire(document["gross"])


def test_invoice_numbers_run_on_across_invoices_and_credit_notes(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    charge = ledger.charge(account, eur("10.00"), "c1", "o", "VPS")
    ledger.refund(account, eur("1.00"), "r1", "o", charge["id"])
    ledger.charge(account, eur("10.00"), "c2", "o", "VPS")
    numbers = [d["number"] for d in ledger.list_invoices(account)["items"]]
    sequence = [int(number.split("/")[1]) for number in numbers]
    assert sequence == [sequence[0], sequence[0] - 1, sequence[0] - 2]  # newest first, consecutive


@contextmanager
def statements(uow):
    """The SQL the ledger sends while the block runs, and ``COMMIT`` where each transaction commits."""
    sent = []

    def before(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split()))

    def commit(conn):
        sent.append("COMMIT")

    event.listen(uow.engine, "before_cursor_execute", before)
    event.listen(uow.engine, "commit", commit)
    try:
        yield sent
    finally:
        event.remove(uow.engine, "before_cursor_execute", before)
        event.remove(uow.engine, "commit", commit)


def test_the_years_counter_is_the_last_thing_a_charge_and_a_refund_touch_before_commit(database, ledger, profiles):
    # Every charge in the system waits for the year's counter row while another holds it: it is taken
    # last, so that it is held from that statement to the commit only.
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    ledger.charge(account, eur("10.00"), "c0", "o", "VPS")  # the year's first document opens its row
    with statements(database) as sent:
        charge = ledger.charge(account, eur("10.00"), "c1", "o", "VPS")
        ledger.refund(account, eur("1.00"), "r1", "o", charge["id"])
    counter_at = [i for i, statement in enumerate(sent) if "invoice_counters" in statement]
    assert len(counter_at) == 2  # one for the charge, one for the refund: the year is open already
    for at in counter_at:
        commit = sent.index("COMMIT", at)
        after = sent[at + 1:commit]
        if database.engine.dialect.name == "postgresql":
            assert after == [] and "INSERT INTO invoices" in sent[at] and "INSERT INTO outbox" in sent[at]
        else:  # one writer holds the whole database anyway: the invoice and its event follow
            assert [statement.split(" (")[0] for statement in after] == ["INSERT INTO invoices", "INSERT INTO outbox"]
    issued = outbox(database, account, "invoice_issued")[1:]
    documents = {d["id"]: d for d in ledger.list_invoices(account)["items"]}
    assert [e["number"] for e in issued] == [documents[e["invoice_id"]]["number"] for e in issued]
    first, second = (int(e["number"].split("/")[1]) for e in issued)
    assert second == first + 1


def test_another_customers_invoice_is_not_found(ledger, profiles):
    alice, bob = profiles.add(), profiles.add()
    ledger.credit_payment(alice, eur("10.00"), "p", "P")
    invoice_id = ledger.charge(alice, eur("1.00"), "c", "o", "VPS")["invoice_id"]
    assert refused(lambda: ledger.get_invoice(invoice_id, bob)).error_code == "not_found"
    assert refused(lambda: ledger.get_invoice("x" * 5000)).error_code == "not_found"
    assert ledger.get_invoice(invoice_id, alice)["id"] == invoice_id


def test_payment_methods_of_an_unreviewed_company_are_blocked_with_the_reason(ledger, profiles):
    account = profiles.add(profile_type="company", company_name="Firma", vat_id="PL1234563218",
                           company_verification="pending")
    methods = ledger.payment_methods(account)["items"]
    assert methods and all(not m["available"] for m in methods)
    assert {m["reason"] for m in methods} == {"blocked until your company data are verified"}
    error = refused(lambda: ledger.credit_payment(account, eur("10.00"), "p", "P", "card"))
    assert error.error_code == "method_not_offered"
    assert ledger.get_balance(account) == eur("0.00")


def test_payment_methods_without_a_postal_address_say_so(ledger, profiles):
    account = profiles.add(postal_address=None)
    reasons = {m["reason"] for m in ledger.payment_methods(account)["items"]}
    assert reasons == {"postal address required"}


def test_a_method_offered_elsewhere_is_refused_and_an_offered_one_is_accepted(ledger, profiles):
    account = profiles.add(country="DE")
    ids = [m["id"] for m in ledger.payment_methods(account)["items"]]
    assert "sepa_transfer" in ids and "bank_transfer_pln" not in ids
    error = refused(lambda: ledger.credit_payment(account, eur("10.00"), "p", "P", "bank_transfer_pln"))
    assert error.error_code == "method_not_offered"
    assert ledger.credit_payment(account, eur("10.00"), "p", "P", "sepa_transfer")["method"] == "sepa_transfer"


def test_an_invoice_paid_from_the_balance_is_settled_at_issue_and_dated_the_day_of_sale(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    charge = ledger.charge(account, eur("19.90"), "c", "order-7", "VPS M")
    invoice = ledger.get_invoice(charge["invoice_id"])
    assert invoice["settled_at"] == charge["at"]
    assert invoice["sale_date"] == charge["at"][:10]
    assert invoice["corrects_number"] is None and invoice["corrects_issued_at"] is None
    assert ledger.list_invoices(account)["items"] == [invoice]


def test_an_invoice_taken_into_an_overdraft_is_settled_when_the_balance_is_back_at_zero(ledger, profiles):
    account = profiles.add()
    ledger.set_credit_limit(account, eur("50.00"), "operator")
    ledger.credit_payment(account, eur("10.00"), "p1", "P")
    charge = ledger.charge(account, eur("30.00"), "c", "order-7", "VPS L")          # balance -20.00
    assert ledger.get_invoice(charge["invoice_id"])["settled_at"] is None
    ledger.credit_payment(account, eur("15.00"), "p2", "P")                          # -5.00: still owed
    assert ledger.get_invoice(charge["invoice_id"])["settled_at"] is None
    paid = ledger.credit_payment(account, eur("5.00"), "p3", "P")                    # 0.00
    assert ledger.get_invoice(charge["invoice_id"])["settled_at"] == paid["at"]


def test_a_credit_note_names_the_corrected_invoice_by_number_and_date_and_keeps_its_sale_date(ledger, profiles):
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    charge = ledger.charge(account, eur("19.90"), "c", "order-7", "VPS M")
    refund = ledger.refund(account, eur("5.00"), "r", "order-7", charge["id"], "Unused days")
    invoice, note = ledger.get_invoice(charge["invoice_id"]), ledger.get_invoice(refund["credit_note_id"])
    assert note["corrects"] == invoice["id"] and note["corrects_number"] == invoice["number"]
    assert note["corrects_issued_at"] == invoice["issued_at"] and note["sale_date"] == invoice["sale_date"]
    assert note["settled_at"] == refund["at"]


@pytest.mark.parametrize("charges", [2, 6])
def test_a_page_of_invoices_reads_their_charges_and_corrected_invoices_in_one_statement_each(ledger, profiles,
                                                                                            database, charges):
    account = profiles.add()
    ledger.set_credit_limit(account, eur("50.00"), "operator")
    ledger.credit_payment(account, eur("10.00"), "p", "P")
    taken = [ledger.charge(account, eur("4.00"), f"c{n}", f"order-{n}", "VPS S") for n in range(charges)]
    ledger.refund(account, eur("1.00"), "r", "order-0", taken[0]["id"], "Unused days")   # a credit note
    if (owed := 4 * charges - 11) > 0:
        ledger.credit_payment(account, eur(f"{owed:.2f}"), "p2", "P")                       # back at 0.00
    with statements_sent(database.engine) as sent:
        page = ledger.list_invoices(account)["items"]
    # The page, its charges, the corrected invoice, then one look for the day each overdrawn charge
    # was settled: as many statements for 6 invoices as for 2 but those looks.
    overdrawn = sum(1 for charge in taken if Money.from_wire(charge["balance_after"]).is_negative())
    assert [statement.split(".")[0] for statement in sent[:3]] == ["SELECT INVOICES", "SELECT TRANSACTIONS",
                                                                   "SELECT INVOICES"], sent
    assert len(sent) == 3 + overdrawn, sent
    assert page == [ledger.get_invoice(invoice["id"]) for invoice in page]   # each as it is shown alone
    assert [invoice["kind"] for invoice in page] == ["credit_note"] + ["invoice"] * charges


def test_documents_issued_before_sale_dates_get_theirs_from_the_rule(ledger, profiles):
    from sqlalchemy import select

    from services.ledger.invoice_view import invoice_view
    from services.ledger.models import Invoice
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    charge = ledger.charge(account, eur("19.90"), "c", "order-7", "VPS M")
    refund = ledger.refund(account, eur("5.00"), "r", "order-7", charge["id"], "Unused days")
    with ledger.uow.transaction() as session:
        # a document as stored before (the journal is append-only, so a copy stands in for it)
        def as_stored_before(invoice_id):
            row = session.scalar(select(Invoice).where(Invoice.id == invoice_id))
            return Invoice(id=row.id, kind=row.kind, number=row.number, corrects=row.corrects,
                           transaction_id=row.transaction_id,
                           document={k: v for k, v in row.document.items() if k not in ("sale_date", "corrects_number")})
        invoice = invoice_view(session, as_stored_before(charge["invoice_id"]))
        note = invoice_view(session, as_stored_before(refund["credit_note_id"]))
    assert invoice["sale_date"] == invoice["issued_at"][:10] and note["sale_date"] == invoice["sale_date"]
    assert note["corrects_number"] == invoice["number"] and invoice["settled_at"] == charge["at"]
