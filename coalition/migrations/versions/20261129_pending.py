"""Pending points (SPEC 2): a merchant's `pending_days`; lots pending until confirmed
(`pending_until`, `confirmed_at`) and the member's `pending` points; the lot consumptions
`cancel` (a refund inside the window) and `confirm` (the nightly confirmation).

Revision ID: 20261129_pending
Revises: 20261128_refusals
Create Date: 2026-11-29 00:00:00

"""
import sqlalchemy as sa
from alembic import op

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261129_pending'
down_revision = '20261129_rules'
branch_labels = None
depends_on = None

OLD_KINDS = ('redeem', 'clawback', 'expire', 'restore', 'debt', 'repay')
NEW_KINDS = OLD_KINDS + ('cancel', 'confirm')
PENDING = "pending_until IS NOT NULL AND confirmed_at IS NULL"
CLOSED_BEFORE = "(SELECT max(window_end) FROM settlement_runs WHERE kind = 'final')"


def _kinds(kinds):
    return "kind IN (" + ", ".join(repr(k) for k in kinds) + ")"


def _sqlite_consumption_triggers():
    """SQLite rebuilds a table to change a CHECK and loses its triggers: the ledger's defence
    (entries immutable, the settlement gate) is put back as the first migrations made it."""
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER lot_consumptions_no_{action.lower()} BEFORE {action} ON lot_consumptions "
            f"BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable: {action} on lot_consumptions refused'); END"
        )
    op.execute(f"""
        CREATE TRIGGER settlement_gate_lot_consumptions BEFORE INSERT ON lot_consumptions
        WHEN NEW.created_at < {CLOSED_BEFORE}
        BEGIN SELECT RAISE(ABORT, 'business_day_closed: the business day of this entry is settled'); END
    """)


def _consumption_kinds(kinds):
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        for name in ("lot_consumptions_no_update", "lot_consumptions_no_delete",
                     "settlement_gate_lot_consumptions"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table('lot_consumptions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_lot_consumptions_kind'), type_='check')
        batch_op.create_check_constraint('kind', _kinds(kinds))
    if sqlite:
        _sqlite_consumption_triggers()


def upgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_days', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint('pending_days', 'pending_days >= 0 AND pending_days <= 60')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), server_default='0', nullable=False))

    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_until', coalition.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', coalition.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            'ix_lots_pending', ['pending_until'], unique=False,
            sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING),
        )
        batch_op.create_index(
            'ix_lots_pending_created', ['created_at'], unique=False,
            sqlite_where=sa.text('pending_until IS NOT NULL'),
            postgresql_where=sa.text('pending_until IS NOT NULL'),
        )

    # SQLite would rebuild these two tables (and their partial indexes) to add a CHECK: there
    # `coalition verify-ledger` checks the same rules.
    if op.get_bind().dialect.name == 'postgresql':
        op.create_check_constraint(
            'pending_within_balance', 'accounts',
            "pending >= 0 AND pending <= balance + debt AND (kind = 'member' OR pending = 0)",
        )
        op.create_check_constraint(
            'confirmed_if_pending', 'lots', 'confirmed_at IS NULL OR pending_until IS NOT NULL'
        )

    _consumption_kinds(NEW_KINDS)


def downgrade():
    _consumption_kinds(OLD_KINDS)
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(op.f('ck_lots_confirmed_if_pending'), 'lots', type_='check')
        op.drop_constraint(op.f('ck_accounts_pending_within_balance'), 'accounts', type_='check')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_pending_created')
        batch_op.drop_index('ix_lots_pending')
        batch_op.drop_column('confirmed_at')
        batch_op.drop_column('pending_until')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('pending')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_merchants_pending_days'), type_='check')
        batch_op.drop_column('pending_days')
