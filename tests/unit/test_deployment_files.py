"""docker-compose.yml cannot run here (no Docker engine): keep it correct by reading it."""
from __future__ import annotations

from pathlib import Path

import yaml

from services.common.config import HEALTH_PORTS, ROOT, SERVICES


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_service_with_a_health_check_on_its_port():
    services = compose()["services"]
    for name in (*SERVICES, "gateway"):
        spec = services[name]
        port = HEALTH_PORTS[name]
        assert f"localhost:{port}/health" in " ".join(spec["healthcheck"]["test"]), name
        assert spec["environment"][f"{name.upper()}_HTTP_ADDRESS"].endswith(f":{port}")
        module, _, cls = spec["command"][-1].partition(":")
        assert (ROOT / module.replace(".", "/")).with_suffix(".py").exists(), spec["command"]
        assert f"class {cls}" in (ROOT / module.replace(".", "/")).with_suffix(".py").read_text()
        config = spec["command"][spec["command"].index("--config") + 1]
        assert (ROOT / config).exists()


def test_compose_gives_each_service_its_own_postgres_database_and_the_brokers():
    document = compose()
    env = document["services"]["ledger"]["environment"]
    urls = {env[f"{s.upper()}_DATABASE_URL"] for s in SERVICES}
    assert len(urls) == len(SERVICES) and all(u.startswith("postgresql://") for u in urls)
    assert "management" in document["services"]["rabbitmq"]["image"]
    assert document["services"]["mailpit"]["image"].startswith("axllent/mailpit")
    assert document["services"]["migrate"]["command"] == ["python", "-m", "deploy.migrate"]


def test_the_dockerfile_builds_from_the_files_that_exist():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            source = line.split()[1]
            assert (ROOT / source).exists(), source
    assert Path(ROOT / "pyproject.toml").exists()
