"""profile_copies (whether the customer may pay, from profile's events); ix_orders_interrupted

A new order reads the customer's payment eligibility from this copy instead of asking
profile over RPC (issue 16, item 1; services/common/profile_copy.py). The partial index finds
the operations to finish, which are looked for every few seconds (issue 16, item 6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 00:40:00
"""
from alembic import op
import sqlalchemy as sa

from services.common.migrations import create_profile_copy_table, drop_profile_copy_table


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_profile_copy_table()
    op.create_index('ix_orders_interrupted', 'orders', ['busy_until'], unique=False,
                    postgresql_where=sa.text('pending_operation IS NOT NULL'),
                    sqlite_where=sa.text('pending_operation IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_orders_interrupted', table_name='orders')
    drop_profile_copy_table()
