"""Statements and the year's archive over the whole stack (docs/requirements.md A8).

Two days of payments, charges, a refund and adjustments; the statement of the second day opens
with the first day's closing balance, and opening plus every movement is the closing balance,
the ledger's balance; the CSV parsed back says the same; the PDF is drawn by the document worker
in the customer's language; the year's ZIP holds every invoice and credit note as a PDF that
parses, with an index that lists them.
"""
from __future__ import annotations

import csv
import io
import time
import uuid
import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from pypdf import PdfReader

from services.common.clock import move_clock
from tests.support import error_code, eventually

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


def vps(plan_id: str) -> dict:
    return {"plan_id": plan_id, "period_months": 1,
            "fields": {"hostname": f"h{uuid.uuid4().hex[:6]}.example.com", "os_template": "debian-12"}}


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


@pytest.fixture
def tomorrow(stack):
    """Moves every process's clock one day on; put back afterwards."""
    yield lambda: move_clock(stack.env["CLOCK_FILE"], timedelta(days=1).total_seconds())
    move_clock(stack.env["CLOCK_FILE"], 0.0)


def test_a_statement_adds_up_against_the_ledger_in_json_csv_and_pdf(customer, api, staff, payments, tomorrow):
    anna = customer(postal_address=POSTAL, language="pl")
    account = anna.profile["id"]
    day1 = datetime.now(timezone.utc).date()
    payments.ledger.credit_payment(account, eur("100.00"), f"pay-{uuid.uuid4()}", "bank-1")
    assert anna.post("/api/v1/orders", vps("vps-s")).status_code == 201
    staff.ledger.adjust(account, eur("5.00"), f"adj-{uuid.uuid4()}", "goodwill", "tests")
    first_day_closing = staff.ledger.get_balance(account)

    tomorrow()
    day2 = day1 + timedelta(days=1)
    token = api.post("/api/v1/sessions", {"login": anna.profile["login"], "password": anna.password}).json()["token"]
    anna = api.as_customer(token, profile=anna.profile, password=anna.password)
    payments.ledger.credit_payment(account, eur("20.00"), f"pay-{uuid.uuid4()}", "bank-2")
    order = anna.post("/api/v1/orders", vps("vps-m")).json()
    cancelled = anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now"})
    assert cancelled.status_code == 200 and Decimal(cancelled.json()["refund"]["amount"]) > 0
    staff.ledger.adjust(account, eur("-2.50"), f"adj-{uuid.uuid4()}", "correction", "tests")

    response = anna.get(f"/api/v1/balance/statement?from={day2}&to={day2}")
    assert response.status_code == 200, response.text
    statement = response.json()
    assert statement["opening_balance"] == first_day_closing
    assert statement["closing_balance"] == staff.ledger.get_balance(account)
    movements = statement["transactions"]
    assert [tx["kind"] for tx in movements] == ["payment", "charge", "refund", "adjustment"]
    assert Decimal(statement["opening_balance"]["amount"]) + sum(Decimal(tx["amount"]["amount"]) for tx in movements) \
        == Decimal(statement["closing_balance"]["amount"])
    invoices = {i["id"]: i["number"] for i in anna.get("/api/v1/invoices").json()["items"]}
    charge, refund = movements[1], movements[2]
    assert charge["reference"] == order["id"] and charge["invoice_number"] == invoices[charge["invoice_id"]]
    assert refund["invoice_number"] == invoices[refund["credit_note_id"]]
    assert movements[0]["reference"] == "bank-2" and movements[3]["invoice_number"] is None
    assert statement["totals"]["adjustment"] == eur("-2.50") and statement["language"] == "pl"

    both = anna.get(f"/api/v1/balance/statement?from={day1}&to={day2}").json()
    assert both["opening_balance"] == eur("0.00") and both["closing_balance"] == statement["closing_balance"]
    assert len(both["transactions"]) == 7

    as_csv = anna.get(f"/api/v1/balance/statement?from={day2}&to={day2}&format=csv")
    assert as_csv.status_code == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    assert anna.get(f"/api/v1/balance/statement?from={day2}&to={day2}",
                    headers={"Accept": "text/csv"}).text == as_csv.text
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0]) == ["data", "rodzaj", "referencja", "numer faktury", "opis", "kwota", "saldo po operacji",
                             "waluta"]
    opening, *middle, closing = rows
    assert (opening["rodzaj"], closing["rodzaj"]) == ("saldo otwarcia", "saldo zamknięcia")
    assert [row["rodzaj"] for row in middle] == ["wpłata", "obciążenie", "zwrot", "korekta"]
    assert Decimal(opening["saldo po operacji"]) + sum(Decimal(row["kwota"]) for row in middle) \
        == Decimal(closing["saldo po operacji"]) == Decimal(statement["closing_balance"]["amount"])
    assert [row["numer faktury"] for row in middle] == [tx["invoice_number"] or "" for tx in movements]

    as_pdf = anna.get(f"/api/v1/balance/statement?from={day2}&to={day2}", headers={"Accept": "application/pdf"})
    assert as_pdf.status_code == 200 and as_pdf.headers["Content-Type"] == "application/pdf"
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(as_pdf.content)).pages).split())
    closing_pl = statement["closing_balance"]["amount"].replace(".", ",")
    assert "Wyciąg z rachunku" in text and "Saldo zamknięcia" in text and closing_pl in text
    assert charge["invoice_number"] in text, text

    for bad in (f"from={day2}&to={day1}", f"from={day1 - timedelta(days=400)}&to={day1}", f"to={day1}",
                f"from=yesterday&to={day1}", f"from={day1}&to={day1}&format=xml"):
        refused = anna.get(f"/api/v1/balance/statement?{bad}")
        assert refused.status_code == 400 and error_code(refused) == "validation_error", bad


def test_the_years_archive_holds_every_invoice_and_credit_note_as_a_pdf_with_an_index(customer, payments):
    anna = customer(postal_address=POSTAL)
    payments.ledger.credit_payment(anna.profile["id"], eur("100.00"), f"pay-{uuid.uuid4()}", "bank")
    for plan in ("vps-s", "vps-m"):
        order = anna.post("/api/v1/orders", vps(plan)).json()
    assert anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now"}).status_code == 200
    documents = {i["number"]: i for i in anna.get("/api/v1/invoices").json()["items"]}
    assert sorted(i["kind"] for i in documents.values()) == ["credit_note", "invoice", "invoice"]
    year = date.fromisoformat(next(iter(documents.values()))["issued_at"][:10]).year

    response = anna.get(f"/api/v1/invoices/archive?year={year}")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    assert "Content-Length" not in response.headers   # streamed
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    index = list(csv.DictReader(io.StringIO(archive.read("index.csv").decode("utf-8"))))
    assert sorted(row["number"] for row in index) == sorted(documents)
    assert sorted(archive.namelist()) == sorted([row["file"] for row in index] + ["index.csv"])
    for row in index:
        pdf = PdfReader(io.BytesIO(archive.read(row["file"])))
        assert row["number"] in "".join(page.extract_text() for page in pdf.pages)
        assert row["gross"] == documents[row["number"]]["gross"]["amount"] and row["kind"] in row["file"]

    empty = zipfile.ZipFile(io.BytesIO(anna.get(f"/api/v1/invoices/archive?year={year - 1}").content))
    assert empty.namelist() == ["index.csv"]
    for bad in ("year=abc", "", "year=1999"):
        assert anna.get(f"/api/v1/invoices/archive?{bad}").status_code == 400, bad


@pytest.fixture
def mailbox(stack):
    url = stack.url("mail_http")
    return lambda address: requests.get(f"{url}/messages", params={"to": address}, timeout=5).json()["items"]


@pytest.fixture
def next_month(stack):
    """Moves every process's clock to noon of the first day of next month; put back afterwards."""
    def move() -> date:
        now = datetime.now(timezone.utc)
        first = (now.date().replace(day=28) + timedelta(days=4)).replace(day=1)
        noon = datetime(first.year, first.month, 1, 12, tzinfo=timezone.utc)
        move_clock(stack.env["CLOCK_FILE"], (noon - now).total_seconds())
        return first
    yield move
    move_clock(stack.env["CLOCK_FILE"], 0.0)


def test_a_customer_who_asks_gets_last_months_statement_once_with_its_pdf(customer, payments, mailbox, next_month):
    anna = customer(postal_address=POSTAL)
    billing = f"billing-{uuid.uuid4().hex[:8]}@firma.example"
    saved = anna.put("/api/v1/profile/notifications", {"monthly_statement": True, "emails": {"invoices": billing}})
    assert saved.status_code == 200 and saved.json()["monthly_statement"] is True
    payments.ledger.credit_payment(anna.profile["id"], eur("50.00"), f"pay-{uuid.uuid4()}", "bank")
    this_month = datetime.now(timezone.utc).date().replace(day=1)
    time.sleep(2)
    assert [m for m in mailbox(billing) if "statement" in m["subject"]] == []   # not before the month is over

    first = next_month()
    [mail] = eventually(lambda: [m for m in mailbox(billing) if "statement" in m["subject"]], timeout=30)
    assert "EUR 0.00" in mail["text"] and "EUR 50.00" in mail["text"] and "Movements: 1" in mail["text"]
    [attachment] = mail["attachments"]
    assert attachment["content_type"] == "application/pdf"
    assert attachment["filename"] == f"statement-{this_month}-{first - timedelta(days=1)}.pdf"
    time.sleep(3)   # several runs of the ledger's timer: the month's statement goes once
    assert len([m for m in mailbox(billing) if "statement" in m["subject"]]) == 1
