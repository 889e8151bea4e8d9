"""`pip install .` gives a working suite: the wheel holds every package with its data files, and a
service installed from it starts from a folder outside the checkout (as in the container image).

Slow (a wheel build, a venv and a service start: tens of seconds), so marked; part of `make test`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests

from deploy.ports import free_port
from services.common.config import ROOT, SERVICES
from tests.support import eventually, rabbit_vhost, role_uri

pytestmark = pytest.mark.slow

PACKAGES = ("services", "gateway", "deploy")  # what pyproject.toml packs, and what the Dockerfile copies


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the tree as it is now, built as the Dockerfile builds it (from a copy: no build/ here)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True, timeout=300)
    [built] = out.glob("introserv_panel-*.whl")
    return built


# What builds or deploys the image and is no part of it: the Dockerfile, and the Kubernetes,
# Prometheus and Grafana files (pyproject.toml excludes them).
NOT_PACKED = ("deploy/Dockerfile", "deploy/k8s/", "deploy/grafana/", "deploy/prometheus/")


def source_files() -> set[str]:
    """What the packages are made of."""
    return {path.relative_to(ROOT).as_posix() for package in PACKAGES for path in (ROOT / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
            and not path.relative_to(ROOT).as_posix().startswith(NOT_PACKED)}


def test_the_wheel_holds_every_service_with_its_config_migrations_templates_fonts_and_data(wheel):
    packed = set(zipfile.ZipFile(wheel).namelist())
    for service in SERVICES:
        base = f"services/{service}"
        for needed in ("__init__.py", "service.py", "models.py", "config.yml", "migrations/env.py",
                       "migrations/script.py.mako"):
            assert f"{base}/{needed}" in packed, f"{base}/{needed}"
        versions = {p.name for p in (ROOT / base / "migrations" / "versions").glob("*.py")}
        assert versions and {n.rsplit("/", 1)[1] for n in packed if n.startswith(f"{base}/migrations/versions/")} \
            >= versions, service
    assert {"services/ledger/fonts/DejaVuSans.ttf", "services/ledger/fonts/DejaVuSans-Bold.ttf",
            "services/ledger/data/vat_rates.yml", "services/ledger/data/payment_methods.yml",
            "services/orders/data/catalogue.yml", "services/profile/data/common_passwords.txt",
            "services/notifier/templates/en/invoice_issued.html", "services/notifier/templates/pl/invoice_issued.txt",
            "gateway/config.yml", "gateway/panel/static/panel.js", "gateway/panel/static/panel.css",
            "gateway/panel/messages/pl.yml", "gateway/panel/templates/profile.html",
            "deploy/serve.py", "deploy/dev/mail.py"} <= packed
    # And nothing of the three source folders is left behind.
    assert source_files() - packed == set()


@pytest.fixture
def installed(wheel, tmp_path) -> Path:
    """A fresh venv holding the wheel; the dependencies are this environment's (a path, not a copy)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: this environment's .pth files (among them the checkout's editable install)
    # are not run, so `services` can only come from the wheel.
    (Path(target) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return python


def test_a_service_installed_from_the_wheel_starts_outside_the_checkout_and_keeps_var_in_its_working_folder(
        installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    with rabbit_vhost() as amqp:
        env = {name: value for name, value in os.environ.items()
               if name not in ("PYTHONPATH", "VAR_DIR") and not name.endswith("_DATABASE_URL")}
        env.update(AMQP_URI=amqp, PROFILE_AMQP_URI=role_uri(amqp, "profile"), PROFILE_HTTP_ADDRESS=f"127.0.0.1:{port}",
                   LOG_FORMAT="json")
        where = subprocess.run([str(installed), "-c", "import services.profile.service as s; print(s.__file__)"],
                               cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout
        assert where.startswith(str(installed.parent.parent)), where   # the venv's copy, not the checkout's
        subprocess.run([str(installed), "-m", "deploy.migrate", "profile"], cwd=elsewhere, env=env, check=True,
                       capture_output=True, timeout=120)
        log = open(tmp_path / "profile.log", "wb")
        service = subprocess.Popen([str(installed), "-m", "deploy.serve", "profile"], cwd=elsewhere, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            health = eventually(lambda: health_of(f"http://127.0.0.1:{port}/health", service, tmp_path / "profile.log"),
                                timeout=60, interval=0.3)
        finally:
            stop(service)
            log.close()
    assert health == {"service": "profile", "status": "ok", "version": health["version"],
                      "checks": {"amqp": "ok", "database": "ok"}}
    # Without VAR_DIR, var/ is the working folder's, never the site-packages' the code runs from.
    assert (elsewhere / "var" / "profile.db").is_file()
    assert not list(installed.parent.parent.rglob("site-packages/var"))


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if a loaded machine keeps the graceful stop waiting: the test is about starting."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def health_of(url: str, process: subprocess.Popen, log: Path) -> dict | None:
    """The /health answer once it is 200; fails at once if the service exited."""
    assert process.poll() is None, f"the service exited: {log.read_text()[-3000:]}"
    try:
        answer = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return answer.json() if answer.status_code == 200 else None
