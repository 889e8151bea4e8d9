"""invoice pdfs

Each invoice's PDF, rendered once by the ledger's document worker and kept, append-only like the
invoices (triggers refuse UPDATE and DELETE). ``pdf_backfill`` remembers which invoices were
issued before (the worker renders theirs in the background and announces none of them: their mail
went out when they were issued) and how far that backfill has come.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invoice_pdfs',
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('rendered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ),
    sa.PrimaryKeyConstraint('invoice_id')
    )
    op.create_table('pdf_backfill',
    sa.Column('through_seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('rendered_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('through_seq')
    )
    op.execute("INSERT INTO pdf_backfill (through_seq, rendered_seq) "
               "SELECT COALESCE(MAX(seq), 0), 0 FROM invoices")
    if op.get_bind().dialect.name == "postgresql":
        # ledger_append_only() is revision 0002's: it refuses the statement, naming the table.
        op.execute("CREATE TRIGGER invoice_pdfs_append_only BEFORE UPDATE OR DELETE ON invoice_pdfs "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER invoice_pdfs_no_{action.lower()} BEFORE {action} ON invoice_pdfs "
                       f"BEGIN SELECT RAISE(ABORT, 'the ledger journal is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS invoice_pdfs_append_only ON invoice_pdfs")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS invoice_pdfs_no_{action}")
    op.drop_table('pdf_backfill')
    op.drop_table('invoice_pdfs')
