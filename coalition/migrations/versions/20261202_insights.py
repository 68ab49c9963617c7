"""Insights (issue 16): the nightly snapshot of the operator's coalition-wide figures for the
default range (`insight_snapshots`, the operator's alone: on PostgreSQL only a privileged
tenant sees it), and a partial index over purchases by merchant and time that carries the
columns a merchant's insights read, so those read the index alone.

Revision ID: 20261202_insights
Revises: 20261202_disputes
Create Date: 2026-12-02 00:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '20261202_insights'
down_revision = '20261202_disputes'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
PURCHASE_COLUMNS = ['merchant_id', 'created_at', 'member_account_id', 'amount_minor', 'points']


def upgrade():
    op.create_table('insight_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('first', sa.Date(), nullable=False),
    sa.Column('last', sa.Date(), nullable=False),
    sa.Column('figures', JSON, nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insight_snapshots')),
    sa.UniqueConstraint('scope', 'first', 'last', name='uq_insight_snapshots_window'),
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(
            'ix_transactions_purchases_merchant',
            PURCHASE_COLUMNS,
            unique=False,
            sqlite_where=sa.text("type = 'earn'"),
            postgresql_where=sa.text("type = 'earn'"),
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE insight_snapshots ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE insight_snapshots FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant ON insight_snapshots"
            " USING (coalition_privileged()) WITH CHECK (coalition_privileged())"
        )


def downgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_purchases_merchant')
    op.drop_table('insight_snapshots')
