"""accounts found by e-mail whatever its case (profile.find_by_email, for support)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_accounts_email_lower', 'accounts', [sa.text('lower(email)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_accounts_email_lower', table_name='accounts')
