"""``GET /metrics`` on the running stack, as Prometheus would scrape it after some traffic.

Each exposition is parsed with prometheus_client's own parser: the families the dashboards and
alert rules use (deploy/grafana, deploy/prometheus) must exist with their labels, and the
counters must move with the requests just made. ``promtool check metrics`` lints them where
Debian's ``prometheus`` package is installed (CI installs it).
"""
from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.common.config import SERVICES
from tests.support import passes_eventually

SERVICE_FAMILIES = {  # family: its labels, on every service
    "introserv_rpc_calls": {"service", "method", "outcome", "code"},
    "introserv_rpc_duration_seconds": {"service", "method"},
    "introserv_outbox_unpublished": {"service"},
    "introserv_outbox_oldest_age_seconds": {"service"},
}
CONSUMERS = ("ledger", "notifier", "orders", "profile")   # the services with event handlers


def scrape(url: str) -> str:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(found: dict, family: str, sample: str | None = None, **labels) -> float:
    """The sum of ``sample``'s values (the family's own name by default) with these labels."""
    name = sample or family
    return sum(s.value for s in found[family].samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def service_metrics(stack, service: str) -> dict:
    return families(scrape(f"{stack.url(service)}/metrics"))


def gateway_metrics(stack) -> dict:
    return families(scrape(f"{stack.url('gateway_metrics')}/metrics"))

def test_every_service_exports_its_rpc_calls_outbox_and_process_families(stack, customer):
    customer()
    for service in SERVICES:
        found = service_metrics(stack, service)
        for name, labels in SERVICE_FAMILIES.items():
            assert name in found, (service, name)
            for sample in found[name].samples:
                assert set(sample.labels) - {"le"} == labels, (service, sample)
        assert found["introserv_rpc_calls"].type == "counter"
        assert found["introserv_rpc_duration_seconds"].type == "histogram"
        # the gateway's /health pings every service over RPC
        assert value(found, "introserv_rpc_calls", "introserv_rpc_calls_total",
                     service=service, method="ping", outcome="ok") >= 1
        assert value(found, "introserv_outbox_unpublished", service=service) >= 0
        assert "process_resident_memory_bytes" in found
        if service in CONSUMERS:
            assert "introserv_dead_letters" in found and "introserv_events" in found, service


def test_the_document_worker_exports_its_events_and_memory_and_leaves_the_outbox_to_the_ledger(stack):
    queue = "evt-ledger-invoice_issued--ledger_documents.on_invoice_issued"
    found = service_metrics(stack, "ledger_documents")
    assert value(found, "introserv_dead_letters", service="ledger_documents", queue=queue) == 0
    assert "introserv_events" in found and "process_resident_memory_bytes" in found
    # It writes to the ledger's outbox, which the ledger's processes relay and report.
    assert "introserv_outbox_unpublished" not in found


def test_rpc_calls_are_counted_by_method_and_outcome_and_timed(stack, api, customer):
    anna = customer()
    login = anna.profile["login"]
    before = service_metrics(stack, "profile")
    refused_before = value(before, "introserv_rpc_calls", "introserv_rpc_calls_total", service="profile",
                           method="log_in", outcome="refused", code="invalid_credentials")
    ok_before = value(before, "introserv_rpc_calls", "introserv_rpc_calls_total", service="profile",
                      method="log_in", outcome="ok")

    assert api.post("/api/v1/sessions", {"login": login, "password": "not the password at all"}).status_code == 401
    assert api.post("/api/v1/sessions", {"login": login, "password": anna.password}).status_code == 201

    after = service_metrics(stack, "profile")
    assert value(after, "introserv_rpc_calls", "introserv_rpc_calls_total", service="profile", method="log_in",
                 outcome="refused", code="invalid_credentials") == refused_before + 1
    assert value(after, "introserv_rpc_calls", "introserv_rpc_calls_total", service="profile", method="log_in",
                 outcome="ok") == ok_before + 1
    timed = value(after, "introserv_rpc_duration_seconds", "introserv_rpc_duration_seconds_count",
                  service="profile", method="log_in")
    assert timed >= 2
    assert value(after, "introserv_rpc_duration_seconds", "introserv_rpc_duration_seconds_bucket",
                 service="profile", method="log_in", le="+Inf") == timed


def test_events_are_counted_by_queue_and_dead_letters_read_from_the_broker(stack, customer):
    customer()
    queue = "evt-profile-account_registered--ledger.on_account_registered"

    def handled():
        found = service_metrics(stack, "ledger")
        assert value(found, "introserv_events", "introserv_events_total", service="ledger", queue=queue,
                     outcome="handled") >= 1
        return found
    found = passes_eventually(handled)
    assert value(found, "introserv_dead_letters", service="ledger", queue=queue) == 0

    def drained():   # the event's publisher: profile's relay empties its outbox
        outbox = service_metrics(stack, "profile")
        assert value(outbox, "introserv_outbox_unpublished", service="profile") == 0
        assert value(outbox, "introserv_outbox_oldest_age_seconds", service="profile") == 0
    passes_eventually(drained)


def test_mail_waiting_and_failed_are_read_from_the_notifiers_table(stack, customer):
    customer()   # the e-mail confirmation is one message
    found = service_metrics(stack, "notifier")
    states = {s.labels["state"] for s in found["introserv_mail_deliveries"].samples}
    assert states == {"pending", "failed", "dead"}
    assert value(found, "introserv_mail_deliveries", state="failed") == 0


def test_verification_calls_are_counted_by_gateway_and_outcome(stack, customer):
    phone = f"+48600{uuid.uuid4().int % 1_000_000:06d}"
    anna = customer(phone=phone)
    before = service_metrics(stack, "verification")
    calls = "introserv_verification_calls_total"
    placed = value(before, "introserv_verification_calls", calls, gateway="primary", channel="flash_call",
                   outcome="ok") if "introserv_verification_calls" in before else 0
    started = anna.post("/api/v1/verifications", {"channel": "flash_call", "purpose": "phone"})
    assert started.status_code == 201, started.text

    after = service_metrics(stack, "verification")
    assert value(after, "introserv_verification_calls", calls, gateway="primary", channel="flash_call",
                 outcome="ok") == placed + 1
    assert value(after, "introserv_verification_call_duration_seconds",
                 "introserv_verification_call_duration_seconds_count", gateway="primary") >= 1


def test_the_ledger_exports_its_periodic_audit(stack):
    def audited():
        found = service_metrics(stack, "ledger")
        assert value(found, "introserv_ledger_audit_last_run_timestamp_seconds") > 0
        return found
    found = passes_eventually(audited)
    assert value(found, "introserv_ledger_audit_discrepancies") == 0


def test_the_gateway_counts_requests_by_route_template_on_its_own_port(stack, api, customer):
    anna = customer()
    order_id = str(uuid.uuid4())
    assert anna.get(f"/api/v1/orders/{order_id}").status_code == 404
    assert api.get(f"/no/such/page/{order_id}").status_code == 404

    found = gateway_metrics(stack)
    requests_total = "introserv_http_requests_total"
    assert value(found, "introserv_http_requests", requests_total, method="POST", route="/api/v1/accounts",
                 status="201") >= 1
    assert value(found, "introserv_http_requests", requests_total, method="GET", route="/api/v1/orders/<order_id>",
                 status="404") >= 1
    assert value(found, "introserv_http_requests", requests_total, method="GET", route="unmatched",
                 status="404") >= 1
    assert value(found, "introserv_http_request_duration_seconds", "introserv_http_request_duration_seconds_count",
                 method="POST", route="/api/v1/sessions") >= 1
    every_label = {v for family in found.values() for s in family.samples for v in s.labels.values()}
    assert not any(order_id in label for label in every_label)   # ids never become series
    # Nothing of it on the public port.
    public = requests.get(f"{stack.gateway_url}/metrics", timeout=10)
    assert public.status_code == 404 and "introserv_" not in public.text


def test_promtool_finds_nothing_to_lint_in_any_exposition(stack, customer):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    customer()
    urls = [f"{stack.url(service)}/metrics" for service in (*SERVICES, "ledger_documents")] \
        + [f"{stack.url('gateway_metrics')}/metrics"]
    for url in urls:
        checked = subprocess.run([promtool, "check", "metrics"], input=scrape(url), capture_output=True,
                                 text=True, timeout=60)
        assert checked.returncode == 0, (url, checked.stdout, checked.stderr)
