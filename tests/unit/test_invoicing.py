from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import DomainError
from services.common.money import Money
from services.ledger.invoicing import (InvoiceLine, build_invoice, creditable, credit_note_for, format_number,
                                       number_year, parse_number)
from services.ledger.tax import Buyer, Seller, TaxTreatment, price_for, tax_treatment

SELLER = Seller.from_env({})
MARCH_1 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
MARCH_10 = datetime(2026, 3, 10, 9, 30, tzinfo=timezone.utc)


def pln(amount: str) -> Money:
    return Money.of(amount, "PLN")


def buyer(**overrides) -> Buyer:
    return Buyer(**{"name": "Anna Nowak", "address": "ul. Polna 3, Łódź", "country": "PL", **overrides})


def line(gross: Money, description: str = "VPS S, 1 month", **extra) -> InvoiceLine:
    return InvoiceLine(description=description, gross=gross, **extra)


def invoice(*grosses: Money, customer: Buyer | None = None, treatment: TaxTreatment | None = None,
            seq: int = 1) -> dict:
    customer = customer or buyer()
    return build_invoice(
        invoice_id=f"inv-{seq}", number=format_number(2026, seq), seller=SELLER, buyer=customer,
        lines=[line(gross) for gross in grosses], treatment=treatment or tax_treatment(customer, SELLER),
        currency=grosses[0].currency, order_id="ord-7", issued_at=MARCH_1,
    )


def credit(of: dict, amount: Money, earlier=(), seq: int = 50) -> dict:
    return credit_note_for(of, invoice_id=f"cn-{seq}", number=format_number(2026, seq), issued_at=MARCH_10,
                           amount=amount, earlier_credit_notes=earlier)


def cents(money: dict) -> int:
    return Money.from_wire(money).minor


def assert_adds_up(document: dict) -> None:
    for key in ("net", "vat", "gross"):
        assert sum(cents(row[key]) for row in document["lines"]) == cents(document[key])
    for row in document["lines"] + [document]:
        assert cents(row["net"]) + cents(row["vat"]) == cents(row["gross"])


# --- numbers ---------------------------------------------------------------------------

def test_number_is_the_year_and_a_six_digit_sequence():
    assert format_number(2026, 123) == "2026/000123"
    assert format_number(2027, 1) == "2027/000001"
    assert parse_number("2026/000123") == (2026, 123)


def test_number_sequence_starts_at_one():
    with pytest.raises(ValueError):
        format_number(2026, 0)


def test_a_document_issued_on_new_years_eve_utc_takes_that_years_sequence():
    assert number_year(datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)) == 2026
    assert number_year(datetime(2027, 1, 1, 0, 0, tzinfo=timezone.utc)) == 2027


# --- invoices --------------------------------------------------------------------------

def test_invoice_has_the_api_shape_with_the_buyer_as_billed():
    customer = buyer(postal_address={"line1": "skr. 5", "city": "Łódź", "postcode": "90-001", "country": "PL"})
    document = build_invoice(
        invoice_id="inv-1", number="2026/000001", seller=SELLER, buyer=customer,
        lines=[line(pln("123.00"), period_from=date(2026, 3, 1), period_to=date(2026, 3, 31))],
        treatment=tax_treatment(customer, SELLER), currency="PLN", order_id="ord-7", issued_at=MARCH_1)
    assert document == {
        "id": "inv-1", "number": "2026/000001", "kind": "invoice", "issued_at": "2026-03-01T10:00:00Z",
        "sale_date": "2026-03-01",
        "seller": SELLER.to_party(), "buyer": customer.to_party(),
        "lines": [{"description": "VPS S, 1 month", "period_from": "2026-03-01", "period_to": "2026-03-31",
                   "quantity": 1, "net": {"amount": "100.00", "currency": "PLN"}, "vat_rate": "23.00",
                   "vat": {"amount": "23.00", "currency": "PLN"},
                   "gross": {"amount": "123.00", "currency": "PLN"}}],
        "net": {"amount": "100.00", "currency": "PLN"}, "vat": {"amount": "23.00", "currency": "PLN"},
        "gross": {"amount": "123.00", "currency": "PLN"}, "currency": "PLN", "tax_treatment": "standard",
        "order_id": "ord-7", "corrects": None, "corrects_number": None,
    }


def test_invoice_totals_are_the_sums_of_lines_split_one_by_one():
    # Each 0.10 splits into 0.08 + 0.02; the total VAT is 0.06, not round(0.30 - 0.30/1.23).
    document = invoice(pln("0.10"), pln("0.10"), pln("0.10"))
    assert document["net"]["amount"] == "0.24" and document["vat"]["amount"] == "0.06"
    assert_adds_up(document)


def test_reverse_charge_invoice_has_no_vat_and_says_so():
    german_company = Buyer(name="Hans Schmidt", address="Hauptstraße 1, Berlin", country="DE",
                           company_name="Schmidt GmbH", vat_id="DE136695976", profile_type="company",
                           company_verification="verified")
    treatment = tax_treatment(german_company, SELLER)
    charged = price_for(Money.of("123.00", "EUR"), treatment, SELLER).gross
    document = invoice(charged, customer=german_company)
    assert document["tax_treatment"] == "reverse_charge"
    assert (document["net"]["amount"], document["vat"]["amount"], document["gross"]["amount"]) == \
        ("100.00", "0.00", "100.00")
    assert document["lines"][0]["vat_rate"] == "0.00"


def test_invoice_refuses_a_line_in_another_currency():
    with pytest.raises(DomainError) as refused:
        build_invoice(invoice_id="i", number="2026/000001", seller=SELLER, buyer=buyer(),
                      lines=[line(pln("10.00")), line(Money.of("10.00", "EUR"))],
                      treatment=tax_treatment(buyer(), SELLER), currency="PLN", order_id=None, issued_at=MARCH_1)
    assert refused.value.error_code == "currency_mismatch"


def test_invoice_must_bill_something():
    with pytest.raises(ValueError):
        invoice(pln("-5.00"))


# --- credit notes ----------------------------------------------------------------------

def test_credit_note_returns_part_of_an_invoice_in_negative_amounts():
    original = invoice(pln("123.00"))
    note = credit_note_for(original, invoice_id="cn-1", number="2026/000002", issued_at=MARCH_10,
                           amount=pln("61.50"), description="Unused days", period_from=date(2026, 3, 10),
                           period_to=date(2026, 3, 31))
    assert note["kind"] == "credit_note"
    assert note["corrects"] == "inv-1" and note["corrects_number"] == "2026/000001"
    assert note["sale_date"] == original["sale_date"] == "2026-03-01"    # the corrected supply's date
    assert (note["net"]["amount"], note["vat"]["amount"], note["gross"]["amount"]) == ("-50.00", "-11.50", "-61.50")
    assert note["lines"][0]["description"] == "Unused days"
    assert note["lines"][0]["period_from"] == "2026-03-10"
    assert note["buyer"] == original["buyer"] and note["seller"] == original["seller"]
    assert note["tax_treatment"] == original["tax_treatment"] and note["order_id"] == "ord-7"
    assert_adds_up(note)


def test_credit_note_never_returns_more_than_the_invoice():
    with pytest.raises(DomainError) as refused:
        credit(invoice(pln("123.00")), pln("123.01"))
    assert refused.value.error_code == "refund_exceeds_charge"
    assert refused.value.details["creditable"] == {"amount": "123.00", "currency": "PLN"}


def test_credit_note_counts_the_credit_notes_already_issued():
    original = invoice(pln("123.00"))
    first = credit(original, pln("100.00"))
    assert creditable(original, [first]).gross == pln("23.00")
    with pytest.raises(DomainError) as refused:
        credit(original, pln("23.01"), earlier=[first], seq=51)
    assert refused.value.error_code == "refund_exceeds_charge"
    last = credit(original, pln("23.00"), earlier=[first], seq=51)
    assert creditable(original, [first, last]).gross == pln("0.00")


def test_crediting_what_is_left_reverses_the_invoice_to_the_cent():
    original = invoice(pln("0.10"), pln("0.10"), pln("0.10"))  # net 0.24, vat 0.06
    notes = []
    for seq in range(50, 80):
        notes.append(credit(original, pln("0.01"), earlier=notes, seq=seq))
    left = creditable(original, notes)
    assert (left.net, left.vat, left.gross) == (pln("0.00"), pln("0.00"), pln("0.00"))
    with pytest.raises(DomainError):
        credit(original, pln("0.01"), earlier=notes, seq=80)


def test_credit_note_by_lines_adds_up_to_its_totals():
    original = invoice(pln("99.99"), pln("50.01"))
    note = credit_note_for(original, invoice_id="cn-1", number="2026/000003", issued_at=MARCH_10,
                           lines=[line(pln("33.33"), "Server, unused days"), line(pln("16.67"), "IP, unused days")])
    assert note["gross"]["amount"] == "-50.00"
    assert [row["description"] for row in note["lines"]] == ["Server, unused days", "IP, unused days"]
    assert_adds_up(note)


def test_only_an_invoice_can_be_corrected():
    note = credit(invoice(pln("123.00")), pln("10.00"))
    with pytest.raises(ValueError):
        credit(note, pln("1.00"))


def test_credit_note_of_another_invoice_does_not_count():
    first, second = invoice(pln("123.00"), seq=1), invoice(pln("123.00"), seq=2)
    with pytest.raises(ValueError):
        credit(second, pln("1.00"), earlier=[credit(first, pln("1.00"))])


@given(
    line_cents=st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=6),
    rate=st.sampled_from([Decimal("23"), Decimal("19"), Decimal("25.5"), Decimal("17"), Decimal("0")]),
    shares=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=8),
)
def test_credits_in_parts_never_exceed_the_invoice_and_all_add_up(line_cents, rate, shares):
    treatment = TaxTreatment("standard", rate, "PL") if rate else TaxTreatment("outside_scope", rate)
    original = invoice(*[Money(amount, "PLN") for amount in line_cents], treatment=treatment)
    assert_adds_up(original)
    notes = []
    for seq, share in enumerate(shares, start=50):
        left = creditable(original, notes).gross.minor
        if left == 0:
            break
        amount = min(left, max(1, left * share // 1000))
        notes.append(credit(original, Money(amount, "PLN"), earlier=notes, seq=seq))
        assert_adds_up(notes[-1])
        left_now = creditable(original, notes)
        assert left_now.net.minor >= 0 and left_now.vat.minor >= 0 and left_now.gross.minor >= 0
    if creditable(original, notes).gross.minor:
        notes.append(credit(original, creditable(original, notes).gross, earlier=notes, seq=99))
    left = creditable(original, notes)
    assert (left.net.minor, left.vat.minor, left.gross.minor) == (0, 0, 0)
