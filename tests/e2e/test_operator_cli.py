"""introserv-ops against the whole stack: every task support staff have, as a script sees it
(``--json`` parsed, exit codes) and as a person does (the adjustment's confirmation prompt).

The CLI runs in this process through Click's CliRunner (pika on eventlet's sockets), and once as
the installed console script; customers are made over HTTP, as the panel makes them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pika
import pytest
from click.testing import CliRunner

from introserv_clients import Ledger, Money, Notifier, RpcClient
from introserv_clients.ops import cli
from tests.support import eventually

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}
VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}
OPERATOR = "support:ola"


@pytest.fixture(scope="module")
def operator_amqp_uri(stack):
    """The operator role's login."""
    return stack.env["OPERATOR_AMQP_URI"]


@pytest.fixture(scope="module")
def ops(stack, operator_amqp_uri):
    """``ops("show", "anna", "--json", input="y\\n")``: the CLI's result (exit_code, stdout, stderr); the
    dead letters as the stack broker's administrator (guest)."""
    runner = CliRunner()

    def run(*args, input: str | None = None):
        return runner.invoke(cli, ["--amqp-uri", operator_amqp_uri, "--admin-amqp-uri", stack.env["AMQP_URI"],
                                   "--operator", OPERATOR, *args], input=input)
    return run


def data(result, exit_code: int = 0):
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def error(result, exit_code: int) -> dict:
    return data(result, exit_code)["error"]


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


def test_a_customer_is_found_by_login_or_any_case_of_e_mail_and_shown(ops, customer):
    anna = customer()
    login, account_id = anna.profile["login"], anna.profile["id"]

    assert [p["id"] for p in data(ops("find", login, "--json"))["items"]] == [account_id]
    assert [p["login"] for p in data(ops("find", anna.profile["email"].upper(), "--json"))["items"]] == [login]
    shown = data(ops("show", anna.profile["email"], "--json"))
    assert shown["id"] == account_id and shown["login"] == login and shown["frozen"] is False
    assert shown["balance"] == eur("0.00") and shown["security"]["security_code_set"] is False
    assert shown["country"] == "PL" and shown["company_verification"] == "none"
    human = ops("show", login)
    assert human.exit_code == 0 and login in human.stdout and "0.00 EUR" in human.stdout

    sister = customer(email=anna.profile["email"])   # one address may serve several accounts
    assert {p["id"] for p in data(ops("find", anna.profile["email"], "--json"))["items"]} == \
        {account_id, sister.profile["id"]}
    assert ops("show", anna.profile["email"]).exit_code == 2   # which one? name it by login or id
    assert data(ops("show", sister.profile["login"], "--json"))["id"] == sister.profile["id"]

    assert error(ops("find", f"nobody{uuid.uuid4().hex[:8]}", "--json"), 3)["code"] == "not_found"
    assert error(ops("show", "nobody@example.invalid", "--json"), 3)["code"] == "not_found"
    assert ops("show").exit_code == 2   # no ACCOUNT: usage


def test_payments_orders_invoices_and_balance_of_a_customer(ops, customer):
    anna = customer(postal_address=POSTAL)
    login = anna.profile["login"]
    reference = f"2026/11/{uuid.uuid4().hex[:6]}"

    paid = data(ops("credit-payment", login, "100.00", "--reference", reference, "--json"))
    assert paid["kind"] == "payment" and paid["amount"] == eur("100.00") and paid["balance_after"] == eur("100.00")
    again = data(ops("credit-payment", login, "100.00", "--reference", reference, "--json"))
    assert again["id"] == paid["id"]   # one reference is credited once
    assert error(ops("credit-payment", login, "90.00", "--reference", reference, "--json"), 5)["code"] == \
        "idempotency_conflict"
    assert ops("credit-payment", login, "12.345", "--reference", "x").exit_code == 2

    order = anna.post("/api/v1/orders", VPS)
    assert order.status_code == 201 and order.json()["status"] == "active", order.text
    orders = data(ops("orders", login, "--json"))
    assert [(o["id"], o["status"]) for o in orders["items"]] == [(order.json()["id"], "active")]
    assert data(ops("orders", login, "--status", "cancelled", "--json"))["items"] == []
    invoices = data(ops("invoices", login, "--json"))["items"]
    assert [(i["kind"], i["order_id"]) for i in invoices] == [("invoice", order.json()["id"])]

    balance = data(ops("balance", login, "--json"))
    cost = Decimal(order.json()["cost"]["amount"])
    assert balance["balance"] == eur(f"{Decimal('100.00') - cost:.2f}") == anna.get("/api/v1/balance").json()["balance"]
    assert [t["kind"] for t in balance["transactions"]["items"]] == ["charge", "payment"]
    human = ops("invoices", login)
    assert human.exit_code == 0 and invoices[0]["number"] in human.stdout


def test_company_data_are_approved_or_refused(ops, customer):
    firm = customer(profile_type="company", company_name="Firma sp. z o.o.", vat_id="PL1234563218",
                    postal_address=POSTAL)
    assert firm.profile["company_verification"] == "pending"
    approved = data(ops("approve-company", firm.profile["login"], "--json"))
    assert approved["company_verification"] == "verified" and approved["payments_blocked"] is False
    assert firm.get("/api/v1/profile").json()["payments_blocked"] is False

    other = customer(profile_type="company", company_name="Inna sp. z o.o.", vat_id="PL5260250274",
                     postal_address=POSTAL)
    refused = data(ops("refuse-company", other.profile["id"], "--json"))
    assert refused["company_verification"] == "rejected" and refused["payments_blocked"] is True

    person = customer()
    assert error(ops("approve-company", person.profile["login"], "--json"), 5)["code"] == "conflict"


def test_the_country_changes_only_with_a_ticket_and_a_real_country(ops, customer):
    anna = customer()
    login = anna.profile["login"]
    assert ops("change-country", login, "DE").exit_code == 2   # --ticket is required
    invalid = error(ops("change-country", login, "Narnia", "--ticket", "T-42", "--json"), 5)
    assert invalid["code"] == "validation_error" and "country" in invalid["fields"]
    assert data(ops("change-country", login, "DE", "--ticket", "T-42", "--json"))["country"] == "DE"
    assert anna.get("/api/v1/profile").json()["country"] == "DE"


def test_a_security_code_read_out_by_a_caller_is_checked(ops, customer):
    anna = customer()
    login = anna.profile["login"]
    assert anna.post("/api/v1/security/code", {"code": "Blue Fox 42"}).status_code == 201

    right = data(ops("check-code", login, " BLUE  fox 42", "--json"))   # case and spacing cannot be heard
    assert right == {"account_id": anna.profile["id"], "matches": True}
    assert data(ops("check-code", login, "red wolf 7", "--json"), 5)["matches"] is False
    prompted = ops("check-code", login, input="Blue Fox 42\n")
    assert prompted.exit_code == 0 and "matches" in prompted.stdout and "Blue Fox" not in prompted.output
    checks = [e["details"]["matched"] for e in data(ops("timeline", login, "--json"))["items"]
              if e["kind"] == "security_code_checked"]
    assert checks == [True, False, True]


def test_a_frozen_account_cannot_log_in_until_support_unfreezes_it(ops, customer, api):
    anna = customer()
    login, password = anna.profile["login"], anna.password
    assert data(ops("freeze", login, "--json")) == {"account_id": anna.profile["id"], "frozen": True}
    assert anna.get("/api/v1/profile").status_code == 401
    assert api.post("/api/v1/sessions", {"login": login, "password": password}).status_code == 403
    frozen = data(ops("timeline", login, "--json"))["items"][0]
    assert frozen["kind"] == "account_frozen" and frozen["details"]["operator"] == OPERATOR
    assert data(ops("show", login, "--json"))["frozen"] is True

    assert data(ops("unfreeze", login, "--json"))["frozen"] is False
    assert api.post("/api/v1/sessions", {"login": login, "password": password}).status_code == 201
    assert data(ops("timeline", login, "--json"))["items"][0]["kind"] == "account_unfrozen"


def test_an_adjustment_shows_the_balance_before_and_after_and_moves_only_when_confirmed(ops, customer):
    anna = customer()
    login = anna.profile["login"]
    data(ops("credit-payment", login, "20.00", "--reference", f"R-{uuid.uuid4().hex[:8]}", "--json"))

    declined = ops("adjust", login, "-5.00", "--reason", "goodwill refund of a fee", input="n\n")
    assert declined.exit_code == 7
    assert "20.00 EUR -> 15.00 EUR" in declined.output and "nothing changed" in declined.output
    assert anna.get("/api/v1/balance").json()["balance"] == eur("20.00")

    confirmed = ops("adjust", login, "-5.00", "--reason", "goodwill refund of a fee", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert anna.get("/api/v1/balance").json()["balance"] == eur("15.00")

    scripted = data(ops("adjust", login, "2.50", "--reason", "rounding", "--yes", "--json"))
    assert scripted["balance_before"] == eur("15.00") and scripted["balance_after"] == eur("17.50")
    assert scripted["transaction"]["kind"] == "adjustment" and scripted["transaction"]["description"] == "rounding"
    assert [t["amount"] for t in anna.get("/api/v1/balance/transactions").json()["items"][:2]] == \
        [eur("2.50"), eur("-5.00")]
    assert ops("adjust", login, "0", "--reason", "nothing", "--yes").exit_code == 2
    assert ops("adjust", login, "1.00", "--yes").exit_code == 2   # --reason is required


def test_the_audit_finds_the_books_sound(ops):
    assert data(ops("audit", "--json")) == {"discrepancies": []}
    human = ops("audit")
    assert human.exit_code == 0 and "sound" in human.stdout


def test_dead_letters_are_listed_shown_and_replayed_to_their_handler(ops, stack):
    queues = ["evt-orders-order_activated--notifier.order_activated",
              "evt-profile-security_code_set--notifier.security_code_set"]
    poisons = {queue: park_a_poison(stack.env, queue) for queue in queues}
    parked = {queue: eventually(lambda q=queue: dead_letter(ops, q, poisons[q]), timeout=60) for queue in queues}

    event = parked[queues[0]]
    assert event["attempts"] == 6 and event["error"] and event["payload"] == ["not an event"]
    shown = data(ops("deadletters", "show", event["id"], "--json"))
    assert shown == event
    assert error(ops("deadletters", "show", str(uuid.uuid4()), "--json"), 3)["code"] == "not_found"
    assert ops("deadletters", "replay").exit_code == 2   # --queue, --id or --all

    assert data(ops("deadletters", "replay", "--queue", queues[0], "--id", event["id"], "--json")) == {"replayed": 1}
    assert dead_letter(ops, queues[0], event["id"]) is None and dead_letter(ops, queues[1], poisons[queues[1]])
    # back at its handler with its attempts reset: it fails through every retry again, then is parked again
    assert eventually(lambda: dead_letter(ops, queues[0], event["id"]), timeout=60)["attempts"] == 6

    everything = ops("deadletters", "replay", "--all")
    assert everything.exit_code == 0 and "Replayed" in everything.stdout
    assert all(dead_letter(ops, queue, poisons[queue]) is None for queue in queues)


def test_the_console_script_reads_its_broker_from_the_environment(operator_amqp_uri, customer):
    anna = customer()
    script = Path(sys.executable).parent / "introserv-ops"
    assert script.exists(), "make install puts introserv-ops in the venv"
    env = {**os.environ, "OPERATOR_AMQP_URI": operator_amqp_uri, "INTROSERV_OPERATOR": OPERATOR}
    found = subprocess.run([script, "find", anna.profile["email"], "--json"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert found.returncode == 0, found.stderr
    assert [p["id"] for p in json.loads(found.stdout)["items"]] == [anna.profile["id"]]
    missing = subprocess.run([script, "show", str(uuid.uuid4())], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3 and "not_found" in missing.stderr


def test_the_readme_example_credits_a_payment(stack, customer):
    """clients/README.md's first example, run as it is written, with a real account id."""
    readme = (Path(__file__).parents[2] / "clients" / "README.md").read_text()
    example = readme.split("## Crediting a payment", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    anna = customer()
    program = example.replace("9f1c…-account-id", anna.profile["id"])
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PAYMENTS_AMQP_URI": stack.env["PAYMENTS_AMQP_URI"]})
    assert ran.returncode == 0, ran.stderr
    assert "12.50" in ran.stdout and anna.get("/api/v1/balance").json()["balance"] == eur("12.50")


def test_the_payment_system_and_the_support_desk_call_through_the_facades(stack, customer):
    """The README's examples: a payment credited, a support reply mailed to the customer."""
    anna = customer()
    with RpcClient(stack.env["PAYMENTS_AMQP_URI"], name="payments") as client:
        paid = Ledger(client).credit_payment(anna.profile["id"], Money(Decimal("12.50"), "EUR"),
                                             idempotency_key="bank:2026/11/0042", reference="2026/11/0042")
        assert paid["balance_after"] == Money(Decimal("12.50"), "EUR")
    with RpcClient(stack.env["SUPPORT_DESK_AMQP_URI"], name="support_desk") as client:
        sent = Notifier(client).notify(anna.profile["id"], "support_reply",
                                       {"ticket_id": "T-7", "ticket_subject": "Invoice address",
                                        "reply": "We have corrected it."}, idempotency_key="desk:T-7:1")
    assert sent["kind"] == "support_reply" and sent["to"] == anna.profile["email"]
    assert anna.get("/api/v1/balance").json()["balance"] == eur("12.50")


# -- dead letters, made for the test


def park_a_poison(env: dict, queue: str) -> str:
    """An event its handler cannot take, published as the outbox relay publishes events (by the source
    service's own login: no other may publish its events); its message id."""
    source, event_type = queue[len("evt-"):].split("--")[0].split("-", 1)
    message_id = str(uuid.uuid4())
    connection = pika.BlockingConnection(pika.URLParameters(env[f"{source.upper()}_AMQP_URI"]))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(f"{source}.events", event_type, json.dumps(["not an event"]),
                              pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                                   message_id=message_id, delivery_mode=2), mandatory=True)
    finally:
        connection.close()
    return message_id


def dead_letter(ops, queue: str, message_id: str) -> dict | None:
    items = data(ops("deadletters", "list", "--queue", queue, "--json"))["items"]
    return next((item for item in items if item["id"] == message_id), None)
