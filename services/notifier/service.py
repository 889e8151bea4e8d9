"""The notifier service: every e-mail a customer must get, to the right address, once.

Each event handler records the message its event calls for (``Notifications.on_event``);
the timer hands due messages to the mail relay (``Sender.send_due``).
"""
from __future__ import annotations

from nameko.timer import timer

from services.common.base import ServiceBase
from services.common.clock import clock
from services.common.config import env_float
from services.common.database import Database
from services.common.events import handle_event
from services.common.logging import configure
from services.common.metrics import mail_deliveries, serve_metrics
from services.common.roles import GATEWAY, OPERATOR, STAFF, SUPPORT_DESK
from services.common.rpc import ServiceRpc, rpc
from services.notifier.application import Notifications, Sender, mail_by_state
from services.notifier.mailer import SmtpMailer
from services.notifier.models import Base

configure("notifier")
TICK_SECONDS = env_float("NOTIFIER_TICK_SECONDS", 2.0)


def mail_waiting_and_failed(uow):
    """Read at each scrape of ``/metrics``: mail waiting for the relay, and mail that failed."""
    return [mail_deliveries(mail_by_state(uow))]


class NotifierService(ServiceBase):
    name = "notifier"

    db = Database(Base.metadata)
    profile = ServiceRpc("profile")
    ledger = ServiceRpc("ledger")
    ledger_documents = ServiceRpc("ledger_documents")   # the invoices' PDFs, from the worker that keeps them

    @property
    def notifications(self) -> Notifications:
        return Notifications(self.db, self.profile, self.ledger, self.ledger_documents, clock)

    @serve_metrics(mail_waiting_and_failed)
    def metrics(self, request):
        """Prometheus metrics with the mail waiting and failed (services/common/metrics.py)."""

    # -- for support staff and operators (docs/CONTRACTS.md, RPC)
    @rpc(roles=GATEWAY | STAFF)
    def list_sent(self, account_id, limit=50, cursor=None):
        return self.notifications.list_sent(account_id, limit, cursor)

    @rpc(roles=OPERATOR)
    def send_newsletter(self, subject, text, idempotency_key=None):
        return self.notifications.send_newsletter(subject, text, idempotency_key)

    @rpc(roles=SUPPORT_DESK)
    def notify(self, account_id, kind, data, idempotency_key):
        return self.notifications.notify(account_id, kind, data, idempotency_key)

    # -- delivery: the relay gets what is due; temporary failures wait and come back
    @timer(interval=TICK_SECONDS)
    def send_due(self):
        Sender(self.db, SmtpMailer.from_env(), clock).send_due()

    # -- orders: order and money mail, to the invoices address (N3a)
    @handle_event("orders", "order_created")
    def order_created(self, payload):
        self.notifications.on_event("order_created", payload)

    @handle_event("orders", "order_activated")
    def order_activated(self, payload):
        self.notifications.on_event("order_activated", payload)

    @handle_event("orders", "order_renewed")
    def order_renewed(self, payload):
        self.notifications.on_event("order_renewed", payload)

    @handle_event("orders", "order_plan_changed")
    def order_plan_changed(self, payload):
        self.notifications.on_event("order_plan_changed", payload)

    @handle_event("orders", "order_cancelled")
    def order_cancelled(self, payload):
        self.notifications.on_event("order_cancelled", payload)

    @handle_event("orders", "renewal_due")
    def renewal_due(self, payload):
        self.notifications.on_event("renewal_due", payload)

    @handle_event("orders", "order_overdue")
    def order_overdue(self, payload):
        self.notifications.on_event("order_overdue", payload)

    @handle_event("orders", "order_suspended")
    def order_suspended(self, payload):
        self.notifications.on_event("order_suspended", payload)

    @handle_event("orders", "order_closed")
    def order_closed(self, payload):
        self.notifications.on_event("order_closed", payload)

    # -- ledger: money mail, to the invoices address (N3a)
    @handle_event("ledger", "refund_issued")
    def refund_issued(self, payload):
        self.notifications.on_event("refund_issued", payload)

    @handle_event("ledger", "balance_low")
    def balance_low(self, payload):
        self.notifications.on_event("balance_low", payload)

    @handle_event("ledger", "balance_running_out")
    def balance_running_out(self, payload):
        self.notifications.on_event("balance_running_out", payload)

    @handle_event("ledger", "monthly_statement")
    def monthly_statement(self, payload):
        self.notifications.on_event("monthly_statement", payload)

    # The invoice mail waits for the invoice's PDF, which the ledger's document worker announces.
    @handle_event("ledger", "invoice_pdf_ready")
    def invoice_pdf_ready(self, payload):
        self.notifications.on_event("invoice_pdf_ready", payload)

    # -- profile: security mail, to the main or the named address, never rerouted
    @handle_event("profile", "email_confirmation_requested")
    def email_confirmation_requested(self, payload):
        self.notifications.on_event("email_confirmation_requested", payload)

    @handle_event("profile", "email_changed")
    def email_changed(self, payload):
        self.notifications.on_event("email_changed", payload)

    @handle_event("profile", "password_reset_requested")
    def password_reset_requested(self, payload):
        self.notifications.on_event("password_reset_requested", payload)

    @handle_event("profile", "password_changed")
    def password_changed(self, payload):
        self.notifications.on_event("password_changed", payload)

    @handle_event("profile", "phone_changed")
    def phone_changed(self, payload):
        self.notifications.on_event("phone_changed", payload)

    @handle_event("profile", "ip_restriction_changed")
    def ip_restriction_changed(self, payload):
        self.notifications.on_event("ip_restriction_changed", payload)

    @handle_event("profile", "two_factor_enabled")
    def two_factor_enabled(self, payload):
        self.notifications.on_event("two_factor_enabled", payload)

    @handle_event("profile", "two_factor_disabled")
    def two_factor_disabled(self, payload):
        self.notifications.on_event("two_factor_disabled", payload)

    @handle_event("profile", "security_code_set")
    def security_code_set(self, payload):
        self.notifications.on_event("security_code_set", payload)

    @handle_event("profile", "account_frozen")
    def account_frozen(self, payload):
        self.notifications.on_event("account_frozen", payload)

    @handle_event("profile", "sessions_ended")
    def sessions_ended(self, payload):
        self.notifications.on_event("sessions_ended", payload)

    @handle_event("profile", "new_ip_login")
    def new_ip_login(self, payload):
        self.notifications.on_event("new_ip_login", payload)

    # -- profile: the copy of contact and settings the newsletter and money mail read (N1, N3a)
    @handle_event("profile", "account_registered")
    def remember_registration(self, payload):
        self.notifications.remember_contact(payload, registration=True)

    @handle_event("profile", "profile_changed")
    def remember_profile_change(self, payload):
        self.notifications.remember_contact(payload)

    @handle_event("profile", "email_changed")
    def remember_new_email(self, payload):
        self.notifications.remember_contact(payload, email_field="new_email")

    @handle_event("profile", "notification_settings_changed")
    def remember_consent(self, payload):
        self.notifications.remember_consent(payload)
