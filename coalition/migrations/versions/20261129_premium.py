"""The paid premium membership (issue 13, point 8): `memberships`, one row per member and year
bought (or being paid for), with its Stripe ids, price and multiplier. Coalition-wide like
`members` (no row-level security): the purchase path reads a member's multiplier as a merchant.

Revision ID: 20261129_premium
Revises: 20261128_refusals
Create Date: 2026-11-29 00:00:00

"""
import sqlalchemy as sa
from alembic import op

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261129_premium'
down_revision = '20261129_tiers'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('memberships',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('member_id', BIG_ID, nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('multiplier', sa.String(length=24), nullable=False),
    sa.Column('checkout_session_id', sa.String(length=255), nullable=True),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('starts_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lapsed_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'active', 'lapsed', 'refunded', 'cancelled')", name=op.f('ck_memberships_status')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_memberships_member_id_members'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('checkout_session_id', name=op.f('uq_memberships_checkout_session_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_memberships_public_id'))
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index('uq_memberships_member_period', ['member_id', 'period'], unique=True, sqlite_where=sa.text("status <> 'cancelled'"), postgresql_where=sa.text("status <> 'cancelled'"))
        batch_op.create_index('ix_memberships_member_ends', ['member_id', 'ends_at'], unique=False)
        batch_op.create_index('ix_memberships_status_ends', ['status', 'ends_at'], unique=False)
        batch_op.create_index('ix_memberships_paid', ['paid_at'], unique=False)
        batch_op.create_index('ix_memberships_refunded', ['refunded_at'], unique=False)
        batch_op.create_index('ix_memberships_payment_intent', ['payment_intent_id'], unique=False)


def downgrade():
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index('ix_memberships_payment_intent')
        batch_op.drop_index('ix_memberships_refunded')
        batch_op.drop_index('ix_memberships_paid')
        batch_op.drop_index('ix_memberships_status_ends')
        batch_op.drop_index('ix_memberships_member_ends')
        batch_op.drop_index('uq_memberships_member_period')
    op.drop_table('memberships')
