"""deploy/k8s renders, every object is valid Kubernetes, and the deployment keeps its promises.

No cluster here: `kubectl kustomize` renders the production overlay (from a copy of deploy/k8s
whose secrets folder is filled with the committed examples and `python -m deploy.bus_definitions`),
and kubernetes-validate checks each object against Kubernetes' own schemas, strictly (an unknown
field is an error). The rest reads the rendered objects as the cluster would.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from deploy import bus, bus_definitions
from deploy.local import GATEWAY_METRICS_PORT
from deploy.serve import RUNS
from services.common.config import HEALTH_PORTS, ROOT, SERVICES

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
PROCESSES = (*SERVICES, "ledger_documents", "gateway")
PLACEHOLDER = "REPLACED-BY-THE-OVERLAY"


def committed_only(directory, names):
    """copytree's filter: what git keeps of the secrets folder, never a developer's real secrets."""
    if directory.endswith("secrets"):
        return [name for name in names if name not in {".gitignore", "README.md"} and not name.endswith(".example")]
    return []


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed, so deploy/k8s cannot be rendered here (kubectl kustomize)")
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=committed_only)
    secrets = copy / "overlays" / "production" / "secrets"
    for example in secrets.glob("*.example"):
        shutil.copyfile(example, secrets / example.stem)
    assert bus_definitions.main(["--secrets", str(secrets)]) == 0
    result = subprocess.run([kubectl, "kustomize", str(copy / "overlays" / "production")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def find(objects, kind: str, name: str) -> dict:
    """The object of a process (``ledger_documents``: Kubernetes names have no underscores)."""
    name = name.replace("_", "-")
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(spec: dict) -> dict:
    return {item["name"]: item for item in spec.get("env", [])}


def secret_data(objects, prefix: str) -> dict:
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].startswith(prefix + "-"))
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_the_production_overlay_renders_and_every_object_is_valid_kubernetes(rendered):
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Job", "PodDisruptionBudget", "Secret", "StatefulSet", "NetworkPolicy"} <= kinds
    for item in rendered:
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        assert item["kind"] == "Namespace" or item["metadata"]["namespace"] == "introserv", item["metadata"]["name"]


def test_every_process_is_a_deployment_of_several_replicas_with_probes_resources_and_a_budget(rendered):
    for name in PROCESSES:
        deployment = find(rendered, "Deployment", name)
        assert deployment["spec"]["replicas"] >= 2, name   # stateless: RabbitMQ spreads the work
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        main = container(deployment)
        assert main["command"] == ["python", "-m", "deploy.serve", name] and name in RUNS
        ports = {port["name"]: port["containerPort"] for port in main["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check = main[probe]["httpGet"]
            if name == "gateway":   # its /health pings every service: see base/gateway.yaml
                assert (check["path"], ports[check["port"]]) == ("/api/v1/openapi.json", HEALTH_PORTS["gateway"])
            else:
                assert (check["path"], ports[check["port"]]) == ("/health", HEALTH_PORTS[name]), (name, probe)
        resources = main["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, name
        scrape = pod["metadata"]["annotations"]
        assert scrape["prometheus.io/path"] == "/metrics"
        assert int(scrape["prometheus.io/port"]) == (GATEWAY_METRICS_PORT if name == "gateway" else HEALTH_PORTS[name])
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        budget = find(rendered, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["maxUnavailable"] == 1


def test_the_gateways_metrics_port_is_not_in_its_service(rendered):
    service = find(rendered, "Service", "gateway")
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    env = env_of(container(find(rendered, "Deployment", "gateway")))
    assert env["GATEWAY_METRICS_ADDRESS"]["value"] == f"0.0.0.0:{GATEWAY_METRICS_PORT}"


def test_each_service_has_a_migration_job_on_its_own_database(rendered):
    jobs = [o for o in rendered if o["kind"] == "Job"]
    assert len(jobs) == len(SERVICES)
    for service in SERVICES:
        job = find(rendered, "Job", f"{service}-migration")
        migrate = job["spec"]["template"]["spec"]["containers"][0]
        assert migrate["command"] == ["python", "-m", "deploy.migrate", service]
        url = env_of(migrate)[f"{service.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert url["name"].startswith("introserv-databases-")
        assert migrate["image"] == container(find(rendered, "Deployment", service))["image"]


def test_every_process_logs_in_to_the_bus_as_its_own_role_from_secrets(rendered):
    amqp = secret_data(rendered, "introserv-amqp")
    databases = secret_data(rendered, "introserv-databases")
    for name in PROCESSES:
        env = env_of(container(find(rendered, "Deployment", name)))
        login = env[f"{name.upper()}_AMQP_URI"]["valueFrom"]["secretKeyRef"]
        assert login["name"].startswith("introserv-amqp-")
        assert amqp[login["key"]].startswith(f"amqp://{name}:")
        assert env["AMQP_URI"]["value"] == f"$({name.upper()}_AMQP_URI)"
        if name in SERVICES:
            url = env[f"{name.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert url["key"] in databases
        if name == "ledger_documents":   # the ledger's worker, on the ledger's database
            assert env["LEDGER_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "LEDGER_DATABASE_URL"
    for role in bus_definitions.ROLES:
        assert f"{role.upper()}_AMQP_URI" in amqp


def test_the_overlay_replaces_every_placeholder_secret(rendered):
    secrets = [o for o in rendered if o["kind"] == "Secret"]
    assert len(secrets) == 5
    for secret in secrets:
        for key, value in secret["data"].items():
            assert base64.b64decode(value).decode() != PLACEHOLDER, (secret["metadata"]["name"], key)


def test_no_secret_value_is_committed():
    tracked = subprocess.run(["git", "ls-files", "deploy/k8s"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked, "deploy/k8s is not in git"
    for path in tracked:
        text = (ROOT / path).read_text()
        if path.endswith((".yaml", ".yml")):
            for document in yaml.safe_load_all(text):
                assert not (document and document.get("kind") == "Secret"), path
        if path.endswith("kustomization.yaml"):
            for generator in yaml.safe_load(text).get("secretGenerator", []):
                if "/overlays/" in path:   # the overlay's values come from its uncommitted files only
                    assert "literals" not in generator, (path, generator["name"])
                    sources = generator.get("envs", []) + [f.split("=")[-1] for f in generator.get("files", [])]
                    assert sources and all(source.startswith("secrets/") for source in sources), generator
                else:
                    assert all(item.endswith(f"={PLACEHOLDER}") for item in generator["literals"]), generator
    made_here = ["databases.env", "outside.env", "amqp.env", "bus-passwords.env", "definitions.json", "erlang.cookie"]
    paths = [f"deploy/k8s/overlays/production/secrets/{name}" for name in made_here]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert len(ignored.stdout.split()) == len(made_here), ignored.stdout


def test_rabbitmq_is_a_three_node_cluster_that_imports_the_bus_definitions(rendered):
    broker = find(rendered, "StatefulSet", "rabbitmq")
    assert broker["spec"]["replicas"] == 3
    assert find(rendered, "PodDisruptionBudget", "rabbitmq")["spec"]["maxUnavailable"] == 1
    config = next(o for o in rendered
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("rabbitmq-config-"))
    conf = dict(line.split(" = ", 1) for line in config["data"]["rabbitmq.conf"].splitlines() if " = " in line)
    mounts = {m["name"]: m["mountPath"] for m in broker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert conf["load_definitions"] == f"{mounts['definitions']}/definitions.json"
    assert conf["cluster_formation.peer_discovery_backend"] == "rabbit_peer_discovery_k8s"
    assert "rabbitmq_peer_discovery_k8s" in config["data"]["enabled_plugins"]
    definitions = json.loads(secret_data(rendered, "rabbitmq-definitions")["definitions.json"])
    (vhost,) = definitions["vhosts"]
    assert vhost["default_queue_type"] == "quorum"
    for uri in secret_data(rendered, "introserv-amqp").values():
        assert uri.endswith(f"@rabbitmq:5672/{vhost['name']}")
    assert {user["name"] for user in definitions["users"]} == {*bus_definitions.ROLES, bus_definitions.ADMIN}
    assert all("password" not in user for user in definitions["users"])   # hashes only


def test_the_brokers_definitions_give_each_role_deploy_bus_s_permissions(rendered):
    """One account of what each login may do (deploy/bus.py, from the services' own declarations)."""
    definitions = json.loads(secret_data(rendered, "rabbitmq-definitions")["definitions.json"])
    granted = {grant["user"]: {k: grant[k] for k in ("configure", "write", "read")}
               for grant in definitions["permissions"]}
    topics = {}
    for grant in definitions["topic_permissions"]:
        topics.setdefault(grant["user"], []).append({k: grant[k] for k in ("exchange", "write", "read")})
    for role in bus_definitions.ROLES:
        assert granted[role] == bus.permissions(role), role
        assert topics[role] == bus.topic_permissions(role), role


def test_a_password_hash_is_rabbitmqs_salted_sha256():
    encoded = base64.b64decode(bus_definitions.password_hash("ledger", "secret"))
    salt, digest = encoded[:4], encoded[4:]
    assert digest == hashlib.sha256(salt + b"secret").digest()
    assert bus_definitions.password_hash("ledger", "secret") == bus_definitions.password_hash("ledger", "secret")
    assert bus_definitions.password_hash("orders", "secret") != bus_definitions.password_hash("ledger", "secret")
