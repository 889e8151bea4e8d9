"""orders.number: a short number per order, unique in the system (issue 18)

Existing orders are numbered in the order they were placed (created_at, then id), from 1;
new ones take theirs at placement: on PostgreSQL from the sequence order_numbers, which starts
after the last number given here (services/orders/numbers.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch_op:
        batch_op.add_column(sa.Column('number', sa.BigInteger(), nullable=True))
    connection = op.get_bind()
    orders = sa.table('orders', sa.column('id', sa.String), sa.column('number', sa.BigInteger),
                      sa.column('created_at', sa.DateTime))
    placed = connection.execute(sa.select(orders.c.id).order_by(orders.c.created_at, orders.c.id)).scalars().all()
    for number, order_id in enumerate(placed, start=1):
        connection.execute(orders.update().where(orders.c.id == order_id).values(number=number))
    with op.batch_alter_table('orders') as batch_op:
        batch_op.alter_column('number', existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint('uq_orders_number', ['number'])
    if connection.dialect.name == 'postgresql':
        op.execute(f"CREATE SEQUENCE order_numbers START WITH {len(placed) + 1}")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP SEQUENCE order_numbers")
    with op.batch_alter_table('orders') as batch_op:
        batch_op.drop_constraint('uq_orders_number', type_='unique')
        batch_op.drop_column('number')
