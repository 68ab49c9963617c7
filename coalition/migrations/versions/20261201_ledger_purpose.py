"""What a redemption paid for (issue 15): `transactions.purpose`, NULL for a discount at a till,
'order' for a reward ordered from the catalogue, 'draw_entry' for an entry to a prize draw, on
the redemption and on its reversal. A plain ADD COLUMN (no table rebuild: SQLite keeps its
immutability triggers); the check is PostgreSQL's, SQLite cannot add one to a table in place.

Revision ID: 20261201_ledger_purpose
Revises: 20261130_wh_engine
Create Date: 2026-12-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '20261201_ledger_purpose'
down_revision = '20261130_wh_engine'
branch_labels = None
depends_on = None

CHECK = (
    "purpose IS NULL OR (type IN ('redeem', 'reversal')"
    " AND purpose IN ('order', 'draw_entry'))"
)


def upgrade():
    op.add_column('transactions', sa.Column('purpose', sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_check_constraint(op.f('ck_transactions_purpose'), 'transactions', CHECK)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f('ck_transactions_purpose'), 'transactions', type_='check')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_column('purpose')
