"""The role table: docs/rpc-roles.md and the code say the same, and every call the code makes is allowed."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import ConfigurationError

from deploy.bus import definitions, permissions, rpc_methods, topic_permissions
from services.common.config import ROOT, SERVICES
from services.common.roles import (OPERATOR, ROLES, LocalLoginRefused, local_login_uri, login_of,
                                   on_loopback)
from services.common.rpc import rpc


def documented() -> dict[str, frozenset[str]]:
    """The method table of docs/rpc-roles.md: ``| `service.method` | roles | why |``."""
    table = {}
    for line in (ROOT / "docs" / "rpc-roles.md").read_text().splitlines():
        match = re.match(r"\| `(\w+\.\w+)` \| ([^|]+) \| [^|]+ \|$", line)
        if match:
            names = match.group(2).strip()
            table[match.group(1)] = ROLES if names == "every role" else frozenset(
                name.strip() for name in names.split(","))
    return table


def test_the_documented_table_is_the_code_s_method_for_method():
    assert documented() == rpc_methods()


def test_every_method_names_known_roles_and_the_payment_system_and_the_desk_get_only_a_few():
    methods = rpc_methods()
    assert {method.partition(".")[0] for method in methods} == {*SERVICES, "ledger_documents"}
    assert all(roles and roles <= ROLES for roles in methods.values())
    payments = {method for method, roles in methods.items() if "payments" in roles and not method.endswith(".ping")}
    assert payments == {"ledger.credit_payment", "ledger.get_balance"}
    desk_writes = {method for method, roles in methods.items() if "support_desk" in roles} - {
        m for m, roles in methods.items() if "operator" in roles}
    assert desk_writes == {"notifier.notify"}


def _calls(paths, attributes: dict[str, str]) -> set[str]:
    """``service.method`` of every ``self.<attribute>.<method>(`` in the files (a proxy's calls)."""
    found = set()
    pattern = re.compile(r"self\.(" + "|".join(attributes) + r")\.(\w+)\(")
    for path in paths:
        for attribute, method in pattern.findall(path.read_text()):
            found.add(f"{attributes[attribute]}.{method}")
    return found


def test_every_call_the_gateway_and_the_services_make_is_one_their_role_may_make():
    methods = rpc_methods()
    callers = {"gateway": (sorted((ROOT / "gateway").rglob("*.py")),
                           {"profile": "profile", "orders": "orders", "order_writes": "orders", "ledger": "ledger",
                            "notifier": "notifier", "verification": "verification"})}
    for service in SERVICES:
        # A service's own name there is its use cases, not a proxy: it never calls itself.
        others = {name: name for name in SERVICES if name != service}
        if service != "profile":
            others["profiles"] = "profile"
        callers[service] = (sorted((ROOT / "services" / service).glob("*.py")), others)
    made = {role: _calls(paths, attributes) for role, (paths, attributes) in callers.items()}
    assert {"profile.authenticate", "orders.place_order", "ledger.get_invoice_pdf"} <= made["gateway"]
    assert {"ledger.charge", "ledger.refund", "ledger.price", "profile.get"} <= made["orders"]
    not_allowed = sorted((role, call) for role, calls in made.items() for call in calls
                         if call not in methods or role not in methods[call])
    assert not_allowed == []


class Forgotten:
    name = "forgotten"

    @rpc
    def anything(self):
        return None


class Misspelt:
    name = "misspelt"

    @rpc(roles=OPERATOR | {"operater"})
    def anything(self):
        return None


@pytest.mark.parametrize("service", [Forgotten, Misspelt])
def test_a_method_without_known_roles_stops_its_service_from_starting(service):
    container = ServiceContainer(service, {"AMQP_URI": "amqp://nobody:nobody@127.0.0.1:1/"})
    with pytest.raises(ConfigurationError, match="anything"):
        container.start()


def test_a_login_is_the_user_of_its_uri():
    assert login_of("amqp://support_desk:s3cret@rabbit:5672/") == "support_desk"
    assert login_of("amqp://op%40desk:x@rabbit/") == "op@desk"
    assert login_of("amqp://127.0.0.1:5672/") == "guest"


def test_a_login_whose_password_is_its_name_is_for_a_broker_on_this_machine_only():
    assert local_login_uri("amqp://guest:guest@127.0.0.1:5672/test-1", "operator") == \
        "amqp://operator:operator@127.0.0.1:5672/test-1"
    assert local_login_uri("amqp://guest:guest@localhost/", "ledger") == "amqp://ledger:ledger@localhost/"
    assert local_login_uri("amqp://[::1]:5672/", "gateway") == "amqp://gateway:gateway@[::1]:5672/"
    assert on_loopback("amqp://x@127.0.0.2/") and not on_loopback("amqp://guest:guest@10.0.0.5:5672/")
    for remote in ("amqp://guest:guest@rabbit.example.com/", "amqp://guest:guest@192.168.1.10:5672/"):
        with pytest.raises(LocalLoginRefused, match="OPERATOR_AMQP_URI"):
            local_login_uri(remote, "operator")


def matches(pattern: str, name: str) -> bool:
    return re.fullmatch(pattern, name) is not None


def test_only_a_service_may_publish_its_events_and_read_its_own_queues():
    for role in sorted(ROLES):
        granted = permissions(role)
        for service in SERVICES:
            assert matches(granted["write"], f"{service}.events") == (role == service), (role, service)
            assert matches(granted["read"], f"rpc-{service}") == (role == service), (role, service)
        assert matches(granted["read"], f"rpc.reply-{role}-6f1c2a4e-8d1b-4c7a-9a0e-2b7d5c3f1e90")
        assert not matches(granted["read"], "rpc.reply-operator-6f1c2a4e-8d1b-4c7a-9a0e-2b7d5c3f1e90") \
            or role == "operator"
        assert not matches(granted["write"], "amq.default") and not matches(granted["write"], "")


def test_topic_permissions_name_the_calls_a_role_may_make_and_no_wildcard_binding():
    for role in sorted(ROLES):
        [rpc_grant] = [grant for grant in topic_permissions(role) if grant["exchange"] == "nameko-rpc"]
        for method, roles in rpc_methods().items():
            assert matches(rpc_grant["write"], method) == (role in roles), (role, method)
        assert not matches(rpc_grant["read"], "#") and not matches(rpc_grant["read"], "ledger.adjust")
        assert matches(rpc_grant["read"], "6f1c2a4e-8d1b-4c7a-9a0e-2b7d5c3f1e90")


def test_the_definitions_file_for_docker_compose_comes_from_each_role_s_uri(tmp_path):
    env = {"PATH": "", "PYTHONPATH": str(ROOT), "RABBITMQ_ADMIN_PASSWORD": "admin secret"}
    env.update({f"{role.upper()}_AMQP_URI": f"amqp://{role}:pw-{role}@rabbitmq:5672/" for role in ROLES})
    out = tmp_path / "definitions.json"
    subprocess.run([sys.executable, "-m", "deploy.bus", "definitions", "--out", str(out), "--admin", "admin"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    document = json.loads(out.read_text())
    assert {user["name"] for user in document["users"]} == ROLES | {"admin"}
    assert all(user["password_hash"] and "pw-" not in user["password_hash"] for user in document["users"])
    assert {grant["user"] for grant in document["permissions"]} == ROLES | {"admin"}
    assert {grant["user"] for grant in document["topic_permissions"]} == ROLES
    missing = dict(env)
    del missing["PAYMENTS_AMQP_URI"]
    refused = subprocess.run([sys.executable, "-m", "deploy.bus", "definitions"], cwd=ROOT, env=missing,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "PAYMENTS_AMQP_URI" in refused.stderr


def test_a_password_hash_is_rabbitmq_s_salted_sha256():
    import base64
    import hashlib
    document = definitions("/", {"operator": "correct horse"})
    [user] = document["users"]
    raw = base64.b64decode(user["password_hash"])
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert raw[4:] == hashlib.sha256(raw[:4] + b"correct horse").digest()


def test_make_run_gives_each_role_without_a_uri_its_local_login_and_keeps_the_given_ones(tmp_path):
    from deploy.local import Stack
    stack = Stack(tmp_path, env={"AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/dev",
                                 "PAYMENTS_AMQP_URI": "amqp://payments:s3cret@127.0.0.1:5672/dev"})
    assert stack.env["LEDGER_AMQP_URI"] == "amqp://ledger:ledger@127.0.0.1:5672/dev"
    assert stack.env["GATEWAY_AMQP_URI"] == "amqp://gateway:gateway@127.0.0.1:5672/dev"
    assert stack.env["PAYMENTS_AMQP_URI"] == "amqp://payments:s3cret@127.0.0.1:5672/dev"
    assert "payments" not in stack.local_logins and "operator" in stack.local_logins
    assert stack.missing_logins() == []


def test_make_run_refuses_a_broker_elsewhere_without_each_role_s_login(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "VAR_DIR": str(tmp_path),
           "AMQP_URI": "amqp://guest:guest@rabbit.example.com:5672/",
           "LEDGER_AMQP_URI": "amqp://ledger:x@rabbit.example.com/"}
    refused = subprocess.run([sys.executable, "-m", "deploy.local", "start"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "GATEWAY_AMQP_URI" in refused.stderr and "LEDGER_AMQP_URI" not in refused.stderr
    assert not (tmp_path / "run").exists()   # nothing was started
