"""ip_free_addresses: the addresses no order holds, taken in O(1) by a new order (issue 16, item 5)

Placing an order read every assignment and parsed every address of the pool under one global
lock. Now each free address is a row a new order takes (FOR UPDATE SKIP LOCKED on PostgreSQL),
and a plan's stock counts its live orders in a datacenter through a partial index. This fills
the table from the catalogue's pools (with ``ORDERS_IP_POOLS`` as the service reads it) less the
addresses orders hold; the service does the same each time it starts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.orm import Session


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

LIVE = sa.text("status NOT IN ('cancelled', 'closed')")


def upgrade() -> None:
    op.create_table(
        'ip_free_addresses',
        sa.Column('ip_address', sa.String(length=45), nullable=False),
        sa.Column('datacenter', sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint('ip_address'),
    )
    op.create_index('ix_ip_free_addresses_datacenter', 'ip_free_addresses', ['datacenter'])
    op.create_index('ix_orders_live_by_plan', 'orders', ['plan_id', 'datacenter'],
                    postgresql_where=LIVE, sqlite_where=LIVE)
    # The catalogue of this release, as the service will load it at start.
    from services.common.config import env
    from services.orders import address_stock
    from services.orders.catalogue import load_catalogue, parse_ip_pools
    catalogue = load_catalogue(ip_pools=parse_ip_pools(env("ORDERS_IP_POOLS", "")))
    session = Session(bind=op.get_bind())
    address_stock.fill(session, catalogue.ip_pools)
    session.flush()


def downgrade() -> None:
    op.drop_index('ix_orders_live_by_plan', table_name='orders')
    op.drop_index('ix_ip_free_addresses_datacenter', table_name='ip_free_addresses')
    op.drop_table('ip_free_addresses')
