"""The ledger service: balances, the journal of money movements, invoices (B, I)."""
from __future__ import annotations

from nameko.timer import timer

from services.common.base import ServiceBase
from services.common.clock import clock
from services.common.config import env_float, rpc_timeout
from services.common.database import Database
from services.common.events import handle_event
from services.common.logging import configure
from services.common.metrics import LEDGER_AUDIT_DISCREPANCIES, LEDGER_AUDIT_FINISHED
from services.common.roles import GATEWAY, NOTIFIER, OPERATOR, ORDERS, PAYMENTS, PROFILE, STAFF
from services.common.rpc import Caller, ServiceRpc, rpc
from services.ledger.application import Ledger, default_currency
from services.ledger.documents.application import InvoicePdfs
from services.ledger.forecast import BalanceForecasts
from services.ledger.statements import Statements
from services.ledger.models import Base
from services.ledger.tax import Seller

configure("ledger")
SELLER = Seller.from_env()
AUDIT_SECONDS = env_float("LEDGER_AUDIT_SECONDS", 300.0)
STATEMENT_SECONDS = env_float("LEDGER_STATEMENT_SECONDS", 3600.0)


class LedgerService(ServiceBase):
    name = "ledger"

    db = Database(Base.metadata)
    profile = ServiceRpc("profile")
    # The document worker renders a PDF not stored yet; it answers (or is given up) before the caller's own wait ends.
    documents = ServiceRpc("ledger_documents", timeout=lambda: max(1.0, rpc_timeout() - 1.0))
    caller = Caller()

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.db, self.profile, clock, SELLER)

    @property
    def pdfs(self) -> InvoicePdfs:
        """The kept PDFs; one not kept yet is asked of the document worker (never rendered here)."""
        return InvoicePdfs(self.db, clock, worker=self.documents)

    @property
    def forecasts(self) -> BalanceForecasts:
        return BalanceForecasts(self.db, self.profile, clock, SELLER, default_currency())

    @property
    def statements(self) -> Statements:
        return Statements(self.db, self.profile, clock, default_currency())

    @timer(interval=AUDIT_SECONDS, eager=True)
    def audit_regularly(self):
        """The audit for the alert on /metrics; a replica that finds another one auditing skips its turn."""
        found = self.ledger.audit_unless_running()
        if found is not None:
            LEDGER_AUDIT_DISCREPANCIES.set(len(found))
            LEDGER_AUDIT_FINISHED.set_to_current_time()

    @timer(interval=STATEMENT_SECONDS)
    def monthly_statements(self):
        """Last month's statement announced to those who asked for one (the notifier mails it)."""
        self.statements.send_monthly()

    # -- money movements (docs/CONTRACTS.md)
    @rpc(roles=PAYMENTS | OPERATOR)
    def credit_payment(self, account_id, amount, idempotency_key, reference, method=None):
        return self.ledger.credit_payment(account_id, amount, idempotency_key, reference, method, caller=self.caller)

    @rpc(roles=ORDERS)
    def charge(self, account_id, amount, idempotency_key, reference, description, lines=None):
        return self.ledger.charge(account_id, amount, idempotency_key, reference, description, lines)

    @rpc(roles=ORDERS)
    def charge_order(self, account_id, amount, idempotency_key, reference, description, lines=None):
        return self.ledger.charge_order(account_id, amount, idempotency_key, reference, description, lines)

    @rpc(roles=ORDERS)
    def charge_orders(self, charges):
        return self.ledger.charge_orders(charges)

    @rpc(roles=ORDERS)
    def refund(self, account_id, amount, idempotency_key, reference, charge_id, description=None):
        return self.ledger.refund(account_id, amount, idempotency_key, reference, charge_id, description)

    @rpc(roles=OPERATOR)
    def adjust(self, account_id, amount, idempotency_key, reason, operator):
        return self.ledger.adjust(account_id, amount, idempotency_key, reason, operator, caller=self.caller)

    @rpc(roles=OPERATOR)
    def set_credit_limit(self, account_id, limit, operator):
        return self.ledger.set_credit_limit(account_id, limit, operator, caller=self.caller)

    # -- reading
    @rpc(roles=GATEWAY | PAYMENTS | PROFILE | STAFF)
    def get_balance(self, account_id):
        return self.ledger.get_balance(account_id)

    @rpc(roles=GATEWAY | STAFF)
    def list_transactions(self, account_id, limit=50, cursor=None):
        return self.ledger.list_transactions(account_id, limit, cursor)

    @rpc(roles=OPERATOR)
    def audit(self):
        return self.ledger.audit()

    @rpc(roles=ORDERS | OPERATOR)
    def price(self, account_id, amount):
        return self.ledger.price(account_id, amount)

    @rpc(roles=ORDERS)
    def forecast(self, account_id, schedule, horizon_days):
        return self.forecasts.forecast(account_id, schedule, horizon_days)

    @rpc(roles=ORDERS)
    def alerted_accounts(self, limit=None, cursor=None):
        return self.forecasts.alerted_accounts(limit, cursor)

    @rpc(roles=GATEWAY | STAFF)
    def statement(self, account_id, from_, to):
        return self.statements.statement(account_id, from_, to)

    @rpc(roles=GATEWAY | NOTIFIER | STAFF)
    def statement_pdf(self, account_id, from_, to):
        """The statement drawn by the document worker (ReportLab never loads here)."""
        statement = self.statements.statement(account_id, from_, to)
        return {**self.documents.render_statement_pdf(statement), "from": statement["from"], "to": statement["to"]}

    @rpc(roles=GATEWAY | STAFF)
    def invoice_archive_page(self, account_id, year, limit=100, cursor=None):
        return self.statements.archive_page(account_id, year, limit, cursor)

    @rpc(roles=GATEWAY | STAFF)
    def list_invoices(self, account_id, limit=50, cursor=None):
        return self.ledger.list_invoices(account_id, limit, cursor)

    @rpc(roles=GATEWAY | STAFF)
    def get_invoice(self, invoice_id, account_id=None):
        return self.ledger.get_invoice(invoice_id, account_id)

    @rpc(roles=GATEWAY | NOTIFIER | STAFF)
    def get_invoice_pdf(self, invoice_id, account_id=None):
        return self.pdfs.get(invoice_id, account_id)

    @rpc(roles=GATEWAY | OPERATOR)
    def payment_methods(self, account_id):
        return self.ledger.payment_methods(account_id)

    # -- what profile tells us
    @handle_event("profile", "account_registered")
    def on_account_registered(self, event):
        self.ledger.account_registered(event)

    @handle_event("profile", "notification_settings_changed")
    def on_notification_settings_changed(self, event):
        self.ledger.notification_settings_changed(event)

    @handle_event("profile", "profile_changed")
    def on_profile_changed(self, event):
        self.ledger.profile_changed(event)

    @handle_event("profile", "country_changed")
    def on_country_changed(self, event):
        self.ledger.profile_changed(event)

    @handle_event("profile", "company_reviewed")
    def on_company_reviewed(self, event):
        self.ledger.profile_changed(event)
