"""notification settings: low_balance_days (the alert when the balance forecast's days fall under it) and
monthly_statement (a statement of the past month by e-mail)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:55:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('accounts', sa.Column('low_balance_days', sa.Integer(), nullable=True))
    op.add_column('accounts', sa.Column('monthly_statement', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('monthly_statement')
        batch.drop_column('low_balance_days')
