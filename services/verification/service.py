"""The verification service."""
from __future__ import annotations

from nameko.web.handlers import http

from services.common.database import Database
from services.common.health import HealthCheck
from services.common.logging import LogContext, configure
from services.common.rpc import rpc
from services.verification.models import Base

configure("verification")


class VerificationService:
    name = "verification"

    db = Database(Base.metadata)
    health = HealthCheck()
    log = LogContext()

    @http("GET", "/health")
    def health_check(self, request):
        return self.health.response()

    @rpc
    def ping(self):
        return "pong"
