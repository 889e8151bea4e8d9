"""docker-compose.yml cannot run here (no Docker engine): keep it correct by reading it."""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import time

import yaml

from deploy import serve
from deploy.local import Stack
from deploy.serve import RUNS, WITHOUT_GREEN_DNS, config_file, nameko_argv
from services.common.config import HEALTH_PORTS, ROOT, SERVICES
from services.common.roles import ROLES


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_process_with_a_health_check_on_its_port():
    services = compose()["services"]
    for name in RUNS:
        spec = services[name]
        port = HEALTH_PORTS[name]
        assert f"localhost:{port}/health" in " ".join(spec["healthcheck"]["test"]), name
        assert spec["environment"][f"{name.upper()}_HTTP_ADDRESS"].endswith(f":{port}")
        # The image runs the installed package: deploy.serve finds the config inside it.
        assert spec["command"] == ["python", "-m", "deploy.serve", name]
        module, _, cls = RUNS[name].partition(":")
        assert f"class {cls}" in (ROOT / module.replace(".", "/")).with_suffix(".py").read_text()
        assert config_file(name).is_file()


def test_compose_gives_each_service_its_own_postgres_database_and_the_brokers():
    document = compose()
    env = document["services"]["ledger"]["environment"]
    urls = {env[f"{s.upper()}_DATABASE_URL"] for s in SERVICES}
    assert len(urls) == len(SERVICES) and all(u.startswith("postgresql://") for u in urls)
    assert "management" in document["services"]["rabbitmq"]["image"]
    assert document["services"]["mailpit"]["image"].startswith("axllent/mailpit")
    assert document["services"]["migrate"]["command"] == ["python", "-m", "deploy.migrate"]


def test_the_dockerfile_builds_a_wheel_and_the_image_installs_it_without_the_source_folders():
    _, *stages = re.split(r"^FROM ", (ROOT / "deploy" / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert len(stages) == 2, "a stage that builds the wheel, then the image"
    build, image = stages
    for line in build.splitlines():
        if line.startswith("COPY "):
            assert (ROOT / line.split()[1]).exists(), line
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in build
    assert "COPY --from=wheel /wheels /wheels" in image
    assert "pip install --no-cache-dir /wheels/*.whl" in image
    assert not [line for line in image.splitlines() if line.startswith("COPY ") and "--from=wheel" not in line]
    assert 'CMD ["python", "-m", "deploy.serve", "gateway"]' in image


def test_compose_publishes_no_broker_port_and_knows_no_guest():
    document = compose()
    assert "ports" not in document["services"]["rabbitmq"]
    text = "\n".join(line for line in (ROOT / "docker-compose.yml").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    assert "guest" not in text


def test_compose_logs_each_service_in_as_itself_with_a_password_from_the_secrets():
    services = compose()["services"]
    for name in (*SERVICES, "gateway"):
        uri = services[name]["environment"][f"{name.upper()}_AMQP_URI"]
        assert uri.startswith(f"amqp://{name}:${{AMQP_PASSWORD_{name.upper()}:?"), uri
        assert uri.endswith("@rabbitmq:5672/")
        others = [key for key in services[name]["environment"]
                  if key.endswith("_AMQP_URI") and key != f"{name.upper()}_AMQP_URI"]
        assert others == [], name   # a service holds its own password only


def test_compose_makes_the_broker_s_users_from_the_secrets_before_it_starts():
    services = compose()["services"]
    job = services["bus-definitions"]
    assert job["command"][:4] == ["python", "-m", "deploy.bus", "definitions"]
    assert {key for key in job["environment"] if key.endswith("_AMQP_URI")} == {f"{r.upper()}_AMQP_URI" for r in ROLES}
    out = job["command"][job["command"].index("--out") + 1]
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["depends_on"]["bus-definitions"]["condition"] == "service_completed_successfully"
    [conf_mount] = [v for v in rabbitmq["volumes"] if v.startswith("./deploy/rabbitmq/rabbitmq.conf:")]
    assert conf_mount.split(":")[1].startswith("/etc/rabbitmq/conf.d/")
    conf = (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text()
    [loaded] = re.findall(r"^load_definitions = (\S+)$", conf, re.M)
    [volume] = [v for v in rabbitmq["volumes"] if v.startswith("bus-definitions:")]
    assert loaded == volume.split(":")[1] + "/" + out.rsplit("/", 1)[1]
    assert job["volumes"] == [f"bus-definitions:{out.rsplit('/', 1)[0]}"]


def test_every_process_logs_in_as_itself_by_default():
    for name in (*SERVICES, "gateway"):
        config = config_file(name)
        [line] = [line for line in config.read_text().splitlines() if line.startswith("AMQP_URI:")]
        assert line == f"AMQP_URI: ${{{name.upper()}_AMQP_URI:amqp://{name}:{name}@127.0.0.1:5672/}}", line


def test_the_processes_that_resolve_no_outside_name_run_without_green_dns_wherever_they_are_started(
        monkeypatch, tmp_path):
    # Named here, not read from deploy/serve.py: dropping one there must fail this test.
    quiet = ("orders", "ledger", "ledger_documents", "gateway")
    assert set(WITHOUT_GREEN_DNS) == set(quiet)
    started = {}
    monkeypatch.setattr(os, "execv", lambda path, argv: started.update(env=dict(os.environ), argv=argv))
    for name in quiet:
        monkeypatch.delenv("EVENTLET_NO_GREENDNS", raising=False)
        serve.main([name])                                 # the image's command (compose, Kubernetes)
        assert started["env"]["EVENTLET_NO_GREENDNS"] == "yes", name
        assert started["argv"][-1] == RUNS[name]
    monkeypatch.delenv("EVENTLET_NO_GREENDNS")
    serve.main(["profile"])
    assert "EVENTLET_NO_GREENDNS" not in started["env"]
    local = {p.name: p.env for p in Stack(tmp_path, ports={}, replicas={"notifier": 2, "orders": 2}).processes()}
    assert all(local[name]["EVENTLET_NO_GREENDNS"] == "yes"   # `make run`, the tests' stacks
               for name in (*quiet, "orders-2"))
    # Profile (the VIES check), the notifier (the SMTP relay) and verification (telephony) reach the
    # outside world by name: green DNS.
    assert all("EVENTLET_NO_GREENDNS" not in local[name]
               for name in ("profile", "notifier", "notifier-2", "verification"))

    def dnspython_loaded(env: dict, names) -> bool:
        modules = "; ".join(f"import {RUNS[name].partition(':')[0]}" for name in names)
        probe = f"import eventlet; eventlet.monkey_patch(); import sys; {modules}; print('dns' in sys.modules)"
        answer = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], cwd=ROOT, capture_output=True,
                                text=True, env={**os.environ, **env}, timeout=120)
        assert answer.returncode == 0, answer.stderr[-2000:]
        return answer.stdout.strip() == "True"
    assert not dnspython_loaded(local["orders"], quiet)
    assert dnspython_loaded(local["profile"], ["profile"])


def test_every_process_runs_nameko_without_pkg_resources_and_rich():
    assert all(nameko_argv(name)[1:4] == ["-m", "deploy.process", "run"] for name in RUNS)
    probe = ("import sys; from deploy.process import keep_out; keep_out(); import eventlet; eventlet.monkey_patch(); "
             "import nameko.cli.main, structlog, services.orders.service, gateway.service; "
             "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
             "('rich', 'pygments', 'pkg_resources') and sys.modules[m] is not None "
             "and getattr(sys.modules[m], '__file__', None)}))")
    answer = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "deploy.process", "--version"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert version.stdout.strip() == importlib.metadata.version("nameko")


QUIET_SERVICE = '''
import gc, os
from nameko.timer import timer

class Quiet:
    name = "quiet"

    @timer(interval=0.05)
    def report(self):
        with open(os.environ["GC_REPORT"] + ".part", "w") as report:
            report.write(str(gc.get_freeze_count()))
        os.replace(os.environ["GC_REPORT"] + ".part", os.environ["GC_REPORT"])
'''


def test_a_started_process_keeps_what_it_built_out_of_the_collectors_generations(tmp_path):
    (tmp_path / "quiet_service.py").write_text(QUIET_SERVICE)
    (tmp_path / "config.yml").write_text("AMQP_URI: memory://\n")
    report, log = tmp_path / "gc", tmp_path / "stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.process", "run", "--config", str(tmp_path / "config.yml"), "quiet_service:Quiet"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "GC_REPORT": str(report)},
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not report.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert report.exists(), log.read_text()[-2000:] or "no report in 60 s"
        frozen = int(report.read_text())
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Everything the start built (Nameko, the service's modules) is out of the generations; none of it
    # would be there without the freeze, which only runs after the runner started.
    assert frozen > 10_000
