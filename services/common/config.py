"""Configuration from the environment, with defaults that run everything on one machine."""
from __future__ import annotations

import os
from pathlib import Path

# Where the packages are: the checkout, or site-packages when installed from the wheel.
ROOT = Path(__file__).resolve().parents[2]

SERVICES = ("profile", "orders", "ledger", "notifier", "verification")
# 8006 is the gateway's metrics port; ledger_documents is the ledger's PDF worker (deploy/serve.py).
HEALTH_PORTS = {"gateway": 8000, "profile": 8001, "orders": 8002, "ledger": 8003,
                "notifier": 8004, "verification": 8005, "ledger_documents": 8007}


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_int(name: str, default: int) -> int:
    return int(env(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def var_dir() -> Path:
    """``VAR_DIR``, else ``var/`` of the checkout; installed (no checkout), ``var/`` of the working directory.

    Never inside site-packages: it may not be writable, and it is no place for logs or databases.
    """
    checkout = (ROOT / "pyproject.toml").is_file()
    return Path(env("VAR_DIR") or (ROOT if checkout else Path.cwd()) / "var")


def amqp_uri() -> str:
    return env("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def database_url(service: str) -> str:
    """``<SERVICE>_DATABASE_URL``, else one SQLite file per service under ``var/``."""
    url = env(f"{service.upper()}_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{var_dir() / f'{service}.db'}"


def rpc_timeout() -> float:
    """Seconds a caller waits for an RPC answer before calling the service unavailable."""
    return env_float("RPC_TIMEOUT", 5.0)


def order_write_timeout() -> float:
    """Seconds the gateway waits for an order that is placed, renewed, changed or cancelled.

    Such an operation may make calls of its own (placing and renewing one, the ledger's
    ``charge_order``, and profile's ``get`` when orders has no copy of the customer yet; a plan
    change the ledger's prices and its charge or refunds), each allowed ``RPC_TIMEOUT``; a shorter
    outer wait answered 503 while the order went on to be paid. ``ORDER_WRITE_TIMEOUT``, three
    times ``RPC_TIMEOUT`` unless set.
    """
    return env_float("ORDER_WRITE_TIMEOUT", 3 * rpc_timeout())
