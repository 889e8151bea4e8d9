"""Stand-ins the tests share: for other services (profile, the ledger) where a test runs one
service alone, and for the outside world (VIES, the mail relay) speaking its real protocol.

``FakeProfile`` and ``FakeLedger`` answer as docs/CONTRACTS.md says the real services do. Called
in-process (a use case given them as its collaborators), or served over RabbitMQ as a Nameko
service named like the real one: ``run_service(FakeLedger().service())``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from nameko.events import EventDispatcher

from deploy.dev import StandIn
from deploy.ports import free_port
from services.common.errors import DomainError
from services.common.money import Money
from services.common.profile_copy import COPIED
from services.common.rpc import rpc

POSTAL_ADDRESS = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}
NOTIFICATION_SETTINGS = ("newsletter", "low_balance_threshold", "emails")


def profile_of(account_id: str, **overrides) -> dict:
    """The Profile shape of a Polish individual with a postal address, as ``profile.get`` answers."""
    return {"id": account_id, "login": f"c{account_id[:8]}", "first_name": "Anna", "last_name": "Nowak",
            "email": f"{account_id[:8]}@example.com", "email_confirmed": True, "phone": None,
            "phone_verified": False, "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL",
            "postal_address": dict(POSTAL_ADDRESS), "profile_type": "individual", "company_name": None,
            "vat_id": None, "company_verification": "none", "vat_id_check": "not_checked",
            "vat_id_checked_at": None, "payments_blocked": False, "language": "en",
            "created_at": "2026-01-01T00:00:00Z", **overrides}


def profile_event(account_id: str, at: datetime | None = None, **changes) -> dict:
    """An event of profile carrying the customer as billed (``account_registered``, ``profile_changed``
    ...), as profile's outbox writes it: what the ledger's and orders' copies of the customer are kept from."""
    profile = profile_of(account_id, **changes)
    at = at or datetime.now(timezone.utc)
    return {"event_id": str(uuid.uuid4()), "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "account_id": account_id, **{name: profile[name] for name in COPIED}}



def roles_of(method: str) -> frozenset[str]:
    """The roles the real service's method answers (docs/rpc-roles.md): a stand-in answers the same callers."""
    from deploy.bus import rpc_methods
    return rpc_methods()[method]

class FakeProfile:
    """profile as the other services call it: ``get``, ``notification_settings``, ``require_operation_proof``.

    Knows the accounts given to :meth:`add`; any other is ``not_found``, unless ``anyone`` is set:
    then every account exists (as ``defaults`` describe it) but those whose id starts with ``ghost``.
    """

    def __init__(self, anyone: bool = False, **defaults):
        self.accounts: dict[str, dict] = {}
        self.settings: dict[str, dict] = {}
        self.anyone = anyone
        self.defaults = defaults
        self.calls = 0
        self.settings_asked: Counter[str] = Counter()   # notification_settings calls per account

    def add(self, account_id: str | None = None, **overrides) -> str:
        """A new account: Profile fields and notification settings (newsletter, emails, ...) as overrides."""
        account_id = account_id or str(uuid.uuid4())
        self.settings[account_id] = {name: overrides.pop(name) for name in NOTIFICATION_SETTINGS if name in overrides}
        self.accounts[account_id] = profile_of(account_id, **{**self.defaults, **overrides})
        return account_id

    def get(self, account_id) -> dict:
        self.calls += 1
        if account_id in self.accounts:
            return dict(self.accounts[account_id])
        if self.anyone and isinstance(account_id, str) and not account_id.startswith("ghost"):
            return profile_of(account_id, **self.defaults)
        raise DomainError("not_found", "No such account.")

    def notification_settings(self, account_id) -> dict:
        self.settings_asked[account_id] += 1
        profile = self.get(account_id)
        settings = {"newsletter": False, "low_balance_threshold": None, "low_balance_days": None, "monthly_statement": False, **self.settings.get(account_id, {})}
        settings["emails"] = {"invoices": None, "support": None, "complaints": None, **settings.get("emails", {})}
        return {"account_id": account_id, **{name: profile[name] for name in (
            "email", "email_confirmed", "first_name", "last_name", "language")}, **settings}

    def require_operation_proof(self, account_id, operation, verification_id=None, reference=None) -> dict:
        return {"required": False}  # these customers do not confirm operations by call

    def service(self) -> type:
        """A Nameko service named ``profile`` answering from this fake."""
        fake = self

        class Profile:
            name = "profile"

            @rpc(roles=roles_of("profile.get"))
            def get(self, account_id):
                return fake.get(account_id)

            @rpc(roles=roles_of("profile.notification_settings"))
            def notification_settings(self, account_id):
                return fake.notification_settings(account_id)

            @rpc(roles=roles_of("profile.require_operation_proof"))
            def require_operation_proof(self, account_id, operation, verification_id=None, reference=None):
                return fake.require_operation_proof(account_id, operation, verification_id, reference)
        return Profile


class FakeLedger:
    """The ledger's books in memory, kept like the real ledger keeps them (docs/CONTRACTS.md).

    An idempotency key of an account is bound to its call's arguments: the same ones replay the first
    answer, others are ``idempotency_conflict``; a charge needs the money (``insufficient_funds``); a
    refund never exceeds its charge. Every price is what an individual pays (the list price).
    ``fail_after_charge`` (an exception) makes the next charge take the money and
    then raise it, as a ledger whose answer was lost. Served, every movement announces ``balance_changed``
    with the account's ``alert_in_days`` (None unless set here), and ``forecast`` notes who asked.
    """

    def __init__(self):
        self.lock = threading.Lock()   # the served ledger's workers share these books
        self.balances: dict[str, int] = {}
        self.keys: dict[tuple[str, str], tuple] = {}
        self.charges: dict[str, dict] = {}
        self.refunded: dict[str, int] = {}
        self.journal: list[dict] = []
        self.invoice_pdfs: dict[str, bytes] = {}
        self.pdfs_given: Counter[str] = Counter()   # get_invoice_pdf answers by the service that gave them
        self.fail_after_charge: BaseException | None = None
        self.alert_in_days: dict[str, int] = {}
        self.forecasts_asked: list[str] = []

    def fund(self, account_id: str, amount: str) -> None:
        self.balances[account_id] = Money.of(amount, "EUR").minor

    def balance(self, account_id: str) -> str:
        """The balance as the customer reads it: ``"40.10"``."""
        return Money(self.balances.get(account_id, 0), "EUR").amount

    def charged_keys(self, account_id: str) -> list[str]:
        """The idempotency keys of the account's charges, oldest first."""
        return [entry["key"] for entry in self.journal if entry["account_id"] == account_id and entry["kind"] == "charge"]

    def price(self, account_id, amount) -> dict:
        gross = Money.from_wire(amount)
        return {"net": gross.to_wire(), "vat": Money.zero("EUR").to_wire(), "gross": gross.to_wire(),
                "vat_rate": "0.00", "tax_treatment": "standard"}

    def charge(self, account_id, amount, idempotency_key, reference, description, lines=None) -> dict:
        minor = Money.from_wire(amount).minor
        if lines:
            assert sum(Money.from_wire(line["gross"]).minor for line in lines) == minor, lines
        transaction, new = self._move("charge", account_id, minor, idempotency_key,
                                      (amount, reference, description, lines), {"reference": reference})
        failure = self.fail_after_charge if new else None
        if failure is not None:
            self.fail_after_charge = None
            raise failure
        return transaction

    def charge_order(self, account_id, amount, idempotency_key, reference, description, lines=None) -> dict:
        """A list price priced (an individual pays it) and charged in one call, like the real ledger's."""
        minor = Money.from_wire(amount).minor
        if lines:
            assert sum(Money.from_wire(line["gross"]).minor for line in lines) == minor, lines
        transaction, new = self._move("charge", account_id, minor, idempotency_key,
                                      ("charge_order", amount, reference, description, lines), {"reference": reference})
        failure = self.fail_after_charge if new else None
        if failure is not None:
            self.fail_after_charge = None
            raise failure
        return transaction

    def charge_orders(self, charges: list[dict]) -> list[dict]:
        """Many ``charge_order`` calls in one, each answered in its place, like the real ledger's; with
        ``fail_after_charge``, every charge is taken and then the call raises it (its answer lost)."""
        failure, self.fail_after_charge = self.fail_after_charge, None
        answers = []
        for charge in charges:
            try:
                answers.append({"transaction": FakeLedger.charge_order(self, **charge)})
            except DomainError as refused:
                answers.append({"error": {"code": refused.error_code, "message": refused.message}})
        if failure is not None:
            raise failure
        return answers

    def refund(self, account_id, amount, idempotency_key, reference, charge_id, description) -> dict:
        return self._move("refund", account_id, Money.from_wire(amount).minor, idempotency_key,
                          (amount, reference, charge_id, description),
                          {"reference": reference, "charge_id": charge_id})[0]

    def credit_payment(self, account_id, amount, idempotency_key, reference, method=None) -> dict:
        return self._move("payment", account_id, Money.from_wire(amount).minor, idempotency_key,
                          (amount, reference, method), {"reference": reference})[0]

    def get_balance(self, account_id) -> dict:
        return Money(self.balances.get(account_id, 0), "EUR").to_wire()

    def get_invoice_pdf(self, invoice_id, account_id=None, given_by: str = "ledger") -> dict:
        self.pdfs_given[given_by] += 1
        if invoice_id not in self.invoice_pdfs:
            raise DomainError("not_found", "No such invoice.")
        content = self.invoice_pdfs[invoice_id]
        return {"invoice_id": invoice_id, "number": None, "kind": "invoice",
                "content": base64.b64encode(content).decode(), "sha256": hashlib.sha256(content).hexdigest()}

    def _move(self, kind, account_id, minor, key, arguments, extra) -> tuple[dict, bool]:
        """(the transaction, whether it is new) of one movement under an idempotency key."""
        with self.lock:
            if (account_id, key) in self.keys:
                first, transaction = self.keys[account_id, key]
                if first != (kind, arguments):
                    raise DomainError("idempotency_conflict", "This key was used with other arguments.")
                return transaction, False
            balance = self.balances.get(account_id, 0)
            if kind == "charge" and balance < minor:
                raise DomainError("insufficient_funds", "Not enough money on the balance.")
            if kind == "refund":
                charge = self.charges.get(extra["charge_id"])
                if charge is None or charge["account_id"] != account_id:
                    raise DomainError("not_found", "No such charge.")
                if self.refunded.get(extra["charge_id"], 0) + minor > charge["minor"]:
                    raise DomainError("refund_exceeds_charge", "More than the charge.")
                self.refunded[extra["charge_id"]] = self.refunded.get(extra["charge_id"], 0) + minor
            signed = -minor if kind == "charge" else minor
            self.balances[account_id] = balance + signed
            transaction = {"id": f"t-{uuid.uuid4().hex[:12]}", "kind": kind, "amount": Money(signed, "EUR").to_wire(),
                           "balance_after": Money(balance + signed, "EUR").to_wire(), "invoice_id": None, **extra}
            if kind == "charge":
                self.charges[transaction["id"]] = {"account_id": account_id, "minor": minor}
            self.journal.append({"account_id": account_id, "minor": signed, "key": key, **transaction})
            self.keys[account_id, key] = ((kind, arguments), transaction)
            return transaction, True

    def forecast(self, account_id: str, schedule: list, horizon_days: int) -> dict:
        """Notes who asked; says nothing is planned (the real walk is the ledger's, tested there)."""
        self.forecasts_asked.append(account_id)
        return {"renewals": [], "stops": None, "days": None, "renews_nothing": not schedule}

    def alerted_accounts(self, limit=None, cursor=None) -> dict:
        """The accounts in ``alert_in_days`` with a value, a page at a time (the cursor: the last one given)."""
        alerted = sorted((a for a, days in self.alert_in_days.items() if days is not None), reverse=True)
        after = [a for a in alerted if cursor is None or a < cursor]
        page = after[:limit or 50]
        return {"items": page, "next_cursor": page[-1] if len(after) > len(page) else None}

    def service(self) -> type:
        """A Nameko service named ``ledger`` keeping these books; each new movement announces ``balance_changed``."""
        books = self
        announced: set[str] = set()

        class Ledger:
            name = "ledger"
            dispatch = EventDispatcher()

            def _announce(self, account_id, transaction):
                with books.lock:
                    if transaction["id"] in announced:   # a replay moved nothing
                        return transaction
                    announced.add(transaction["id"])
                self.dispatch("balance_changed", {"event_id": str(uuid.uuid4()), "account_id": account_id,
                                                  "transaction_id": transaction["id"], "kind": transaction["kind"],
                                                  "amount": transaction["amount"],
                                                  "balance": transaction["balance_after"],
                                                  "alert_in_days": books.alert_in_days.get(account_id)})
                return transaction

            @rpc(roles=roles_of("ledger.price"))
            def price(self, account_id, amount):
                return books.price(account_id, amount)

            @rpc(roles=roles_of("ledger.charge"))
            def charge(self, account_id, amount, idempotency_key, reference, description, lines=None):
                return self._announce(account_id, books.charge(account_id, amount, idempotency_key, reference,
                                                               description, lines))

            @rpc(roles=roles_of("ledger.charge_order"))
            def charge_order(self, account_id, amount, idempotency_key, reference, description, lines=None):
                return self._announce(account_id, books.charge_order(account_id, amount, idempotency_key, reference,
                                                                     description, lines))

            @rpc(roles=roles_of("ledger.charge_orders"))
            def charge_orders(self, charges):
                answers = books.charge_orders(charges)
                for charge, answer in zip(charges, answers):
                    if "transaction" in answer:
                        self._announce(charge["account_id"], answer["transaction"])
                return answers

            @rpc(roles=roles_of("ledger.refund"))
            def refund(self, account_id, amount, idempotency_key, reference, charge_id, description):
                return self._announce(account_id, books.refund(account_id, amount, idempotency_key, reference,
                                                               charge_id, description))

            @rpc(roles=roles_of("ledger.credit_payment"))
            def credit_payment(self, account_id, amount, idempotency_key, reference, method=None):
                return self._announce(account_id, books.credit_payment(account_id, amount, idempotency_key,
                                                                       reference, method))

            @rpc(roles=roles_of("ledger.get_balance"))
            def get_balance(self, account_id):
                return books.get_balance(account_id)

            @rpc(roles=roles_of("ledger.get_invoice_pdf"))
            def get_invoice_pdf(self, invoice_id, account_id=None):
                return books.get_invoice_pdf(invoice_id, account_id)

            @rpc(roles=roles_of("ledger.forecast"))
            def forecast(self, account_id, schedule, horizon_days):
                return books.forecast(account_id, schedule, horizon_days)

            @rpc(roles=roles_of("ledger.alerted_accounts"))
            def alerted_accounts(self, limit=None, cursor=None):
                return books.alerted_accounts(limit, cursor)
        return Ledger

    def documents_service(self) -> type:
        """A Nameko service named ``ledger_documents`` giving the PDFs of these books."""
        books = self

        class LedgerDocuments:
            name = "ledger_documents"

            @rpc(roles=roles_of("ledger_documents.get_invoice_pdf"))
            def get_invoice_pdf(self, invoice_id, account_id=None):
                return books.get_invoice_pdf(invoice_id, account_id, given_by="ledger_documents")
        return LedgerDocuments


class ViesStandIn:
    """The EU's VIES register as its REST API answers: ``GET .../ms/<prefix>/vat/<number>``.

    ``registered`` holds the VAT ids it knows (``DE136695976``); ``mode`` is ``ok``, ``down``
    (the member state does not answer: ``MS_UNAVAILABLE``) or ``slow`` (answers after ``delay``
    seconds). ``asked`` lists the VAT ids it was asked about, in order. Use it as a context manager.
    """

    PATH = re.compile(r"^/rest-api/ms/(?P<prefix>[A-Z]{2})/vat/(?P<number>[0-9A-Z+*]+)$")

    def __init__(self, registered=(), mode: str = "ok", delay: float = 0.0):
        self.registered = set(registered)
        self.mode = mode
        self.delay = delay
        self.asked: list[str] = []
        self._server = None

    @property
    def url(self) -> str:
        """The ``VIES_URL`` template that points the services here."""
        return f"http://127.0.0.1:{self._server.server_port}/rest-api/ms/{{prefix}}/vat/{{number}}"

    def answer(self, prefix: str, number: str) -> dict:
        vat_id = prefix + number
        self.asked.append(vat_id)
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "down":
            return {"isValid": False, "requestDate": "2026-11-29T10:00:00.000Z", "userError": "MS_UNAVAILABLE",
                    "name": "---", "address": "---", "vatNumber": number}
        known = vat_id in self.registered
        return {"isValid": known, "requestDate": "2026-11-29T10:00:00.000Z",
                "userError": "VALID" if known else "INVALID", "name": "SCHMIDT GMBH" if known else "---",
                "address": "HAUPTSTRASSE 1, 10115 BERLIN" if known else "---", "vatNumber": number}

    def __enter__(self) -> "ViesStandIn":
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                found = stand_in.PATH.match(self.path)
                if not found:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(stand_in.answer(found["prefix"], found["number"])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


class MailRelay:
    """The team's SMTP relay stand-in (deploy/dev/mail.py) in a process of its own, on free ports:
    what it received per address, and its ``/control`` (``ok``, ``tempfail``, ``permfail``, unknown recipients).
    Use it as a context manager; :meth:`reset` empties it and makes it accept again.
    """

    def __init__(self):
        self.port, http_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{http_port}"
        self._process = StandIn("deploy.dev.mail", ["--smtp-port", str(self.port), "--http-port", str(http_port)],
                                f"{self.url}/health")

    def to(self, address: str) -> list[dict]:
        return requests.get(f"{self.url}/messages", params={"to": address}, timeout=5).json()["items"]

    def refuse(self, mode: str, unknown_recipients: tuple[str, ...] = ()) -> None:
        """Answer in ``mode`` (``ok``, ``tempfail``, ``permfail``), and refuse these addresses at RCPT TO
        (550 5.1.1) whatever the mode."""
        requests.put(f"{self.url}/control", json={"mode": mode, "unknown_recipients": list(unknown_recipients)},
                     timeout=5).raise_for_status()

    def reset(self) -> None:
        requests.delete(f"{self.url}/messages", timeout=5)
        self.refuse("ok")

    def restart(self) -> None:
        """The relay goes away and comes back on the same ports, empty: connections to it are gone."""
        self._process.stop()
        self._process.start()

    def __enter__(self) -> "MailRelay":
        self._process.start()
        return self

    def __exit__(self, *exc):
        self._process.stop()
