"""Run one process of the suite from wherever the package is installed: ``python -m deploy.serve <name>``.

``name`` is a service (profile, orders, ledger, notifier, verification), the ledger's document
worker (``ledger_documents``) or ``gateway``. The container image runs this from the installed
wheel, the local runner from the checkout: it finds the process's ``config.yml`` inside the package
and becomes ``nameko run`` with it (through ``deploy.process``, which leaves out two imports).
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path

from services.common.config import SERVICES

RUNS = {**{service: f"services.{service}.service:{service.capitalize()}Service" for service in SERVICES},
        # The ledger's PDFs, rendered by a process of the ledger that answers no price or charge.
        "ledger_documents": "services.ledger.documents.service:LedgerDocumentsService",
        "gateway": "gateway.service:Gateway"}
# A process's own environment, set before it starts (eventlet reads it when imported). Orders, the
# ledger, its document worker and the gateway resolve no name but their broker's and their database's,
# as they connect: eventlet's green DNS (dnspython, 7 MB resident a process) is left out of them, and
# such a lookup blocks the process for the moment the resolver takes (README Performance, "Memory").
# Profile (the VAT number check), the notifier (the SMTP relay) and verification (the telephony
# providers) reach the outside world by name and keep it.
WITHOUT_GREEN_DNS = ("orders", "ledger", "ledger_documents", "gateway")
RUN_ENV = {name: {"EVENTLET_NO_GREENDNS": "yes"} for name in WITHOUT_GREEN_DNS}


def config_file(name: str) -> Path:
    """The Nameko config of ``name``, inside the installed package."""
    package = RUNS[name].partition(".service:")[0]
    return Path(str(files(package) / "config.yml"))


def nameko_argv(name: str) -> list[str]:
    """The command line that runs ``name`` with this interpreter."""
    return [sys.executable, "-m", "deploy.process", "run", "--config", str(config_file(name)), RUNS[name]]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.serve")
    parser.add_argument("name", choices=sorted(RUNS))
    name = parser.parse_args(argv).name
    os.environ.update(RUN_ENV.get(name, {}))
    argv = nameko_argv(name)
    os.execv(argv[0], argv)  # nameko gets this process: its pid and its signals (SIGTERM stops it)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
