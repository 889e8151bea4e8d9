"""order_periods: what was paid for the days not used yet (charged, adjustment, adjusted_from)

A plan change credits or charges against what the customer paid for the unused days, no
longer against the old plan's price (issue 16, item 8: an upgrade and the downgrade back
paid the customer a cent). A period keeps its own charge, spread over all its days, and
the net of its plan changes, spread over the days from adjusted_from to its end.

A period from before this revision does not know its plan changes: its worth on its
current plan (price_minor) is taken for its own charge, which is what the old rules
assumed was paid for its unused days, and the rules never let it return more than was
taken for the period (paid_minor).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('order_periods') as batch_op:
        batch_op.add_column(sa.Column('charged_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('adjustment_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('adjusted_from', sa.Date(), nullable=True))
    op.execute("UPDATE order_periods SET charged_minor = price_minor, adjustment_minor = 0, adjusted_from = starts")
    with op.batch_alter_table('order_periods') as batch_op:
        batch_op.alter_column('charged_minor', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('adjustment_minor', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('adjusted_from', existing_type=sa.Date(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('order_periods') as batch_op:
        batch_op.drop_column('adjusted_from')
        batch_op.drop_column('adjustment_minor')
        batch_op.drop_column('charged_minor')
