"""The HTTP gateway: the web panel's and any HTTP client's door to the services."""
from __future__ import annotations

from nameko.dependency_providers import Config

from gateway.http import trusted_proxies
from gateway.language import DEFAULT_LANGUAGE, requested_language
from gateway.panel.routes import PanelRoutes
from gateway.routes.balance_reports import BalanceReportRoutes
from gateway.routes.ledger import LedgerRoutes
from gateway.routes.meta import MetaRoutes
from gateway.routes.notifications import NotificationRoutes
from gateway.routes.orders import OrdersRoutes
from gateway.routes.profile import ProfileRoutes
from gateway.routes.security import SecurityRoutes
from gateway.routes.verification import VerificationRoutes
from gateway.sessions import AccessChanged, ProfileRpc, Vouched, ask_again_later
from services.common.config import order_write_timeout
from services.common.errors import DomainError
from services.common.logging import LogContext, configure
from services.common.metrics import serve_metrics_on_own_port
from services.common.rpc import ServiceRpc

configure("gateway")


class Gateway(ProfileRoutes, SecurityRoutes, NotificationRoutes, VerificationRoutes, LedgerRoutes,
              BalanceReportRoutes, OrdersRoutes, MetaRoutes, PanelRoutes):
    name = "gateway"

    vouched = Vouched()
    profile = ProfileRpc()
    orders = ServiceRpc("orders")
    # Placing, renewing, changing and cancelling call profile and the ledger in turn: a longer wait.
    order_writes = ServiceRpc("orders", timeout=order_write_timeout)
    ledger = ServiceRpc("ledger")
    notifier = ServiceRpc("notifier")
    verification = ServiceRpc("verification")
    container_config = Config()
    log = LogContext()

    proxies = trusted_proxies()

    # Not on the API's port: the figures (traffic, refusals, volumes) are for operators, and
    # the public port is whatever the ingress exposes (README "Metrics").
    @serve_metrics_on_own_port()
    def metrics(self, request):
        """Prometheus metrics on ``GATEWAY_METRICS_ADDRESS``, answered by the entrypoint itself."""

    @AccessChanged.decorator()
    def session_access_changed(self, payload):
        """profile's sessions of an account ended or narrowed: forgotten here, by the entrypoint itself."""

    def customer_language(self, call) -> str:
        """The caller's profile language, for a refusal whose request named none (English before login)."""
        if call.account_id is None:
            return DEFAULT_LANGUAGE
        try:
            return self.profile.get(call.account_id).get("language") or DEFAULT_LANGUAGE
        except DomainError:
            return DEFAULT_LANGUAGE

    def language_for(self, call) -> str:
        """The language to say something in: Accept-Language's, else the customer's profile language."""
        return requested_language(call.request) or self.customer_language(call)

    def authenticate(self, call) -> None:
        """Bearer token -> account, checked by the profile service (expiry, IP list, freeze)."""
        header = call.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise DomainError("unauthenticated", "Send Authorization: Bearer <token> from POST /api/v1/sessions.")
        token = token.strip()
        who = self.vouched.lookup(token, call.ip)
        if who is None:
            epoch = self.vouched.epoch
            who = self.profile.authenticate(token, call.ip)
            self.vouched.remember(token, call.ip, who, epoch)
        elif self.vouched.due(token, call.ip):
            ask_again_later(self.profile, self.vouched, token, call.ip)
        call.token = token
        call.account_id = who["account_id"]
        call.session_id = who["session_id"]
