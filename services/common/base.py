"""What every service process answers besides its own work: ``/health``, ``/metrics`` and ``ping``."""
from __future__ import annotations

from nameko.web.handlers import http

from services.common.health import HealthCheck
from services.common.logging import LogContext
from services.common.metrics import serve_metrics
from services.common.roles import EVERYONE
from services.common.rpc import rpc


class ServiceBase:
    """The base of every Nameko service class; a service's own ``db`` is what ``/health`` checks.

    A service with scrape-time readings of its own (the notifier's mail) defines ``metrics`` again
    with ``@serve_metrics(reading)``.
    """

    health = HealthCheck()
    log = LogContext()

    @serve_metrics()
    def metrics(self, request):
        """Prometheus metrics: answered by the entrypoint itself (services/common/metrics.py)."""

    @http("GET", "/health")
    def health_check(self, request):
        return self.health.response()

    @rpc(roles=EVERYONE)
    def ping(self):
        return "pong"
