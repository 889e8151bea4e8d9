"""Balance, transactions, invoices and payment methods over HTTP, money moved over RPC."""
from __future__ import annotations

import io
import uuid

import pytest
from pypdf import PdfReader

from tests.support import bus_client, error_code

pytestmark = pytest.mark.e2e

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


@pytest.fixture(scope="module")
def orders_service(stack):
    """Charges come from the orders service alone: its login."""
    with bus_client(stack.env, "orders") as client:
        yield client


def test_a_customer_sees_payments_charges_invoices_and_their_pdf(customer, payments, orders_service):
    anna = customer(postal_address=POSTAL)
    account = anna.profile["id"]
    assert anna.get("/api/v1/balance").json() == {"balance": eur("0.00")}

    payment = payments.ledger.credit_payment(account, eur("50.00"), f"pay-{uuid.uuid4()}", "P-1", "blik")
    charge = orders_service.ledger.charge(account, eur("12.30"), f"charge-{uuid.uuid4()}", "order-1", "VPS S, 1 month")

    assert anna.get("/api/v1/balance").json() == {"balance": eur("37.70")}
    page = anna.get("/api/v1/balance/transactions?limit=1")
    assert page.status_code == 200
    assert [t["id"] for t in page.json()["items"]] == [charge["id"]]
    rest = anna.get(f"/api/v1/balance/transactions?limit=1&cursor={page.json()['next_cursor']}").json()
    assert [(t["id"], t["kind"], t["amount"]) for t in rest["items"]] == [(payment["id"], "payment", eur("50.00"))]
    assert rest["next_cursor"] is None

    invoices = anna.get("/api/v1/invoices").json()["items"]
    assert [i["id"] for i in invoices] == [charge["invoice_id"]]
    invoice = anna.get(f"/api/v1/invoices/{charge['invoice_id']}").json()
    assert (invoice["net"], invoice["vat"], invoice["gross"]) == (eur("10.00"), eur("2.30"), eur("12.30"))
    assert invoice["buyer"]["name"] == "Anna Nowak" and invoice["buyer"]["postal_address"] == POSTAL
    pdf = anna.get(f"/api/v1/invoices/{charge['invoice_id']}/pdf")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert invoice["number"] in text and "Anna Nowak" in text
    assert pdf.headers["Content-Disposition"] == f'inline; filename="invoice-{invoice["number"].replace("/", "-")}.pdf"'
    assert anna.get(f"/api/v1/invoices/{charge['invoice_id']}/pdf").content == pdf.content   # kept, not redrawn

    stranger = customer()
    assert error_code(stranger.get(f"/api/v1/invoices/{charge['invoice_id']}")) == "not_found"
    assert stranger.get(f"/api/v1/invoices/{charge['invoice_id']}/pdf").status_code == 404
    assert stranger.get("/api/v1/balance").json() == {"balance": eur("0.00")}


def test_bad_list_parameters_answer_in_the_error_shape(customer):
    anna = customer()
    for query in ("limit=0", "limit=abc", "cursor=not-a-cursor", "colour=red"):
        response = anna.get(f"/api/v1/balance/transactions?{query}")
        assert response.status_code == 400 and error_code(response) == "validation_error", query


def test_a_company_awaiting_review_sees_every_method_blocked(customer):
    company = customer(profile_type="company", company_name="Firma sp. z o.o.", vat_id="PL1234563218",
                       postal_address=POSTAL)
    methods = company.get("/api/v1/payment-methods").json()
    assert methods["items"] and methods["next_cursor"] is None
    assert all(m["available"] is False and m["reason"] == "blocked until your company data are verified"
               for m in methods["items"])


def mapped_libraries(pid: int) -> set[str]:
    """The shared objects a running process has loaded (a C extension shows here once imported)."""
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in maps if line.rstrip().endswith(".so")}


def test_pdfs_are_rendered_by_the_document_worker_never_by_the_ledger_that_charges(customer, payments,
                                                                                  orders_service, stack):
    anna = customer()
    payments.ledger.credit_payment(anna.profile["id"], eur("20.00"), f"pay-{uuid.uuid4()}", "P-1")
    charge = orders_service.ledger.charge(anna.profile["id"], eur("9.90"), f"charge-{uuid.uuid4()}", "order-2", "VPS S")
    assert anna.get(f"/api/v1/invoices/{charge['invoice_id']}/pdf").content.startswith(b"%PDF")
    # ReportLab's C accelerator is loaded with ReportLab: in the worker, and not in the ledger.
    assert "_rl_accel.abi3.so" in mapped_libraries(stack.pid("ledger_documents"))
    assert "_rl_accel.abi3.so" not in mapped_libraries(stack.pid("ledger"))
