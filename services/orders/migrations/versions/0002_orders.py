"""orders, paid periods, charges, events, ip assignments, reminders, idempotency

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:18:08.592116
"""
from alembic import op
import sqlalchemy as sa

from services.common.migrations import create_idempotency_table, drop_idempotency_table


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_table()
    op.create_table('orders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('plan_id', sa.String(length=48), nullable=False),
    sa.Column('period_months', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('auto_renew', sa.Boolean(), nullable=False),
    sa.Column('cancel_at', sa.Date(), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('datacenter', sa.String(length=10), nullable=True),
    sa.Column('ip_address', sa.String(length=45), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('renewals', sa.Integer(), nullable=False),
    sa.Column('plan_changes', sa.Integer(), nullable=False),
    sa.Column('busy_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('busy_with', sa.String(length=120), nullable=True),
    sa.Column('auto_renew_tried_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_account_created', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_orders_status', ['status'], unique=False)

    op.create_table('plans',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('monthly_price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('catalogue_version', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ip_assignments',
    sa.Column('ip_address', sa.String(length=45), nullable=False),
    sa.Column('datacenter', sa.String(length=10), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('ip_address'),
    sa.UniqueConstraint('order_id')
    )
    op.create_table('order_charges',
    sa.Column('transaction_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('transaction_id')
    )
    with op.batch_alter_table('order_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_charges_order_id'), ['order_id'], unique=False)

    op.create_table('order_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_events_order_id'), ['order_id'], unique=False)

    op.create_table('order_periods',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('starts', sa.Date(), nullable=False),
    sa.Column('ends', sa.Date(), nullable=False),
    sa.Column('months', sa.Integer(), nullable=False),
    sa.Column('paid_minor', sa.BigInteger(), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('order_periods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_periods_order_id'), ['order_id'], unique=False)

    op.create_table('renewal_reminders',
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('paid_until', sa.Date(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('order_id', 'paid_until', 'days')
    )


def downgrade() -> None:
    op.drop_table('renewal_reminders')
    with op.batch_alter_table('order_periods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_periods_order_id'))

    op.drop_table('order_periods')
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_events_order_id'))

    op.drop_table('order_events')
    with op.batch_alter_table('order_charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_charges_order_id'))

    op.drop_table('order_charges')
    op.drop_table('ip_assignments')
    op.drop_table('plans')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status')
        batch_op.drop_index('ix_orders_account_created')

    op.drop_table('orders')
    drop_idempotency_table()
