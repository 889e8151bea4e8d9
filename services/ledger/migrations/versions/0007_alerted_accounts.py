"""balances with an alert in days, found by an index of their own for orders' daily forecast

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 04:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_balances_alert_in_days', 'balances', ['account_id'],
                    postgresql_where=sa.text('low_balance_days IS NOT NULL'),
                    sqlite_where=sa.text('low_balance_days IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_balances_alert_in_days', table_name='balances')
