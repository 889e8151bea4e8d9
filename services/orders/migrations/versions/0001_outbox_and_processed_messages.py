"""outbox and processed messages

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 05:11:06.485409
"""
# The tables every service shares, as services.common.migrations creates them.
from services.common.migrations import create_messaging_tables as upgrade  # noqa: F401
from services.common.migrations import drop_messaging_tables as downgrade  # noqa: F401

revision = '0001'
down_revision = None
