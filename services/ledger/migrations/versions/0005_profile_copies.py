"""profile_copies: the customer as billed, kept from profile's events

The buyer's data for an invoice and a payment method's eligibility are read from this copy
in the movement's own transaction, instead of asking profile over RPC on every charge
(issue 16, item 1). See services/common/profile_copy.py.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 00:40:00
"""

from services.common.migrations import (
    create_profile_copy_table,
    drop_profile_copy_table,
)

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_profile_copy_table()


def downgrade() -> None:
    drop_profile_copy_table()
