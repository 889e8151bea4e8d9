"""``GET /health`` for operators: the service, its version, and each dependency's state."""
from __future__ import annotations

import json

from kombu import Connection
from nameko.extensions import DependencyProvider

from services.common.config import env

VERSION = env("APP_VERSION", "0.1.0")


def check_amqp(uri: str) -> str:
    try:
        with Connection(uri, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # any failure to reach the broker is the answer
        return f"failing: {type(exc).__name__}"


class HealthCheck(DependencyProvider):
    """``self.health.response()`` in a service's ``@http("GET", "/health")`` entrypoint."""

    def __init__(self, database_attr: str | None = "db"):
        self.database_attr = database_attr

    def _database(self):
        for dependency in self.container.dependencies:
            if getattr(dependency, "attr_name", None) == self.database_attr:
                return dependency
        return None

    def report(self, extra: dict | None = None) -> tuple[int, dict]:
        checks = {"amqp": check_amqp(self.container.config["AMQP_URI"])}
        database = self._database()
        if database is not None:
            try:
                database.unit_of_work().ping()
                checks["database"] = "ok"
            except Exception as exc:
                checks["database"] = f"failing: {type(exc).__name__}"
        checks.update(extra or {})
        healthy = all(value == "ok" for value in checks.values())
        body = {"service": self.container.service_name, "status": "ok" if healthy else "failing",
                "version": VERSION, "checks": checks}
        return (200 if healthy else 503), body

    def response(self, extra: dict | None = None):
        status, body = self.report(extra)
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def get_dependency(self, worker_ctx):
        return self
