"""The core ledger: accounts, transactions, transfers, lots, lot consumptions, holds, the
outbox, idempotency keys and daily job runs; the operator's account; and the database's own
defence of the ledger (entries cannot be updated, deleted or truncated).

Revision ID: 655730f55ed9
Revises:
Create Date: 2026-11-22 14:58:00.638425

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '655730f55ed9'
down_revision = None
branch_labels = None
depends_on = None

# Ledger entries are immutable (SPEC 2): a mistake is corrected by a reversing entry.
IMMUTABLE = ("transactions", "transfers", "lot_consumptions")

POSTGRESQL_GUARD = """
CREATE FUNCTION coalition_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def _guard_entries():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_GUARD)
        for table in IMMUTABLE:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION coalition_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION coalition_refuse_change()"
            )
    else:
        for table in IMMUTABLE:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable: {action} on {table} refused'); END"
                )


def _unguard_entries():
    if op.get_bind().dialect.name == "postgresql":
        for table in IMMUTABLE:
            op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION coalition_refuse_change()")
    else:
        for table in IMMUTABLE:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER {table}_no_{action}")


def upgrade():
    op.create_table('daily_runs',
    sa.Column('job', sa.String(length=80), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job', 'business_date', name=op.f('pk_daily_runs'))
    )
    op.create_table('idempotency_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=80), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_created_at'), ['created_at'], unique=False)
        batch_op.create_index('uq_idempotency_keys_scope_key', ['scope', 'key'], unique=True)

    op.create_table('members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('public_id', name=op.f('uq_members_public_id'))
    )
    op.create_table('merchants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'active', 'suspended')", name=op.f('ck_merchants_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('public_id', name=op.f('uq_merchants_public_id'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('balance', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), server_default='0', nullable=False),
    sa.Column('debt', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), server_default='0', nullable=False),
    sa.CheckConstraint("(kind = 'member' AND member_id IS NOT NULL AND merchant_id IS NULL) OR (kind = 'merchant' AND merchant_id IS NOT NULL AND member_id IS NULL) OR (kind = 'operator' AND member_id IS NULL AND merchant_id IS NULL)", name=op.f('ck_accounts_owner')),
    sa.CheckConstraint("kind = 'member' OR (balance = 0 AND debt = 0)", name=op.f('ck_accounts_balance_member_only')),
    sa.CheckConstraint("kind IN ('member', 'merchant', 'operator')", name=op.f('ck_accounts_kind')),
    sa.CheckConstraint('debt >= 0 AND balance + debt >= 0', name=op.f('ck_accounts_balance_covers_debt')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_accounts_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_accounts_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('member_id', name=op.f('uq_accounts_member_id')),
    sa.UniqueConstraint('merchant_id', name=op.f('uq_accounts_merchant_id'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('uq_accounts_one_operator', ['kind'], unique=True, sqlite_where=sa.text("kind = 'operator'"), postgresql_where=sa.text("kind = 'operator'"))

    op.create_table('outbox_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_outbox_events_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_outbox_events_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events')),
    sa.UniqueConstraint('public_id', name=op.f('uq_outbox_events_public_id'))
    )
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_events_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_outbox_events_merchant', ['merchant_id', 'id'], unique=False)

    op.create_table('holds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('captured_points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'captured', 'voided')", name=op.f('ck_holds_status')),
    sa.CheckConstraint('points > 0', name=op.f('ck_holds_points_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_holds_account_id_accounts')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_holds_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds')),
    sa.UniqueConstraint('public_id', name=op.f('uq_holds_public_id'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_active', ['account_id', 'expires_at'], unique=False, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index(batch_op.f('ix_holds_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('member_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('original_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('breakdown', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('actor_type', sa.String(length=24), nullable=False),
    sa.Column('actor_id', sa.String(length=80), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("type IN ('earn', 'redeem', 'refund', 'reversal', 'expiry')", name=op.f('ck_transactions_type')),
    sa.CheckConstraint('points >= 0', name=op.f('ck_transactions_points')),
    sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_transactions_hold_id_holds')),
    sa.ForeignKeyConstraint(['member_account_id'], ['accounts.id'], name=op.f('fk_transactions_member_account_id_accounts')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_transactions_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['original_id'], ['transactions.id'], name=op.f('fk_transactions_original_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactions')),
    sa.UniqueConstraint('merchant_id', 'type', 'external_id', name='uq_transactions_external_id'),
    sa.UniqueConstraint('public_id', name=op.f('uq_transactions_public_id'))
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_member_created', ['member_account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_transactions_merchant_created', ['merchant_id', 'created_at'], unique=False)
        batch_op.create_index('ix_transactions_original', ['original_id'], unique=False)
        batch_op.create_index('uq_transactions_one_reversal', ['original_id'], unique=True, sqlite_where=sa.text("type = 'reversal'"), postgresql_where=sa.text("type = 'reversal'"))

    op.create_table('transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('debit_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('credit_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('award', 'redeem', 'clawback', 'reverse', 'expire')", name=op.f('ck_transfers_kind')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_transfers_amount_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_transfers_two_accounts')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['accounts.id'], name=op.f('fk_transfers_credit_account_id_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['accounts.id'], name=op.f('fk_transfers_debit_account_id_accounts')),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_transfers_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index('ix_transfers_created', ['created_at'], unique=False)
        batch_op.create_index('ix_transfers_credit', ['credit_account_id', 'id'], unique=False)
        batch_op.create_index('ix_transfers_debit', ['debit_account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('issuer_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('remaining', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expiring_notice_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('merchant', 'tier', 'welcome')", name=op.f('ck_lots_source')),
    sa.CheckConstraint('points > 0 AND remaining >= 0 AND remaining <= points', name=op.f('ck_lots_remaining')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_lots_account_id_accounts')),
    sa.ForeignKeyConstraint(['issuer_account_id'], ['accounts.id'], name=op.f('fk_lots_issuer_account_id_accounts')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_lots_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lots')),
    sa.UniqueConstraint('transfer_id', name=op.f('uq_lots_transfer_id'))
    )
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index('ix_lots_open', ['account_id', 'expires_at', 'id'], unique=False, sqlite_where=sa.text('remaining > 0'), postgresql_where=sa.text('remaining > 0'))
        batch_op.create_index('ix_lots_open_expiry', ['expires_at'], unique=False, sqlite_where=sa.text('remaining > 0'), postgresql_where=sa.text('remaining > 0'))

    op.create_table('lot_consumptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('issuer_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('redeemer_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('restores_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'debt') = (lot_id IS NULL)", name=op.f('ck_lot_consumptions_debt_has_no_lot')),
    sa.CheckConstraint("kind IN ('redeem', 'clawback', 'expire', 'restore', 'debt', 'repay')", name=op.f('ck_lot_consumptions_kind')),
    sa.CheckConstraint('points > 0', name=op.f('ck_lot_consumptions_points_positive')),
    sa.ForeignKeyConstraint(['issuer_account_id'], ['accounts.id'], name=op.f('fk_lot_consumptions_issuer_account_id_accounts')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_lot_consumptions_lot_id_lots')),
    sa.ForeignKeyConstraint(['member_account_id'], ['accounts.id'], name=op.f('fk_lot_consumptions_member_account_id_accounts')),
    sa.ForeignKeyConstraint(['redeemer_account_id'], ['accounts.id'], name=op.f('fk_lot_consumptions_redeemer_account_id_accounts')),
    sa.ForeignKeyConstraint(['restores_id'], ['lot_consumptions.id'], name=op.f('fk_lot_consumptions_restores_id_lot_consumptions')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_lot_consumptions_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lot_consumptions')),
    sa.UniqueConstraint('restores_id', name=op.f('uq_lot_consumptions_restores_id'))
    )
    with op.batch_alter_table('lot_consumptions', schema=None) as batch_op:
        batch_op.create_index('ix_lot_consumptions_created', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_consumptions_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_consumptions_member_account_id'), ['member_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_consumptions_transfer_id'), ['transfer_id'], unique=False)

    op.execute("INSERT INTO accounts (kind, balance, debt) VALUES ('operator', 0, 0)")
    _guard_entries()


def downgrade():
    _unguard_entries()
    with op.batch_alter_table('lot_consumptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lot_consumptions_transfer_id'))
        batch_op.drop_index(batch_op.f('ix_lot_consumptions_member_account_id'))
        batch_op.drop_index(batch_op.f('ix_lot_consumptions_lot_id'))
        batch_op.drop_index('ix_lot_consumptions_created')

    op.drop_table('lot_consumptions')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_open_expiry', sqlite_where=sa.text('remaining > 0'), postgresql_where=sa.text('remaining > 0'))
        batch_op.drop_index('ix_lots_open', sqlite_where=sa.text('remaining > 0'), postgresql_where=sa.text('remaining > 0'))

    op.drop_table('lots')
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfers_transaction_id'))
        batch_op.drop_index('ix_transfers_debit')
        batch_op.drop_index('ix_transfers_credit')
        batch_op.drop_index('ix_transfers_created')

    op.drop_table('transfers')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('uq_transactions_one_reversal', sqlite_where=sa.text("type = 'reversal'"), postgresql_where=sa.text("type = 'reversal'"))
        batch_op.drop_index('ix_transactions_original')
        batch_op.drop_index('ix_transactions_merchant_created')
        batch_op.drop_index('ix_transactions_member_created')

    op.drop_table('transactions')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holds_merchant_id'))
        batch_op.drop_index('ix_holds_active', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.drop_table('holds')
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_events_merchant')
        batch_op.drop_index(batch_op.f('ix_outbox_events_member_id'))

    op.drop_table('outbox_events')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('uq_accounts_one_operator', sqlite_where=sa.text("kind = 'operator'"), postgresql_where=sa.text("kind = 'operator'"))

    op.drop_table('accounts')
    op.drop_table('merchants')
    op.drop_table('members')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('uq_idempotency_keys_scope_key')
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_created_at'))

    op.drop_table('idempotency_keys')
    op.drop_table('daily_runs')
