"""Prometheus metrics: what the services count, and ``GET /metrics`` to read it.

Every family the suite exports is declared here, so this module is also their catalogue
(README "Metrics", deploy/grafana, deploy/prometheus/alerts.yml). A service replica is one
process (Nameko under eventlet), so prometheus_client's default registry is that replica's
own and no multiprocess mode is needed; it also brings the ``process_*`` families (resident
memory, CPU, open files).

Two kinds of figures:
- Counters and histograms move where the work happens: the RPC entrypoint
  (:class:`MeasuredRpc`, mixed into ``services.common.rpc.Rpc``), the event handler
  (``services.common.events``), the telephony router, the gateway's WSGI app
  (:class:`MeasuredHttp`), the ledger's periodic audit.
- What lives in a database table or a queue (the outbox's backlog, mail waiting, dead
  letters) is read when Prometheus scrapes, with one cheap query each, so every replica
  reports the same truth and no timer has to keep a gauge fresh.

``GET /metrics`` is answered by the entrypoint itself, without a worker: a service whose
workers are all busy is exactly the one whose figures are wanted.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import eventlet
import structlog
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, parse_address
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from services.common.clock import as_utc, clock
from services.common.errors import HTTP_STATUS, DomainError

log = structlog.get_logger(__name__)

# -- the families that move with the work ---------------------------------------------------

RPC_CALLS = Counter(
    "introserv_rpc_calls", "RPC calls a service answered, by method and outcome: ok; refused "
    "with an error code of the contract (code); error, an exception of ours (code: its type).",
    ["service", "method", "outcome", "code"])
RPC_SECONDS = Histogram(
    "introserv_rpc_duration_seconds", "Time from an RPC request's arrival to its answer.",
    ["service", "method"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15))
EVENTS = Counter(
    "introserv_events", "Events an event handler's queue took: handled; retried (parked in "
    "<queue>.delayed); dead_lettered (parked in <queue>.dead); requeued (could not be parked).",
    ["service", "queue", "outcome"])
VERIFICATION_CALLS = Counter(
    "introserv_verification_calls", "Calls and texts asked of a telephony gateway (primary or "
    "fallback) and what came of it: ok, timeout, unreachable, refused (an HTTP error), "
    "unusable (an answer without a usable code), skipped (the primary's breaker was open).",
    ["gateway", "channel", "outcome"])
VERIFICATION_SECONDS = Histogram(
    "introserv_verification_call_duration_seconds", "Time a telephony gateway took to answer.",
    ["gateway"], buckets=(.05, .1, .25, .5, 1, 2, 3, 5))
HTTP_REQUESTS = Counter(
    "introserv_http_requests", "The gateway's HTTP requests by route template (never the path "
    "with its ids; unmatched for an unknown path or method) and status.",
    ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "introserv_http_request_duration_seconds", "Time the gateway took to answer, by route template.",
    ["method", "route"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30))
LEDGER_AUDIT_DISCREPANCIES = Gauge(
    "introserv_ledger_audit_discrepancies", "Discrepancies the ledger's last audit found "
    "(balances against the journal); anything above 0 is money to look at.")
LEDGER_AUDIT_FINISHED = Gauge(
    "introserv_ledger_audit_last_run_timestamp_seconds", "When this replica last finished the audit.")

READING_SECONDS = 5   # Prometheus' default scrape timeout is 10 s
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def rpc_outcome(exc_info) -> tuple[str, str]:
    """(outcome, code) of an RPC call, from what its worker raised."""
    if exc_info is None:
        return "ok", ""
    error = exc_info[1]
    if isinstance(error, DomainError):
        # The code is a label: keep it to the contract's table so a typo cannot grow series.
        return "refused", error.error_code if error.error_code in HTTP_STATUS else "other"
    return "error", type(error).__name__


class MeasuredRpc:
    """Mixed into the RPC entrypoint: every call counted by method and outcome, and timed.

    The time runs from the request's arrival (including a wait for a free worker) until its
    answer is ready. It is counted before the reply leaves, so a caller that has its answer
    finds the call in ``/metrics`` already.
    """

    def handle_message(self, body, message):
        # Nameko passes the message, not a start time, on to handle_result: keep it there.
        message.received_at = time.monotonic()
        return super().handle_message(body, message)

    def handle_result(self, message, worker_ctx, result, exc_info):
        service, method = self.container.service_name, self.method_name
        RPC_CALLS.labels(service, method, *rpc_outcome(exc_info)).inc()
        started = getattr(message, "received_at", None)
        if started is not None:
            RPC_SECONDS.labels(service, method).observe(time.monotonic() - started)
        return super().handle_result(message, worker_ctx, result, exc_info)


class MeasuredHttp:
    """WSGI middleware around the gateway's app: requests by route template and status, timed."""

    def __init__(self, app):
        self.app = app

    def route(self, environ) -> str:
        try:
            rule, _ = self.app.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:
            return "unmatched"
        return rule.rule

    def __call__(self, environ, start_response):
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "")
        method = method if method in HTTP_METHODS else "other"
        route = self.route(environ)
        answered = {}

        def recording_start_response(status, headers, exc_info=None):
            answered["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            HTTP_REQUESTS.labels(method, route, answered.get("status", "500")).inc()
            HTTP_SECONDS.labels(method, route).observe(time.monotonic() - started)


# -- the figures read at scrape time ------------------------------------------------------------

Reading = Callable[[object], Iterable[Metric]]
"""A scrape-time reading: given the service's unit of work, the metric families it reads."""


def outbox_backlog(service: str, unpublished: int, oldest_created_at) -> list[Metric]:
    backlog = GaugeMetricFamily("introserv_outbox_unpublished", "Events committed to the outbox "
                                "and not yet published to the broker.", labels=["service"])
    backlog.add_metric([service], unpublished)
    age = GaugeMetricFamily("introserv_outbox_oldest_age_seconds", "Age of the oldest unpublished "
                            "event in the outbox; 0 when none waits.", labels=["service"])
    waited = (clock.now() - as_utc(oldest_created_at)).total_seconds() if oldest_created_at else 0.0
    age.add_metric([service], max(0.0, waited))
    return [backlog, age]


def dead_letters(service: str, waiting: dict[str, int]) -> Metric:
    family = GaugeMetricFamily("introserv_dead_letters", "Events waiting in an event handler's "
                               "dead-letter queue (<queue>.dead) for an operator to replay.",
                               labels=["service", "queue"])
    for queue, count in sorted(waiting.items()):
        family.add_metric([service, queue], count)
    return family


MAIL_STATES = ("pending", "failed", "dead")


def mail_deliveries(by_state: dict[str, int]) -> Metric:
    family = GaugeMetricFamily("introserv_mail_deliveries", "E-mails by state: pending (waiting "
                               "for the mail relay, retries included), failed (refused for good), "
                               "dead (every retry spent).", labels=["state"])
    for state in MAIL_STATES:
        family.add_metric([state], by_state.get(state, 0))
    return family


class ScrapeTimeReadings:
    """The families of one service container that are read when Prometheus scrapes.

    A reading that fails (the database or the broker is away) is left out of that scrape and
    logged; ``/health`` says which dependency is down.
    """

    def __init__(self, container, readings: tuple[Reading, ...] = ()):
        self.container = container
        self.readings = readings

    def collect(self):
        from services.common.database import Database
        from services.common.events import ReliableEventHandler, dead_letters_waiting
        from services.common.outbox import unpublished_events

        service = self.container.service_name
        database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)
        if database is not None and database.relay is not None:   # reported by the processes that relay it
            yield from self._read("outbox", lambda: outbox_backlog(service,
                                                                   *unpublished_events(database.unit_of_work())))
        handlers = [e for e in self.container.entrypoints if isinstance(e, ReliableEventHandler)]
        if handlers:
            yield from self._read("dead letters", lambda: [dead_letters(service, dead_letters_waiting(handlers))])
        for reading in self.readings:
            yield from self._read(reading.__name__, lambda: list(reading(database.unit_of_work())))

    @staticmethod
    def _read(what: str, read: Callable[[], list[Metric]]) -> list[Metric]:
        try:
            with eventlet.Timeout(READING_SECONDS, TimeoutError(f"no answer in {READING_SECONDS} s")):
                return read()
        except Exception as exc:  # a scrape must answer with what it has
            log.warning("a metrics reading failed; left out of this scrape", reading=what, error=repr(exc))
            return []


class MetricsEndpoint(HttpRequestHandler):
    """``GET /metrics``: the Prometheus text format, answered without taking a worker."""

    def __init__(self, method, url, readings: tuple[Reading, ...] = (), **kwargs):
        self.readings = tuple(readings)
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        body = generate_latest(REGISTRY) + generate_latest(ScrapeTimeReadings(self.container, self.readings))
        # The classic text format (0.0.4), which every Prometheus version reads; the names
        # here are plain ASCII, so the newer 1.0.0 format would say the same.
        return Response(body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


class MetricsWebServer(WebServer):
    """A web server of its own on ``METRICS_ADDRESS``, for a process whose main port is public."""

    @property
    def bind_addr(self):
        return parse_address(self.container.config.get("METRICS_ADDRESS", "127.0.0.1:8006"))


class OwnPortMetricsEndpoint(MetricsEndpoint):
    server = MetricsWebServer()


def serve_metrics(*readings: Reading):
    """``@serve_metrics()`` on a service's method: ``GET /metrics`` on its health port.

    ``readings``: the service's own scrape-time readings (the notifier's mail), each called
    with its unit of work; the outbox and the dead letters are read for every service.
    """
    return MetricsEndpoint.decorator("GET", "/metrics", readings=readings)


def serve_metrics_on_own_port():
    """The gateway's ``GET /metrics``: on ``METRICS_ADDRESS``, never on the public API's port."""
    return OwnPortMetricsEndpoint.decorator("GET", "/metrics")
