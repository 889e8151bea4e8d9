"""subscribers become the notifier's copy of every customer's addresses: the invoices, support and
complaints addresses of the notification settings, and whether profile's answer filled the row

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 01:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('subscribers', sa.Column('invoices_email', sa.String(length=254), nullable=True))
    op.add_column('subscribers', sa.Column('support_email', sa.String(length=254), nullable=True))
    op.add_column('subscribers', sa.Column('complaints_email', sa.String(length=254), nullable=True))
    op.add_column('subscribers', sa.Column('answered', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_column('answered')
        batch.drop_column('complaints_email')
        batch.drop_column('support_email')
        batch.drop_column('invoices_email')
