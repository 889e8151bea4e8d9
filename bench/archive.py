"""The year's invoice archive streamed with bounded memory (issue 21): the gateway's resident memory
while one customer downloads a ZIP of N invoices.

Starts the whole stack on PostgreSQL (its own ports, vhost and databases), places one real order
for one customer (its invoice and the PDF the document worker keeps), copies that invoice and its
PDF with SQL until the customer has ``--invoices`` in the year, then downloads
``GET /api/v1/invoices/archive?year=`` in 64 KiB reads while sampling the gateway's VmRSS every
50 ms. Prints the figures; asserts nothing but that the ZIP holds every PDF and its index.

    .venv/bin/python -m bench.archive [--invoices 1000]
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench.run import STACK_ENV, machine, resident_mb, say  # noqa: E402
from deploy.local import DEV_PORTS, Stack  # noqa: E402
from deploy.ports import free_port  # noqa: E402
from services.common.config import HEALTH_PORTS, SERVICES  # noqa: E402
from tests.support import bus_client, database_env, databases, rabbit_vhost  # noqa: E402

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


def one_real_invoice(stack: Stack) -> tuple[str, str]:
    """A customer with one order, so one invoice and its kept PDF; (token, account id)."""
    base = stack.gateway_url
    login = f"c{uuid.uuid4().hex[:12]}"
    profile = requests.post(f"{base}/api/v1/accounts", json={
        "login": login, "password": "a long and unusual passphrase 7", "email": f"{login}@example.com",
        "first_name": "Anna", "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL",
        "postal_address": POSTAL}, timeout=30).json()
    token = requests.post(f"{base}/api/v1/sessions", json={"login": login, "password": "a long and unusual passphrase 7"},
                          timeout=30).json()["token"]
    with bus_client(stack.env, "payments") as payments:
        payments.ledger.credit_payment(profile["id"], {"amount": "100.00", "currency": "EUR"}, f"pay-{login}", "bank")
    headers = {"Authorization": f"Bearer {token}"}
    placed = requests.post(f"{base}/api/v1/orders", headers=headers, timeout=30, json={
        "plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web.example.com", "os_template": "debian-12"}})
    assert placed.status_code == 201, placed.text
    [invoice] = requests.get(f"{base}/api/v1/invoices", headers=headers, timeout=30).json()["items"]
    assert requests.get(f"{base}/api/v1/invoices/{invoice['id']}/pdf", headers=headers, timeout=30).status_code == 200
    return token, profile["id"]


def copy_invoices(ledger_url: str, account_id: str, count: int) -> int:
    """Copies of the customer's invoice and its PDF, numbered after it; the year they were issued in."""
    engine = create_engine(ledger_url, poolclass=NullPool)
    with engine.begin() as connection:
        row = connection.execute(text("SELECT i.*, p.content FROM invoices i JOIN invoice_pdfs p ON p.invoice_id = i.id "
                                      "WHERE i.account_id = :a"), {"a": account_id}).mappings().one()
        sha = hashlib.sha256(row["content"]).hexdigest()
        for n in range(1, count):
            new_id, number = str(uuid.uuid4()), f"{row['year']}/{900000 + n:06d}"
            document = {**row["document"], "id": new_id, "number": number}
            connection.execute(text(
                "INSERT INTO invoices (id, account_id, year, number_seq, number, kind, transaction_id, corrects, "
                "gross_minor, language, document, issued_at) VALUES (:id, :a, :y, :s, :n, :k, :t, NULL, :g, :l, "
                "CAST(:d AS JSON), :at)"),
                {"id": new_id, "a": account_id, "y": row["year"], "s": 900000 + n, "n": number, "k": row["kind"],
                 "t": row["transaction_id"], "g": row["gross_minor"], "l": row["language"],
                 "d": json.dumps(document), "at": row["issued_at"]})
            connection.execute(text("INSERT INTO invoice_pdfs (invoice_id, content, sha256, rendered_at) "
                                    "VALUES (:i, :c, :s, now())"), {"i": new_id, "c": row["content"], "s": sha})
        return row["year"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    args = parser.parse_args()
    os.environ["TEST_DATABASE"] = "postgres"
    var = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    with rabbit_vhost() as amqp, databases(var) as urls:
        env = {"AMQP_URI": amqp, **STACK_ENV, **database_env({s: urls[s] for s in SERVICES})}
        stack = Stack(var, env=env, ports={name: free_port() for name in (*HEALTH_PORTS, *DEV_PORTS)})
        stack.migrate()
        try:
            stack.start(timeout=120)
            token, account_id = one_real_invoice(stack)
            year = copy_invoices(urls["ledger"], account_id, args.invoices)
            gateway = stack.pid("gateway")
            say(f"{args.invoices} invoices seeded; downloading the archive")
            before = resident_mb(gateway)
            samples, done = [before], threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(resident_mb(gateway))
                    time.sleep(0.05)
            sampler = threading.Thread(target=sample)
            sampler.start()
            started, size = time.monotonic(), 0
            target = var / "archive.zip"
            with requests.get(f"{stack.gateway_url}/api/v1/invoices/archive", params={"year": year}, stream=True,
                              headers={"Authorization": f"Bearer {token}"}, timeout=600) as response, \
                    open(target, "wb") as out:
                assert response.status_code == 200, response.text
                for chunk in response.iter_content(64 * 1024):
                    out.write(chunk)
                    size += len(chunk)
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
            with zipfile.ZipFile(target) as archive:
                names = archive.namelist()
            assert len(names) == args.invoices + 1 and "index.csv" in names, len(names)
            print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}; the whole stack on "
                  f"PostgreSQL on this machine.")
            print(f"archive of {args.invoices} invoices: {size / 1024 / 1024:.1f} MiB in {elapsed:.1f} s; gateway "
                  f"VmRSS {before:.1f} MB before, {max(samples):.1f} MB at most while streaming "
                  f"(+{max(samples) - before:.1f} MB), {resident_mb(gateway):.1f} MB after")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
