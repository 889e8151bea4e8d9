"""The notifier service."""
from __future__ import annotations

from nameko.web.handlers import http

from services.common.database import Database
from services.common.health import HealthCheck
from services.common.logging import LogContext, configure
from services.common.rpc import rpc
from services.notifier.models import Base

configure("notifier")


class NotifierService:
    name = "notifier"

    db = Database(Base.metadata)
    health = HealthCheck()
    log = LogContext()

    @http("GET", "/health")
    def health_check(self, request):
        return self.health.response()

    @rpc
    def ping(self):
        return "pong"
