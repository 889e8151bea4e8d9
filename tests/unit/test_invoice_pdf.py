import io
from datetime import date, datetime, timezone

import pytest
from pypdf import PdfReader

from services.common.money import Money
from services.ledger.invoice_pdf import MESSAGES, render_invoice_pdf
from services.ledger.invoicing import InvoiceLine, build_invoice, credit_note_for
from services.ledger.tax import Buyer, Seller, price_for, tax_treatment

SELLER = Seller.from_env({"SELLER_NAME": "Introserv Sp. z o.o.", "SELLER_ADDRESS": "ul. Złota 44, 00-120 Warszawa"})
ISSUED = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


def polish_individual() -> Buyer:
    return Buyer(name="Zażółć Gęślą-Jaźń", address="ul. Łąkowa 7, Łódź", country="PL",
                 postal_address={"line1": "skr. pocztowa 12", "city": "Łódź", "postcode": "90-001", "country": "PL"})


def german_company() -> Buyer:
    return Buyer(name="Jürgen Müller", address="Hauptstraße 5, Berlin", country="DE",
                 company_name="Müller & Söhne <GmbH>", vat_id="DE136695976", profile_type="company",
                 company_verification="verified")


def invoice_for(buyer: Buyer, *lines: tuple[str, str], currency: str = "PLN", number: str = "2026/000123") -> dict:
    treatment = tax_treatment(buyer, SELLER)
    return build_invoice(
        invoice_id="inv-123", number=number, seller=SELLER, buyer=buyer, treatment=treatment, currency=currency,
        lines=[InvoiceLine(description=description,
                           gross=price_for(Money.of(amount, currency), treatment, SELLER).gross,
                           period_from=date(2026, 3, 1), period_to=date(2026, 3, 31))
               for description, amount in lines],
        order_id="ord-42", issued_at=ISSUED)


def text_of(pdf: bytes) -> str:
    """The text a reader sees, with line breaks and runs of spaces as single spaces."""
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_polish_invoice_shows_number_parties_totals_and_polish_letters():
    pdf = render_invoice_pdf(invoice_for(polish_individual(), ("Serwer dedykowany DS-1, 1 miesiąc", "1230.00")), "pl")
    assert pdf.startswith(b"%PDF")
    text = text_of(pdf)
    assert "Faktura nr 2026/000123" in text
    assert "Introserv Sp. z o.o." in text and "ul. Złota 44, 00-120 Warszawa" in text
    assert "Zażółć Gęślą-Jaźń" in text and "ul. Łąkowa 7, Łódź" in text
    assert "Serwer dedykowany DS-1, 1 miesiąc" in text
    assert "1 000,00" in text and "230,00" in text and "1 230,00" in text
    assert "Do zapłaty: 1 230,00 PLN" in text
    assert "skr. pocztowa 12, 90-001 Łódź, PL" in text


def test_english_invoice_uses_english_texts_and_number_format():
    text = text_of(render_invoice_pdf(invoice_for(polish_individual(), ("Dedicated server", "1230.00")), "en"))
    assert "Invoice No. 2026/000123" in text
    assert "Total to pay: 1,230.00 PLN" in text
    assert "Faktura" not in text


def test_reverse_charge_invoice_names_the_buyers_vat_id_and_says_reverse_charge():
    document = invoice_for(german_company(), ("VPS M", "123.00"), currency="EUR")
    polish, english = text_of(render_invoice_pdf(document, "pl")), text_of(render_invoice_pdf(document, "en"))
    assert "Odwrotne obciążenie" in polish
    assert "Reverse charge" in english
    # The company name is printed as typed, markup characters included.
    assert "Müller & Söhne <GmbH>" in english and "DE136695976" in english
    assert "Total to pay: 100.00 EUR" in english


def test_invoice_outside_the_eu_says_it_is_outside_the_scope_of_eu_vat():
    customer = Buyer(name="John Smith", address="1 Main St, Austin TX", country="US")
    text = text_of(render_invoice_pdf(invoice_for(customer, ("VPS S", "49.00"), currency="USD"), "en"))
    assert "Outside the scope of EU VAT" in text
    assert "United States (US)" in text


def test_invoice_to_another_eu_individual_names_the_rate_country():
    customer = Buyer(name="Marie Curie", address="1 rue de Rivoli, Paris", country="FR")
    document = invoice_for(customer, ("VPS S", "120.00"), currency="EUR")
    assert "VAT charged at the rate of France (FR)" in text_of(render_invoice_pdf(document, "en"))
    assert "stawki kraju: Francja (FR)" in text_of(render_invoice_pdf(document, "pl"))


def test_credit_note_has_its_own_title_and_the_corrected_number():
    original = invoice_for(polish_individual(), ("VPS S", "123.00"))
    note = credit_note_for(original, invoice_id="cn-1", number="2026/000130", issued_at=ISSUED,
                           amount=Money.of("61.50", "PLN"), description="Zwrot za niewykorzystane dni")
    polish, english = text_of(render_invoice_pdf(note, "pl")), text_of(render_invoice_pdf(note, "en"))
    assert "Faktura korygująca nr 2026/000130" in polish
    assert "Korekta faktury nr 2026/000123" in polish
    assert "-61,50" in polish and "Do zwrotu: 61,50 PLN" in polish
    assert "Credit note No. 2026/000130" in english and "Corrects invoice No. 2026/000123" in english


def test_the_font_with_polish_glyphs_is_embedded():
    pdf = render_invoice_pdf(invoice_for(polish_individual(), ("VPS S", "123.00")), "pl")
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    fonts = {str(font.get_object()["/BaseFont"]) for font in page["/Resources"]["/Font"].values()}
    assert any("DejaVuSans" in name for name in fonts)


def test_a_long_invoice_continues_on_the_next_page():
    lines = [(f"Extra IP address {n}", "12.30") for n in range(1, 61)]
    pdf = render_invoice_pdf(invoice_for(polish_individual(), *lines), "en")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2
    assert "Extra IP address 60" in text_of(pdf) and "Total to pay: 738.00 PLN" in text_of(pdf)


def test_the_same_invoice_renders_to_the_same_bytes():
    document = invoice_for(polish_individual(), ("VPS S", "123.00"))
    assert render_invoice_pdf(document, "pl") == render_invoice_pdf(document, "pl")


def test_both_languages_have_every_text():
    assert set(MESSAGES["en"]) == set(MESSAGES["pl"])
    with pytest.raises(ValueError):
        render_invoice_pdf(invoice_for(polish_individual(), ("VPS S", "123.00")), "de")


def test_an_invoice_paid_from_the_balance_says_so_instead_of_to_pay():
    invoice = {**invoice_for(polish_individual(), ("VPS S", "123.00")), "settled_at": "2026-03-01T10:00:00Z"}
    polish, english = text_of(render_invoice_pdf(invoice, "pl")), text_of(render_invoice_pdf(invoice, "en"))
    assert "Zapłacono z salda dnia 01.03.2026: 123,00 PLN" in polish and "Do zapłaty" not in polish
    assert "Paid from the balance on 2026-03-01: 123.00 PLN" in english and "to pay" not in english
    unpaid = {**invoice, "settled_at": None}                   # taken into an overdraft: still to pay
    assert "Do zapłaty: 123,00 PLN" in text_of(render_invoice_pdf(unpaid, "pl"))


def test_an_invoice_carries_what_art_106e_asks_date_of_sale_and_unit_net_price():
    invoice = invoice_for(polish_individual(), ("VPS S, 1 miesiąc", "123.00"), ("Dodatkowy adres IP", "24.60"))
    polish = text_of(render_invoice_pdf(invoice, "pl"))
    assert "Data wystawienia: 01.03.2026" in polish and "Data sprzedaży: 01.03.2026" in polish
    assert "Cena jedn. netto" in polish and "NIP" in polish
    assert "100,00 100,00 23 23,00 123,00" in polish         # unit net, net, rate, VAT, gross of one unit
    english = text_of(render_invoice_pdf(invoice, "en"))
    assert "Date of sale: 2026-03-01" in english and "Unit net" in english


def test_a_credit_note_names_the_corrected_invoice_by_number_and_date_and_its_sale_date():
    original = invoice_for(polish_individual(), ("VPS S", "123.00"))
    note = credit_note_for(original, invoice_id="cn-1", number="2026/000130",
                           issued_at=datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc),
                           amount=Money.of("61.50", "PLN"), description="Zwrot za niewykorzystane dni")
    note = {**note, "corrects_issued_at": original["issued_at"], "settled_at": "2026-03-10T09:00:00Z"}
    polish = text_of(render_invoice_pdf(note, "pl"))
    assert "Korekta faktury nr 2026/000123 z dnia 01.03.2026" in polish
    assert "Data wystawienia: 10.03.2026" in polish and "Data sprzedaży: 01.03.2026" in polish
    assert "Do zwrotu: 61,50 PLN" in polish
