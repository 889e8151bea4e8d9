"""the alert in days and the monthly statement: each balance keeps the customer's low_balance_days, whether
the forecast is under it, whether a monthly statement is asked for and the last month sent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('balances', sa.Column('low_balance_days', sa.Integer(), nullable=True))
    op.add_column('balances', sa.Column('below_days', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('balances', sa.Column('monthly_statement', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('balances', sa.Column('statement_sent_for', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('balances') as batch:
        batch.drop_column('statement_sent_for')
        batch.drop_column('monthly_statement')
        batch.drop_column('below_days')
        batch.drop_column('low_balance_days')
