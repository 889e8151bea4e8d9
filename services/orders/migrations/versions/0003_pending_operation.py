"""orders.pending_operation: the ledger calls of an unfinished money-moving operation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 05:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch_op:
        batch_op.add_column(sa.Column('pending_operation', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch_op:
        batch_op.drop_column('pending_operation')
