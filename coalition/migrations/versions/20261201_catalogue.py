"""The rewards catalogue (SPEC 2): rewards listed by the operator and partner merchants, their
images, and members' orders (paid by a redemption at the supplier, a voucher's code unique).
On PostgreSQL, row-level security: anyone may read a listing (the catalogue is the whole
coalition's), only its supplier write it; an order is its supplier's and its member's.

Revision ID: 20261201_catalogue
Revises: 20261201_draws
Create Date: 2026-12-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa

import coalition.database


MERCHANT_ROW = "coalition_privileged() OR merchant_id = coalition_merchant_id()"
MEMBERS_ROW = MERCHANT_ROW + " OR member_account_id = coalition_member_account_id()"
CATALOGUE_TABLES = ("rewards", "reward_images")

# revision identifiers, used by Alembic.
revision = '20261201_catalogue'
down_revision = '20261201_draws'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rewards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cost_price_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('stock', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('valid_from', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_until', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fulfilment_days', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=60), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('gift', 'voucher', 'experience')", name=op.f('ck_rewards_kind_known')),
    sa.CheckConstraint('cost_price_minor IS NULL OR cost_price_minor >= 0', name=op.f('ck_rewards_cost_price_not_negative')),
    sa.CheckConstraint('fulfilment_days >= 0', name=op.f('ck_rewards_fulfilment_days_not_negative')),
    sa.CheckConstraint('points > 0', name=op.f('ck_rewards_points_positive')),
    sa.CheckConstraint('stock IS NULL OR stock >= 0', name=op.f('ck_rewards_stock_not_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_rewards_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards')),
    sa.UniqueConstraint('public_id', name=op.f('uq_rewards_public_id'))
    )
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.create_index('ix_rewards_category', ['category', 'id'], unique=False)
        batch_op.create_index('ix_rewards_merchant', ['merchant_id', 'id'], unique=False)

    op.create_table('reward_images',
    sa.Column('reward_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('content_type', sa.String(length=20), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("content_type IN ('image/png', 'image/jpeg', 'image/webp')", name=op.f('ck_reward_images_content_type_known')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_reward_images_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_reward_images_reward_id_rewards')),
    sa.PrimaryKeyConstraint('reward_id', name=op.f('pk_reward_images'))
    )
    op.create_table('orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('reward_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cost_price_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('voucher_code', sa.String(length=16), nullable=True),
    sa.Column('voucher_accepted_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reversal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('due_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fulfilled_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=12), nullable=True),
    sa.CheckConstraint("cancelled_by IS NULL OR cancelled_by IN ('member', 'expiry')", name=op.f('ck_orders_cancelled_by_known')),
    sa.CheckConstraint("status IN ('pending', 'fulfilled', 'cancelled')", name=op.f('ck_orders_status_known')),
    sa.CheckConstraint('points > 0', name=op.f('ck_orders_points_positive')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_orders_quantity_positive')),
    sa.ForeignKeyConstraint(['member_account_id'], ['accounts.id'], name=op.f('fk_orders_member_account_id_accounts')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_orders_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_orders_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['reversal_id'], ['transactions.id'], name=op.f('fk_orders_reversal_id_transactions')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_orders_reward_id_rewards')),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_orders_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('public_id', name=op.f('uq_orders_public_id')),
    sa.UniqueConstraint('voucher_code', name=op.f('uq_orders_voucher_code'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_member_account', ['member_account_id', 'id'], unique=False)
        batch_op.create_index('ix_orders_merchant', ['merchant_id', 'id'], unique=False)
        batch_op.create_index('ix_orders_pending_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_orders_transaction', ['transaction_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for name in (*CATALOGUE_TABLES, "orders"):
            op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
        for name in CATALOGUE_TABLES:
            op.execute(f"CREATE POLICY catalogue ON {name} FOR SELECT USING (true)")
            op.execute(
                f"CREATE POLICY tenant ON {name} USING ({MERCHANT_ROW}) WITH CHECK ({MERCHANT_ROW})"
            )
        op.execute(f"CREATE POLICY tenant ON orders USING ({MEMBERS_ROW}) WITH CHECK ({MERCHANT_ROW})")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY tenant ON orders")
        for name in CATALOGUE_TABLES:
            op.execute(f"DROP POLICY tenant ON {name}")
            op.execute(f"DROP POLICY catalogue ON {name}")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_transaction')
        batch_op.drop_index('ix_orders_pending_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_orders_merchant')
        batch_op.drop_index('ix_orders_member_account')

    op.drop_table('orders')
    op.drop_table('reward_images')
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_index('ix_rewards_merchant')
        batch_op.drop_index('ix_rewards_category')

    op.drop_table('rewards')
