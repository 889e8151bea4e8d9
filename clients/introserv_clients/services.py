"""One small typed facade per service, for what other Introserv systems and support staff call.

Each wraps an :class:`~introserv_clients.rpc.RpcClient`; arguments and answers are the RPC
contract's (docs/CONTRACTS.md in the services' repository), except that money is
:class:`~introserv_clients.money.Money` both ways and lists are :class:`Page`. Refusals raise
the exceptions of :mod:`introserv_clients.errors`.

    ledger = Ledger(RpcClient.for_role("payments"))
    ledger.credit_payment(account_id, Money(Decimal("12.50"), "EUR"), idempotency_key="bank:2026/11/0042",
                          reference="2026/11/0042")
"""
from __future__ import annotations

from dataclasses import dataclass, field

from introserv_clients.money import Money, money_in
from introserv_clients.rpc import RpcClient


@dataclass
class Page:
    """One page of a list, newest first; pass ``next_cursor`` back for the next (None: the last page)."""

    items: list = field(default_factory=list)
    next_cursor: str | None = None

    @classmethod
    def of(cls, answer: dict) -> Page:
        return cls(answer["items"], answer.get("next_cursor"))

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class _Facade:
    service: str

    def __init__(self, client: RpcClient):
        self.client = client

    def _call(self, method: str, *args, **kwargs):
        return money_in(self.client.call(self.service, method, args, kwargs))


class Profile(_Facade):
    """Accounts and their personal data, security and state."""

    service = "profile"

    def get(self, account_id: str) -> dict:
        """The profile (the contract's Profile shape, docs/CONTRACTS.md)."""
        return self._call("get", account_id)

    def find_by_login(self, login: str) -> dict:
        return self._call("find_by_login", login)

    def find_by_email(self, email: str) -> Page:
        """Every account whose main e-mail is this address, whatever its case."""
        return Page.of(self._call("find_by_email", email))

    def account_overview(self, account_id: str) -> dict:
        """For support: the profile plus ``frozen`` and ``security`` (what is set, never the secrets)."""
        return self._call("account_overview", account_id)

    def security_events(self, account_id: str, limit: int = 50, cursor: str | None = None) -> Page:
        """The security timeline: logins from new addresses, changes, freezes, code checks ..."""
        return Page.of(self._call("security_events", account_id, limit, cursor))

    def change_country(self, account_id: str, country: str, ticket_id: str) -> dict:
        return self._call("change_country", account_id, country, ticket_id)

    def review_company(self, account_id: str, approved: bool, operator: str) -> dict:
        """Approve (``verified``) or refuse (``rejected``) the company data an account entered."""
        return self._call("review_company", account_id, approved, operator)

    def check_security_code(self, account_id: str, code: str) -> bool:
        """Whether the code a caller reads out is the account's (five wrong tries an hour: RateLimited)."""
        return self._call("check_security_code", account_id, code)

    def freeze(self, account_id: str, operator: str) -> dict:
        """End every session and refuse logins until support unfreezes the account."""
        return self._call("freeze_by_operator", account_id, operator)

    def unfreeze(self, account_id: str, operator: str) -> dict:
        return self._call("unfreeze", account_id, operator)


class Ledger(_Facade):
    """Balances, the journal of money movements, invoices."""

    service = "ledger"

    def credit_payment(self, account_id: str, amount: Money, idempotency_key: str, reference: str | None,
                       method: str | None = None) -> dict:
        """A payment arrived: the transaction. The same key again answers the first transaction and
        moves nothing; the same key with other arguments is IdempotencyConflict. ``method`` is a payment
        method id offered to this customer (``method_not_offered`` otherwise), or None."""
        return self._call("credit_payment", account_id, _money(amount), idempotency_key, reference, method)

    def get_balance(self, account_id: str) -> Money:
        return self._call("get_balance", account_id)

    def list_transactions(self, account_id: str, limit: int = 50, cursor: str | None = None) -> Page:
        return Page.of(self._call("list_transactions", account_id, limit, cursor))

    def adjust(self, account_id: str, amount: Money, idempotency_key: str, reason: str, operator: str) -> dict:
        """An operator's correction: a positive amount credits, a negative one debits."""
        return self._call("adjust", account_id, _money(amount), idempotency_key, reason, operator)

    def audit(self) -> list[dict]:
        """Every discrepancy of the books (each balance recomputed from the journal); empty when sound."""
        return self._call("audit")

    def list_invoices(self, account_id: str, limit: int = 50, cursor: str | None = None) -> Page:
        return Page.of(self._call("list_invoices", account_id, limit, cursor))

    def get_invoice(self, invoice_id: str) -> dict:
        return self._call("get_invoice", invoice_id)


class Orders(_Facade):
    """Plans and orders."""

    service = "orders"

    def list_orders(self, account_id: str, status: str | None = None, limit: int = 50,
                    cursor: str | None = None) -> Page:
        return Page.of(self._call("list_orders", account_id, status, limit, cursor))

    def get_order(self, order_id: str) -> dict:
        return self._call("get_order", order_id)

    def list_plans(self, kind: str | None = None) -> Page:
        return Page.of(self._call("list_plans", kind))


class Notifier(_Facade):
    """E-mail to customers."""

    service = "notifier"

    def notify(self, account_id: str, kind: str, data: dict, idempotency_key: str) -> dict:
        """``support_reply`` ({ticket_id, ticket_subject, reply}) to the support address, or ``abuse_report``
        ({report_id, ip_address, summary, respond_by, order_id?}) to the complaints address; once per key."""
        return self._call("notify", account_id, kind, data, idempotency_key)

    def list_sent(self, account_id: str, limit: int = 50, cursor: str | None = None) -> Page:
        return Page.of(self._call("list_sent", account_id, limit, cursor))

    def send_newsletter(self, subject: str, text: str, idempotency_key: str | None = None) -> dict:
        return self._call("send_newsletter", subject, text, idempotency_key)


class Verification(_Facade):
    """Phone verification by flash call, voice call or SMS."""

    service = "verification"

    def start(self, account_id: str, phone: str, channel: str, purpose: str) -> dict:
        return self._call("start", account_id, phone, channel, purpose)

    def check(self, verification_id: str, code: str) -> dict:
        return self._call("check", verification_id, code)


def _money(amount: Money) -> dict:
    if not isinstance(amount, Money):
        raise TypeError(f"money must be Money(Decimal(...), currency), not {type(amount).__name__}")
    return amount.to_wire()
