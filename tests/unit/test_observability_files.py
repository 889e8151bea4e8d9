"""The alert rules and the dashboard speak of the families the services export, and promtool agrees.

`/metrics` itself is checked on the running stack (tests/e2e/test_metrics.py); here the files in
deploy/prometheus and deploy/grafana are held to services/common/metrics.py, so a renamed family
cannot leave an alert that never fires or a panel that stays empty.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from prometheus_client import REGISTRY
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from services.common import metrics
from services.common.config import ROOT
from services.common.errors import DomainError, NotFound

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "introserv-panel.json"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported_families() -> set[str]:
    """Every family name /metrics can show: the registered ones and those read at scrape time."""
    names = {family.name for family in REGISTRY.collect()}
    read = [*metrics.outbox_backlog("ledger", 0, None), metrics.dead_letters("ledger", {}),
            metrics.mail_deliveries({})]
    return names | {family.name for family in read}


def family_of(sample_name: str, known: set[str]) -> str:
    if sample_name in known:
        return sample_name
    for suffix in SUFFIXES:
        if sample_name.endswith(suffix) and sample_name[:-len(suffix)] in known:
            return sample_name[:-len(suffix)]
    return sample_name


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(introserv_[a-z_]+|process_[a-z_]+)\b", expr))


def alert_rules() -> list[dict]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_is_complete_and_reads_families_the_services_export():
    known = exported_families()
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {"IntroservServiceDown", "IntroservDeadLetters", "IntroservOutboxStuck",
                                           "IntroservLedgerAuditDiscrepancies"}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        for name in names_in(rule["expr"]):
            assert family_of(name, known) in known, (rule["alert"], name)


def test_every_dashboard_panel_reads_families_the_services_export():
    known = exported_families()
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    used = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in names_in(target["expr"]):
                assert family_of(name, known) in known, (panel["title"], name)
                used.add(family_of(name, known))
    ours = {name for name in known if name.startswith("introserv_")}
    assert ours <= used, f"families no panel shows: {sorted(ours - used)}"


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian package prometheus; .ci/run installs it)")
def test_promtool_checks_the_rules_and_their_tests_pass():
    checked = subprocess.run(["promtool", "check", "rules", "alerts.yml"], cwd=PROMETHEUS,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_an_rpc_outcome_is_ok_refused_with_its_code_or_an_error_of_ours():
    def raised(error):
        try:
            raise error
        except Exception:
            return sys.exc_info()

    assert metrics.rpc_outcome(None) == ("ok", "")
    assert metrics.rpc_outcome(raised(NotFound("order"))) == ("refused", "not_found")
    assert metrics.rpc_outcome(raised(DomainError("no_such_code_anywhere"))) == ("refused", "other")
    assert metrics.rpc_outcome(raised(KeyError("x"))) == ("error", "KeyError")


class TinyApp:
    """A WSGI app with a url_map, as the gateway's JsonWsgiApp has."""

    url_map = Map([Rule("/api/v1/orders/<order_id>", methods=["GET"])])

    def __call__(self, environ, start_response):
        return Response("{}", status=404 if "missing" in environ["PATH_INFO"] else 200)(environ, start_response)


def http_count(**labels) -> float:
    return REGISTRY.get_sample_value("introserv_http_requests_total", labels) or 0.0


def test_the_gateway_counts_a_request_by_its_route_template_never_its_path():
    app = metrics.MeasuredHttp(TinyApp())
    template = {"method": "GET", "route": "/api/v1/orders/<order_id>"}
    before_ok, before_missing = http_count(**template, status="200"), http_count(**template, status="404")
    before_unmatched = http_count(method="other", route="unmatched", status="200")

    for path, method in (("/api/v1/orders/1234", "GET"), ("/api/v1/orders/missing", "GET"), ("/elsewhere", "BREW")):
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "x", "SERVER_PORT": "80",
                   "wsgi.url_scheme": "http"}
        list(app(environ, lambda status, headers, exc_info=None: None))

    assert http_count(**template, status="200") == before_ok + 1
    assert http_count(**template, status="404") == before_missing + 1
    assert http_count(method="other", route="unmatched", status="200") == before_unmatched + 1
    assert REGISTRY.get_sample_value("introserv_http_requests_total",
                                     {"method": "GET", "route": "/api/v1/orders/1234", "status": "200"}) is None
