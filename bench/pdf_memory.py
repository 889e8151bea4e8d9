"""The ledger's document worker's memory: resident size after its imports and after rendering invoice PDFs.

``python -m bench.pdf_memory [--count 50] [--trace]``: in this one process, the worker's imports
(``services.ledger.documents.service``, as ``make run`` starts it), then ``count`` invoices
rendered in both languages as the worker renders them (the invoices built first); VmRSS after each step (from /proc/self/status), and with
``--trace`` the Python allocations the renderings left behind (tracemalloc, which adds its own
memory to the resident figures). Run it with the environment the stack gives the services
(deploy/local.py: ``MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072``) to see what they see.
"""
from __future__ import annotations

import argparse
import sys
import tracemalloc
from datetime import date, datetime, timezone


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def invoices(count: int) -> list[tuple[dict, str]]:
    """``count`` invoices of one to six lines, a Polish individual's and a German company's in turn."""
    from services.common.money import Money
    from services.ledger.invoicing import InvoiceLine, build_invoice
    from services.ledger.tax import Buyer, Seller, price_for, tax_treatment

    seller = Seller.from_env({"SELLER_NAME": "Introserv Sp. z o.o.", "SELLER_ADDRESS": "ul. Złota 44, 00-120 Warszawa"})
    buyers = [Buyer(name="Zażółć Gęślą-Jaźń", address="ul. Łąkowa 7, Łódź", country="PL"),
              Buyer(name="Jürgen Müller", address="Hauptstraße 5, Berlin", country="DE",
                    company_name="Müller & Söhne GmbH", vat_id="DE136695976", profile_type="company",
                    company_verification="verified")]
    made = []
    for n in range(count):
        buyer = buyers[n % 2]
        treatment = tax_treatment(buyer, seller)
        lines = [InvoiceLine(description=f"VPS {size} GB, order {n}", period_from=date(2026, 3, 1),
                             period_to=date(2026, 3, 31),
                             gross=price_for(Money.of("49.00", "PLN"), treatment, seller).gross)
                 for size in range(1, 2 + n % 6)]
        invoice = build_invoice(invoice_id=f"inv-{n}", number=f"2026/{n:06d}", seller=seller, buyer=buyer,
                                treatment=treatment, currency="PLN", lines=lines, order_id=f"ord-{n}",
                                issued_at=datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc))
        made.append((invoice, "pl" if n % 2 == 0 else "en"))
    return made


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args(argv)
    print(f"started: {resident_mb():.1f} MB")
    from services.ledger.documents.service import render_invoice  # what the worker imports and renders with
    print(f"worker imported: {resident_mb():.1f} MB")
    made = invoices(args.count)
    print(f"{args.count} invoices built: {resident_mb():.1f} MB")
    if args.trace:
        tracemalloc.start(10)
        before = tracemalloc.take_snapshot()
    for invoice, language in made:
        render_invoice(invoice, language)
    print(f"{args.count} PDFs rendered: {resident_mb():.1f} MB")
    if args.trace:
        for stat in tracemalloc.take_snapshot().compare_to(before, "lineno")[:10]:
            print(stat)
    print("modules loaded:", len(sys.modules))


if __name__ == "__main__":
    main()
