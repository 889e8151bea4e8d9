"""operator action callers

A payment, an operator's adjustment and a credit limit keep, beside the operator's name the call
gives, the broker login that made the call (the AMQP user_id RabbitMQ vouches for).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('transactions', sa.Column('caller', sa.String(length=64), nullable=True))
    op.add_column('balances', sa.Column('credit_limit_operator', sa.String(length=100), nullable=True))
    op.add_column('balances', sa.Column('credit_limit_caller', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('balances') as batch:
        batch.drop_column('credit_limit_caller')
        batch.drop_column('credit_limit_operator')
    with op.batch_alter_table('transactions') as batch:
        batch.drop_column('caller')
