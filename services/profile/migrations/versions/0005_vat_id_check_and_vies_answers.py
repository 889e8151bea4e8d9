"""what VIES said of a company's VAT id: with the account, and per VAT id for VIES_CACHE_HOURS

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 20:40:02.550970
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vies_answers',
    sa.Column('vat_id', sa.String(length=20), nullable=False),
    sa.Column('answer', sa.String(length=12), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('vat_id')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vat_id_check', sa.String(length=12), server_default='not_checked', nullable=False))
        batch_op.add_column(sa.Column('vat_id_checked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('vat_id_checked_at')
        batch_op.drop_column('vat_id_check')

    op.drop_table('vies_answers')
