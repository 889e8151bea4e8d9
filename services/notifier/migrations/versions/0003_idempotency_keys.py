"""idempotency keys: the first answer to notify and send_newsletter, per key

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 09:00:00.000000
"""
# The table orders keeps its keys in too, as services.common.migrations creates it.
from services.common.migrations import create_idempotency_table as upgrade  # noqa: F401
from services.common.migrations import drop_idempotency_table as downgrade  # noqa: F401

revision = '0003'
down_revision = '0002'
