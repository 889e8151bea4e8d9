"""Run every service's Alembic migrations: ``python -m deploy.migrate [service ...]``.

``python -m deploy.migrate revision <service> -m "message"`` autogenerates a revision.
"""
from __future__ import annotations

import sys

from alembic import command

from services.common.config import ROOT, SERVICES
from services.common.migrations import alembic_config, upgrade


def main(argv: list[str]) -> int:
    if argv[:1] == ["revision"]:
        service, message = argv[1], argv[argv.index("-m") + 1]
        versions = ROOT / "services" / service / "migrations" / "versions"
        number = len(list(versions.glob("[0-9][0-9][0-9][0-9]_*.py"))) + 1
        command.revision(alembic_config(service), message=message, autogenerate=True,
                         rev_id=f"{number:04d}")
        return 0
    for service in argv or SERVICES:
        upgrade(service)
        print(f"migrated {service}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
