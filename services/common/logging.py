"""structlog for every process: JSON when ``LOG_FORMAT=json``, readable otherwise.

Each line carries the service, the Nameko call id and the gateway's request id. The request
id travels in Nameko's context data (``worker_ctx.data``), which Nameko copies into the
headers of every RPC and event a worker sends, so a whole request can be followed across
services.
"""
from __future__ import annotations

import logging
import sys

import structlog
from nameko.extensions import DependencyProvider

from services.common.config import env

REQUEST_ID = "request_id"


def configure(service: str) -> None:
    """Route stdlib logging (Nameko's own lines) and structlog through one renderer."""
    json_lines = env("LOG_FORMAT", "console") == "json"
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    # Plain tracebacks: the same lines whether or not rich is installed (deploy/process.py).
    renderer = (structlog.processors.JSONRenderer() if json_lines else
                structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback))
    structlog.configure(
        processors=shared + [structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(env("LOG_LEVEL", "INFO"))
    for noisy in ("kombu", "amqp", "urllib3", "nameko.messaging", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_service(service: str):
    def processor(_, __, event_dict):
        event_dict.setdefault("service", service)
        return event_dict
    return processor


class LogContext(DependencyProvider):
    """Binds call id, request id and an RPC's caller (its broker login) to every log line a worker writes."""

    def worker_setup(self, worker_ctx):
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            call_id=worker_ctx.call_id,
            request_id=worker_ctx.data.get(REQUEST_ID),
        )
        if worker_ctx.data.get("caller"):   # services.common.rpc.CALLER, set by the RPC entrypoint
            structlog.contextvars.bind_contextvars(caller=worker_ctx.data["caller"])

    def worker_teardown(self, worker_ctx):
        structlog.contextvars.clear_contextvars()

    def get_dependency(self, worker_ctx):
        return structlog.get_logger(worker_ctx.service_name)
