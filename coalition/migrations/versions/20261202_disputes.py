"""Statement disputes (SPEC 3.10, issue 16): a merchant disputes a line of one of its statements
within 14 days; staff resolve it with a credit or debit note, stated in the merchant's next
statement, or reject it. On PostgreSQL the table is its merchant's (row-level security like
`statements`).

Revision ID: 20261202_disputes
Revises: 20261202_fraud
Create Date: 2026-12-02 00:00:00

"""
import sqlalchemy as sa
from alembic import op

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261202_disputes'
down_revision = '20261202_fraud'
branch_labels = None
depends_on = None

MERCHANT_ROW = "coalition_privileged() OR merchant_id = coalition_merchant_id()"
BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UNSTATED = "status = 'resolved' AND applied_statement_id IS NULL"


def upgrade():
    op.create_table('statement_disputes',
    sa.Column('id', BIG, nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('statement_id', BIG, nullable=False),
    sa.Column('merchant_id', BIG, nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('line_kind', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('raised_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note_kind', sa.String(length=16), nullable=True),
    sa.Column('note_minor', BIG, nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('resolved_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=320), nullable=True),
    sa.Column('applied_statement_id', BIG, nullable=True),
    sa.CheckConstraint("status IN ('open', 'resolved', 'rejected')", name=op.f('ck_statement_disputes_status')),
    sa.CheckConstraint("note_kind IS NULL OR note_kind IN ('credit_note', 'debit_note')", name=op.f('ck_statement_disputes_note_kind')),
    sa.CheckConstraint('note_minor IS NULL OR note_minor > 0', name=op.f('ck_statement_disputes_note_positive')),
    sa.CheckConstraint("(status = 'resolved') = (note_kind IS NOT NULL AND note_minor IS NOT NULL)", name=op.f('ck_statement_disputes_resolved_has_note')),
    sa.ForeignKeyConstraint(['applied_statement_id'], ['statements.id'], name=op.f('fk_statement_disputes_applied_statement_id_statements')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_statement_disputes_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_statement_disputes_statement_id_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_disputes')),
    sa.UniqueConstraint('public_id', name=op.f('uq_statement_disputes_public_id'))
    )
    with op.batch_alter_table('statement_disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_disputes_statement_id'), ['statement_id'], unique=False)
        batch_op.create_index('ix_statement_disputes_merchant', ['merchant_id', 'id'], unique=False)
        batch_op.create_index('ix_statement_disputes_status', ['status', 'id'], unique=False)
        batch_op.create_index('uq_statement_disputes_open_line', ['statement_id', 'line'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
        batch_op.create_index('ix_statement_disputes_unstated', ['merchant_id'], unique=False, sqlite_where=sa.text(UNSTATED), postgresql_where=sa.text(UNSTATED))

    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE statement_disputes ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE statement_disputes FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant ON statement_disputes USING ({MERCHANT_ROW})"
            f" WITH CHECK ({MERCHANT_ROW})"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP POLICY tenant ON statement_disputes")
    with op.batch_alter_table('statement_disputes', schema=None) as batch_op:
        batch_op.drop_index('ix_statement_disputes_unstated', sqlite_where=sa.text(UNSTATED), postgresql_where=sa.text(UNSTATED))
        batch_op.drop_index('uq_statement_disputes_open_line', sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
        batch_op.drop_index('ix_statement_disputes_status')
        batch_op.drop_index('ix_statement_disputes_merchant')
        batch_op.drop_index(batch_op.f('ix_statement_disputes_statement_id'))
    op.drop_table('statement_disputes')
