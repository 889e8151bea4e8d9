"""The invoice as a PDF document, in English or Polish.

Draws an invoice or credit note dict of :mod:`services.ledger.invoicing` (docs/CONTRACTS.md's Invoice
shape). Embeds DejaVu Sans, so Polish letters (and any Latin name a customer types)
render. Every text printed comes from :data:`MESSAGES`.
"""
from __future__ import annotations

import gettext
import io
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import pycountry
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"

MESSAGES = {
    "en": {
        "invoice": "Invoice",
        "credit_note": "Credit note",
        "number": "No. {number}",
        "issued_at": "Date of issue",
        "sale_date": "Date of sale",
        "order": "Order",
        "corrects": "Corrects invoice No. {number}",
        "corrects_of": "Corrects invoice No. {number} of {date}",
        "unit_net": "Unit net",
        "seller": "Seller",
        "buyer": "Buyer",
        "vat_id": "VAT ID",
        "postal_address": "Postal address",
        "position": "#",
        "description": "Description",
        "period": "Period",
        "quantity": "Qty",
        "net": "Net",
        "vat_rate": "VAT %",
        "vat": "VAT",
        "gross": "Gross",
        "total": "Total",
        "amounts_in": "Amounts in {currency}",
        "to_pay": "Total to pay",
        "paid": "Paid from the balance on {date}",
        "to_return": "Total returned",
        "reverse_charge": "Reverse charge: the buyer accounts for the VAT "
                          "(Article 196 of Council Directive 2006/112/EC).",
        "outside_scope": "Outside the scope of EU VAT.",
        "oss": "VAT charged at the rate of {country} (One-Stop Shop).",
        "rate_reverse_charge": "RC",
        "rate_outside_scope": "n/a",
        "page": "page {page}",
    },
    "pl": {
        "invoice": "Faktura",
        "credit_note": "Faktura korygująca",
        "number": "nr {number}",
        "issued_at": "Data wystawienia",
        "sale_date": "Data sprzedaży",
        "order": "Zamówienie",
        "corrects": "Korekta faktury nr {number}",
        "corrects_of": "Korekta faktury nr {number} z dnia {date}",
        "unit_net": "Cena jedn. netto",
        "seller": "Sprzedawca",
        "buyer": "Nabywca",
        "vat_id": "NIP / VAT UE",
        "postal_address": "Adres korespondencyjny",
        "position": "Lp.",
        "description": "Nazwa usługi",
        "period": "Okres",
        "quantity": "Ilość",
        "net": "Netto",
        "vat_rate": "VAT %",
        "vat": "VAT",
        "gross": "Brutto",
        "total": "Razem",
        "amounts_in": "Kwoty w {currency}",
        "to_pay": "Do zapłaty",
        "paid": "Zapłacono z salda dnia {date}",
        "to_return": "Do zwrotu",
        "reverse_charge": "Odwrotne obciążenie: VAT rozlicza nabywca "
                          "(art. 196 dyrektywy Rady 2006/112/WE).",
        "outside_scope": "Poza zakresem unijnego systemu VAT.",
        "oss": "VAT według stawki kraju: {country} (procedura OSS).",
        "rate_reverse_charge": "oo",
        "rate_outside_scope": "np",
        "page": "strona {page}",
    },
}
LANGUAGES = tuple(MESSAGES)


def render_invoice_pdf(invoice: dict, language: str = "en") -> bytes:
    """The invoice or credit note as PDF bytes, every text in ``language`` (``en`` or ``pl``)."""
    if language not in MESSAGES:
        raise ValueError(f"no invoice texts in {language!r}; have {', '.join(LANGUAGES)}")
    page = _Page(invoice, language)
    buffer = io.BytesIO()
    title = f"{page.say(invoice['kind'])} {invoice['number']}"
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
        bottomMargin=18 * mm, title=title, author=invoice["seller"]["name"],
        # The same invoice always gives the same bytes (no creation date or random id).
        invariant=1,
    )
    document.build(page.flowables(), onFirstPage=page.footer, onLaterPages=page.footer)
    return buffer.getvalue()


def _register_fonts() -> None:
    pdfmetrics.registerFont(TTFont(FONT, str(FONTS / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(FONTS / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


# Once, when the module loads: registering lazily let two concurrent renders in one process
# see the regular face registered before the bold one and its family (a 500 seen in e2e).
_register_fonts()


class _Page:
    """The flowables of one invoice in one language."""

    def __init__(self, invoice: dict, language: str):
        self.invoice = invoice
        self.language = language
        self.messages = MESSAGES[language]
        self.text = ParagraphStyle("text", fontName=FONT, fontSize=9, leading=12)
        self.small = ParagraphStyle("small", parent=self.text, fontSize=7.5, leading=9.5)
        self.title = ParagraphStyle("title", parent=self.text, fontName=FONT_BOLD, fontSize=16, leading=20)
        self.heading = ParagraphStyle("heading", parent=self.text, fontName=FONT_BOLD, fontSize=10)
        self.total = ParagraphStyle("total", parent=self.heading, fontSize=11, leading=15, alignment=TA_RIGHT)

    def say(self, key: str, **values) -> str:
        return self.messages[key].format(**values)

    def flowables(self) -> list:
        invoice = self.invoice
        parts = [Paragraph(escape(f"{self.say(invoice['kind'])} {self.say('number', number=invoice['number'])}"),
                         self.title),
                 Spacer(0, 2 * mm)]
        facts = [f"{self.say('issued_at')}: {self.date(invoice['issued_at'])}"]
        if invoice.get("sale_date"):
            facts.append(f"{self.say('sale_date')}: {self.date(invoice['sale_date'])}")
        if invoice.get("order_id"):
            facts.append(f"{self.say('order')}: {invoice['order_id']}")
        if invoice.get("kind") == "credit_note" and invoice.get("corrects_number"):
            if invoice.get("corrects_issued_at"):
                facts.append(self.say("corrects_of", number=invoice["corrects_number"],
                                      date=self.date(invoice["corrects_issued_at"])))
            else:
                facts.append(self.say("corrects", number=invoice["corrects_number"]))
        parts += [Paragraph(escape(fact), self.text) for fact in facts]
        parts += [Spacer(0, 6 * mm), self.parties(), Spacer(0, 8 * mm), self.lines(), Spacer(0, 1 * mm),
                  Paragraph(escape(self.say("amounts_in", currency=invoice["currency"])), self.small),
                  Spacer(0, 3 * mm)]
        if invoice["kind"] == "credit_note":
            closing = self.say("to_return")
        elif invoice.get("settled_at"):   # paid from the balance: nothing is left to pay
            closing = self.say("paid", date=self.date(invoice["settled_at"]))
        else:
            closing = self.say("to_pay")
        # "Total returned" already says the direction; the table keeps the signed amounts.
        to_settle = {"amount": invoice["gross"]["amount"].lstrip("-")}
        parts.append(Paragraph(escape(f"{closing}: {self.money(to_settle)} {invoice['currency']}"), self.total))
        parts.append(Spacer(0, 6 * mm))
        parts += [Paragraph(escape(note), self.text) for note in self.tax_notes()]
        return parts

    def footer(self, canvas, document) -> None:
        """The number and page at the foot of every page, so loose pages find their invoice."""
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        text = f"{self.say(self.invoice['kind'])} {self.invoice['number']} · {self.say('page', page=document.page)}"
        canvas.drawRightString(A4[0] - document.rightMargin, 10 * mm, text)
        canvas.restoreState()

    def parties(self) -> Table:
        seller, buyer = self.invoice["seller"], self.invoice["buyer"]
        table = Table([[Paragraph(escape(self.say("seller")), self.heading),
                        Paragraph(escape(self.say("buyer")), self.heading)],
                       [self.party(seller), self.party(buyer)]],
                      colWidths=["50%", "50%"])
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        return table

    def party(self, party: dict) -> Paragraph:
        rows = []
        if party.get("company_name") and party["company_name"] != party.get("name"):
            rows.append(f"<b>{escape(party['company_name'])}</b>")
            rows.append(escape(party.get("name") or ""))
        else:
            rows.append(f"<b>{escape(party.get('name') or '')}</b>")
        rows.append(escape(party.get("address") or ""))
        rows.append(escape(self.country_name(party.get("country"))))
        if party.get("vat_id"):
            rows.append(escape(f"{self.say('vat_id')}: {party['vat_id']}"))
        postal = _postal_text(party.get("postal_address"))
        if postal:
            rows.append(f"{escape(self.say('postal_address'))}:<br/>{escape(postal)}")
        return Paragraph("<br/>".join(row for row in rows if row), self.text)

    def lines(self) -> Table:
        header = [self.say(key) for key in ("position", "description", "quantity", "unit_net", "net", "vat_rate",
                                             "vat", "gross")]
        rows = [header]
        for position, line in enumerate(self.invoice["lines"], start=1):
            description = escape(line["description"])
            if line.get("period_from") or line.get("period_to"):
                period = f"{line.get('period_from') or ''} – {line.get('period_to') or ''}"
                description += f"<br/><font size=7.5>{escape(self.say('period'))}: {escape(period)}</font>"
            # The unit net price (art. 106e ust. 1 pkt 9): the line's net over its quantity.
            unit_net = {"amount": str(Decimal(line["net"]["amount"]) / line["quantity"])}
            rows.append([str(position), Paragraph(description, self.text), str(line["quantity"]),
                         self.money(unit_net), self.money(line["net"]), self.rate(line["vat_rate"]),
                         self.money(line["vat"]), self.money(line["gross"])])
        invoice = self.invoice
        rows.append(["", Paragraph(f"<b>{escape(self.say('total'))}</b>", self.text), "", "",
                     self.money(invoice["net"]), "", self.money(invoice["vat"]), self.money(invoice["gross"])])
        table = Table(rows, colWidths=[8 * mm, None, 10 * mm, 21 * mm, 21 * mm, 13 * mm, 19 * mm, 21 * mm],
                      repeatRows=1)
        table.setStyle(TableStyle([
            ("FONTNAME", (0, 0), (-1, -1), FONT),
            ("FONTNAME", (0, 0), (-1, 0), FONT_BOLD),
            ("FONTNAME", (0, -1), (-1, -1), FONT_BOLD),
            ("FONTSIZE", (0, 0), (-1, -1), 8.5),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#4a5568")),
            ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.HexColor("#4a5568")),
            ("ROWBACKGROUNDS", (0, 1), (-1, -2), [colors.white, colors.HexColor("#f7f8fa")]),
        ]))
        return table

    def tax_notes(self) -> list[str]:
        treatment = self.invoice["tax_treatment"]
        if treatment == "reverse_charge":
            return [self.say("reverse_charge")]
        if treatment == "outside_scope":
            return [self.say("outside_scope")]
        buyer_country = self.invoice["buyer"].get("country")
        if buyer_country and buyer_country != self.invoice["seller"].get("country"):
            return [self.say("oss", country=self.country_name(buyer_country))]
        return []

    def rate(self, vat_rate: str) -> str:
        treatment = self.invoice["tax_treatment"]
        if treatment in ("reverse_charge", "outside_scope"):
            return self.say(f"rate_{treatment}")
        return self.number(Decimal(vat_rate).normalize(), places=None)

    def date(self, value: str) -> str:
        """A date (or the day of an ISO time) as read in the language: ``05.12.2026``, ``2026-12-05``."""
        day = value[:10]
        return f"{day[8:10]}.{day[5:7]}.{day[:4]}" if self.language == "pl" else day

    def money(self, money: dict) -> str:
        return self.number(Decimal(money["amount"]), places=2)

    def number(self, value: Decimal, places: int | None) -> str:
        """1234.5 reads ``1,234.50`` in English and ``1 234,50`` in Polish."""
        text = f"{value:,.{places}f}" if places is not None else f"{value:,f}"
        if self.language == "pl":
            text = text.replace(",", " ").replace(".", ",")
        return text

    def country_name(self, code: str | None) -> str:
        if not code:
            return ""
        country = pycountry.countries.get(alpha_2=code.upper())
        if country is None:
            return code
        return f"{_translations(self.language).gettext(country.name)} ({country.alpha_2})"


_TRANSLATIONS: dict[str, gettext.NullTranslations] = {}


def _translations(language: str) -> gettext.NullTranslations:
    if language not in _TRANSLATIONS:
        # English is the names' own language: the fallback returns them unchanged.
        _TRANSLATIONS[language] = gettext.translation("iso3166-1", pycountry.LOCALES_DIR,
                                                      languages=[language], fallback=True)
    return _TRANSLATIONS[language]


def _postal_text(postal) -> str:
    if not postal:
        return ""
    if isinstance(postal, str):
        return postal
    town = " ".join(part for part in (postal.get("postcode"), postal.get("city")) if part)
    return ", ".join(part for part in (postal.get("line1"), town, postal.get("country")) if part)
