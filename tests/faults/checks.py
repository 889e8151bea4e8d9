"""What the fault tests drive and check: customers placing and renewing orders, and the books after.

A client retries what failed for a reason a real client would retry (503, 409 conflict, a dropped
connection) with the same Idempotency-Key, a few times, then gives up: the order may then be
left pending or never made, but never charged without being active, nor charged twice.
"""
from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

from services.notifier.domain import order_ref

VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}
RETRYABLE = {409, 503}


@dataclass
class Load:
    statuses: Counter = field(default_factory=Counter)
    server_errors: list = field(default_factory=list)
    unavailable: list = field(default_factory=list)  # every 503: which path, and the service it names
    replays_differing: list = field(default_factory=list)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def new_customer(world, balance: str):
    """Register, log in, get ``balance`` paid in (ledger RPC, as the payment system would)."""
    login = f"f{uuid.uuid4().hex[:12]}"
    password = "a long and unusual passphrase 7"
    body = {"login": login, "password": password, "email": f"{login}@example.com", "first_name": "Anna",
            "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL",
            "postal_address": {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}}
    created = world.api.post("/api/v1/accounts", body)
    assert created.status_code == 201, created.text
    session = world.api.post("/api/v1/sessions", {"login": login, "password": password})
    assert session.status_code == 201, session.text
    client = world.api.as_customer(session.json()["token"], profile=created.json(), password=password)
    with world.rpc("payments") as payments:
        payments.ledger.credit_payment(created.json()["id"], {"amount": balance, "currency": "EUR"},
                                       f"pay-{login}", "bank-transfer")
    world.accounts.append(client.profile)
    return client


def _send(client, load: Load, method: str, path: str, body: dict, key: str, tries: int = 8):
    response = None
    for attempt in range(tries):
        try:
            response = client.request(method, path, body, headers={"Idempotency-Key": key})
        except requests.RequestException:
            time.sleep(1)
            continue
        with load.lock:
            load.statuses[response.status_code] += 1
            if response.status_code >= 500:
                (load.unavailable if response.status_code == 503 else load.server_errors).append(
                    (path, response.status_code, response.text[:300]))
        if response.status_code not in RETRYABLE:
            return response
        time.sleep(0.5 + attempt * 0.5)
    return response


def drive(clients: list, operations: int, load: Load, replay_rate: float = 0.0, renew_rate: float = 0.4):
    """``operations`` order placements and renewals spread over ``clients`` running at once."""
    per_client = operations // len(clients)

    def work(client, seed):
        chance = random.Random(seed)
        mine: list[str] = []
        for _ in range(per_client):
            if mine and chance.random() < renew_rate:
                order_id = chance.choice(mine)
                method, path, body = "POST", f"/api/v1/orders/{order_id}/renew", {"period_months": 1}
            else:
                method, path, body = "POST", "/api/v1/orders", VPS
            key = uuid.uuid4().hex
            response = _send(client, load, method, path, body, key)
            if response is not None and response.status_code in (200, 201) and path == "/api/v1/orders":
                mine.append(response.json()["id"])
            if response is not None and response.status_code in (200, 201) and chance.random() < replay_rate:
                again = _send(client, load, method, path, body, key)
                if again.status_code != response.status_code or again.json() != response.json():
                    load.replays_differing.append((path, response.json(), again.json()))
            with load.lock:
                load.done += 1

    threads = [threading.Thread(target=work, args=(client, index)) for index, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    return threads


def during(load: Load, operations: int, fault) -> threading.Thread:
    """Run ``fault`` once a third of the operations are done."""
    def wait_then_break():
        while load.done < operations // 3:
            time.sleep(0.1)
        fault()
    thread = threading.Thread(target=wait_then_break)
    thread.start()
    return thread


def _pages(fetch):
    items, cursor = [], None
    while True:
        page = fetch(cursor)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


def books(world, clients: list) -> dict:
    """Assert the guarantees over ``clients``' orders; returns counts for the report."""
    counts = Counter()
    mail_url = world.stack.url("mail_http")
    with world.rpc() as rpc:
        assert rpc.ledger.audit() == []
        for client in clients:
            account = client.profile["id"]
            transactions = _pages(lambda c: rpc.ledger.list_transactions(account, 100, c))
            charges = [t for t in transactions if t["kind"] == "charge"]
            per_order = Counter(t["reference"] for t in charges)
            invoices = _pages(lambda c: rpc.ledger.list_invoices(account, 100, c))
            issued = [i for i in invoices if i["kind"] == "invoice"]
            assert len(issued) == len(charges), (account, len(issued), len(charges))
            assert len({t["invoice_id"] for t in charges}) == len(charges) and all(t["invoice_id"] for t in charges)
            orders = rpc.orders.list_orders(account, None, 100, None)["items"]
            assert set(per_order) <= {o["id"] for o in orders}, "a charge for an order that does not exist"
            mails = requests.get(f"{mail_url}/messages", params={"to": client.profile["email"]}, timeout=10).json()["items"]
            # Every invoice and credit note: one mail (one Message-ID), with its PDF, the one kept.
            for document in invoices:
                subject = f"{'Credit note' if document['kind'] == 'credit_note' else 'Invoice'} {document['number']}"
                mailed = [m for m in mails if m["subject"] == subject]
                assert len({m["message_id"] for m in mailed}) == 1, (document["number"], [m["subject"] for m in mails])
                kept = base64.b64decode(rpc.ledger.get_invoice_pdf(document["id"])["content"])
                assert [(a["content_type"], a["size"]) for a in mailed[0]["attachments"]] == \
                    [("application/pdf", len(kept))], (document["number"], mailed[0]["attachments"])
                counts["invoice_emails"] += 1
            for order in orders:
                if order["status"] == "pending_payment":
                    assert per_order[order["id"]] == 0, order
                    counts["pending"] += 1
                    continue
                renewals = [e for e in rpc.orders.get_order(order["id"])["events"] if e["kind"] == "renewed"]
                assert order["status"] == "active", order
                assert per_order[order["id"]] == 1 + len(renewals), (order["id"], per_order[order["id"]], renewals)
                # One e-mail: one Message-ID. A notifier killed between the relay's "250" and its own
                # record hands that same message to the relay again after its lease (counted apart).
                named = order_ref({"order_number": order["number"], "hostname": order["hostname"]})
                activated = {m["message_id"] for m in mails if f"is active (order {named})" in m["subject"]}
                assert len(activated) == 1, (order["id"], [m["subject"] for m in mails])
                counts["active"] += 1
                counts["renewals"] += len(renewals)
                counts["activation_emails"] += len(activated)
        counts["same_message_twice"] += sum(n - 1 for n in Counter(
            m["message_id"] for c in clients
            for m in requests.get(f"{mail_url}/messages", params={"to": c.profile["email"]}, timeout=10).json()["items"]
        ).values())
        numbers = sorted(int(i["number"].split("/")[1]) for profile in world.accounts
                         for i in _pages(lambda c: rpc.ledger.list_invoices(profile["id"], 100, c)))
        assert numbers == list(range(1, len(numbers) + 1)), "invoice numbers have gaps or repeats"
        counts["emails"] = sum(len(requests.get(f"{mail_url}/messages", params={"to": c.profile["email"]},
                                                timeout=10).json()["items"]) for c in clients)
    return counts


def parked_events(world) -> list[dict]:
    """Every event parked in a dead-letter queue (introserv-ops deadletters), left where it is."""
    from introserv_clients.deadletters import HANDLER_QUEUES, DeadLetters

    with DeadLetters(world.rabbit.amqp_uri) as dead:
        return [event.to_dict() for queue in HANDLER_QUEUES for event in dead.parked(queue)]


def settled(world, clients: list, seconds: float = 120.0) -> dict:
    """Wait until the books hold (events and the timers catch up), then return their counts."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return books(world, clients)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
