"""forecast_checks: the day each account's forecast was last checked for the alert in days

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('forecast_checks',
                    sa.Column('account_id', sa.String(length=64), nullable=False),
                    sa.Column('checked_on', sa.Date(), nullable=False),
                    sa.PrimaryKeyConstraint('account_id'))


def downgrade() -> None:
    op.drop_table('forecast_checks')
