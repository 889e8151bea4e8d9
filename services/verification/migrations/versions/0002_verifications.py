"""verification attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:18:14.229096
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'verifications',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('account_id', sa.String(length=36), nullable=False),
        sa.Column('phone', sa.String(length=16), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('operation', sa.String(length=40), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('gateway', sa.String(length=16), nullable=True),
        sa.Column('provider_call_id', sa.String(length=100), nullable=True),
        sa.Column('code_salt', sa.String(length=32), nullable=True),
        sa.Column('code_digest', sa.String(length=64), nullable=True),
        sa.Column('attempts_left', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_for', sa.String(length=40), nullable=True),
        sa.Column('used_reference', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    # The start limits count recent starts per number and per account.
    op.create_index('ix_verifications_phone_created_at', 'verifications', ['phone', 'created_at'])
    op.create_index('ix_verifications_account_created_at', 'verifications', ['account_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_verifications_account_created_at', table_name='verifications')
    op.drop_index('ix_verifications_phone_created_at', table_name='verifications')
    op.drop_table('verifications')
