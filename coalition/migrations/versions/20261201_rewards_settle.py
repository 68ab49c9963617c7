"""Settlement prices orders and draw entries as their own lines (issue 15): a partial index on
`transactions (created_at) WHERE purpose IS NOT NULL` finds a day's purposeful redemptions and
their reversals without reading every transaction, at a cost to those only.

Revision ID: 20261201_rewards_settle
Revises: 20261201_catalogue
Create Date: 2026-12-01 00:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '20261201_rewards_settle'
down_revision = '20261201_catalogue'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(
            'ix_transactions_purpose_created',
            ['created_at'],
            unique=False,
            sqlite_where=sa.text("purpose IS NOT NULL"),
            postgresql_where=sa.text("purpose IS NOT NULL"),
        )


def downgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_purpose_created')
