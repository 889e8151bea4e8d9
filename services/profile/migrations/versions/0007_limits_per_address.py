"""limits per address: familiar login attempts, the address an account registered from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('familiar', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registration_ip', sa.String(length=45), nullable=True))
        batch_op.create_index('ix_accounts_registration_ip_created_at', ['registration_ip', 'created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_registration_ip_created_at')
        batch_op.drop_column('registration_ip')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_column('familiar')
