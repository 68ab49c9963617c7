"""Settlement reads each business day's refunds (their paid-back points): a partial index on
`transactions (created_at) WHERE type = 'refund'` finds them without reading every transaction,
at a cost to refunds only.

Revision ID: 20261128_refunds_by_day
Revises: 20261128_token_live
Create Date: 2026-11-28 12:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '20261128_refunds_by_day'
down_revision = '20261128_token_live'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(
            'ix_transactions_refunds_created',
            ['created_at'],
            unique=False,
            sqlite_where=sa.text("type = 'refund'"),
            postgresql_where=sa.text("type = 'refund'"),
        )


def downgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_refunds_created')
