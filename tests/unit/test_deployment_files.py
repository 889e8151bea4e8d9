"""docker-compose.yml cannot run here (no Docker engine): keep it correct by reading it."""
from __future__ import annotations

import re

import yaml

from deploy.serve import RUNS, config_file
from services.common.config import HEALTH_PORTS, ROOT, SERVICES


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
