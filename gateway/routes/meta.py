"""Health for operators and the OpenAPI document."""
from __future__ import annotations

import eventlet

from gateway.http import json_response, route
from gateway.openapi import openapi_document
from gateway.schemas import HealthSchema
from services.common.config import SERVICES, env_float
from services.common.errors import DomainError
from services.common.health import VERSION, check_amqp

PING_TIMEOUT = env_float("HEALTH_PING_TIMEOUT", 2.0)


class MetaRoutes:
    @route("GET", "/health", auth=False, response=HealthSchema, summary="Gateway health and each service's",
           tags=("operations",), errors=(503,),
           description="Each service is pinged over RPC (2 s); 503 names the failing check.")
    def health(self, call):
        def ping(service):
            try:
                getattr(self, service).with_timeout(PING_TIMEOUT).ping()
                return service, "ok"
            except DomainError as exc:
                return service, f"failing: {exc.error_code}"
            except Exception as exc:
                return service, f"failing: {type(exc).__name__}"

        checks = {"amqp": check_amqp(self.container_config["AMQP_URI"])}
        pool = eventlet.GreenPool(len(SERVICES))
        checks.update(dict(pool.imap(ping, SERVICES)))
        healthy = all(value == "ok" for value in checks.values())
        body = {"service": "gateway", "status": "ok" if healthy else "failing", "version": VERSION,
                "checks": checks}
        return (200 if healthy else 503), body

    @route("GET", "/api/v1/openapi.json", auth=False, summary="This API's OpenAPI 3 document",
           tags=("operations",))
    def openapi(self, call):
        return json_response(200, openapi_document())
