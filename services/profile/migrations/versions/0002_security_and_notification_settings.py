"""security and notification settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:17:55.441666
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing accounts get the defaults (no rules, no codes, no newsletter) through server defaults.
    op.create_table('security_code_checks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('matched', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('security_code_checks', schema=None) as batch_op:
        batch_op.create_index('ix_security_code_checks_account_at', ['account_id', 'at'], unique=False)

    op.create_table('security_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.create_index('ix_security_events_account_id', ['account_id', 'id'], unique=False)

    op.create_table('email_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('email_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_tokens_account_id'), ['account_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('security_code_hash', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('ip_rules', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('recovery_code_hashes', sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('newsletter', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('low_balance_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('low_balance_currency', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('invoices_email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('support_email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('complaints_email', sa.String(length=254), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('complaints_email')
        batch_op.drop_column('support_email')
        batch_op.drop_column('invoices_email')
        batch_op.drop_column('low_balance_currency')
        batch_op.drop_column('low_balance_minor')
        batch_op.drop_column('newsletter')
        batch_op.drop_column('recovery_code_hashes')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_pending_secret')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('ip_rules')
        batch_op.drop_column('security_code_hash')

    with op.batch_alter_table('email_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_tokens_account_id'))

    op.drop_table('email_tokens')
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.drop_index('ix_security_events_account_id')

    op.drop_table('security_events')
    with op.batch_alter_table('security_code_checks', schema=None) as batch_op:
        batch_op.drop_index('ix_security_code_checks_account_at')

    op.drop_table('security_code_checks')
