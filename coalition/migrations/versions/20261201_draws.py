"""Prize draws (SPEC 2, 3.3-3.5): the draws (seed kept until the close, its hash public), the
partners whose purchases earn free entries, the entries paid with points (each a redemption at
the operator), and the closed, pseudonymous list of entrants written at the close.

No row-level security: a draw is the operator's and public, and its entries are read through
the operator, the system (the closing job) or the member's own pages, never by a merchant's
token (decision 280).

Revision ID: 20261201_draws
Revises: 20261201_ledger_purpose
Create Date: 2026-12-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261201_draws'
down_revision = '20261201_ledger_purpose'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('draws',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('prize', sa.String(length=200), nullable=False),
    sa.Column('entry_points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('free_entry_min_amount_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('closes_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('winners_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('seed_hash', sa.String(length=64), nullable=False),
    sa.Column('entries_hash', sa.String(length=64), nullable=True),
    sa.Column('entries_count', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('winners', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'closed') = (closed_at IS NOT NULL AND entries_hash IS NOT NULL AND entries_count IS NOT NULL AND winners IS NOT NULL)", name=op.f('ck_draws_closed_has_outcome')),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_draws_status_known')),
    sa.CheckConstraint('(free_entry_min_amount_minor IS NULL) = (currency IS NULL) AND (free_entry_min_amount_minor IS NULL OR free_entry_min_amount_minor > 0)', name=op.f('ck_draws_free_entries_priced')),
    sa.CheckConstraint('entry_points IS NOT NULL OR free_entry_min_amount_minor IS NOT NULL', name=op.f('ck_draws_some_way_in')),
    sa.CheckConstraint('entry_points IS NULL OR entry_points > 0', name=op.f('ck_draws_entry_points_positive')),
    sa.CheckConstraint('winners_count > 0', name=op.f('ck_draws_winners_count_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draws')),
    sa.UniqueConstraint('public_id', name=op.f('uq_draws_public_id'))
    )
    with op.batch_alter_table('draws', schema=None) as batch_op:
        batch_op.create_index('ix_draws_open_closes_at', ['closes_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    op.create_table('draw_partners',
    sa.Column('draw_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['draw_id'], ['draws.id'], name=op.f('fk_draw_partners_draw_id_draws')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_draw_partners_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('draw_id', 'merchant_id', name=op.f('pk_draw_partners'))
    )
    op.create_table('draw_entrants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('draw_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entrant', sa.String(length=24), nullable=False),
    sa.Column('paid_entries', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('free_entries', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.CheckConstraint('paid_entries >= 0 AND free_entries >= 0 AND paid_entries + free_entries > 0', name=op.f('ck_draw_entrants_has_entries')),
    sa.ForeignKeyConstraint(['draw_id'], ['draws.id'], name=op.f('fk_draw_entrants_draw_id_draws')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_draw_entrants_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draw_entrants')),
    sa.UniqueConstraint('draw_id', 'entrant', name='uq_draw_entrants_draw_entrant'),
    sa.UniqueConstraint('draw_id', 'member_id', name='uq_draw_entrants_draw_member')
    )
    with op.batch_alter_table('draw_entrants', schema=None) as batch_op:
        batch_op.create_index('ix_draw_entrants_member', ['member_id'], unique=False)

    op.create_table('draw_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('draw_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('entries > 0 AND points > 0', name=op.f('ck_draw_entries_entries_positive')),
    sa.ForeignKeyConstraint(['draw_id'], ['draws.id'], name=op.f('fk_draw_entries_draw_id_draws')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_draw_entries_member_id_members')),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_draw_entries_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draw_entries')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_draw_entries_transaction_id'))
    )
    with op.batch_alter_table('draw_entries', schema=None) as batch_op:
        batch_op.create_index('ix_draw_entries_draw_member', ['draw_id', 'member_id'], unique=False)
        batch_op.create_index('ix_draw_entries_member', ['member_id', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('draw_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_draw_entries_member')
        batch_op.drop_index('ix_draw_entries_draw_member')

    op.drop_table('draw_entries')
    with op.batch_alter_table('draw_entrants', schema=None) as batch_op:
        batch_op.drop_index('ix_draw_entrants_member')

    op.drop_table('draw_entrants')
    op.drop_table('draw_partners')
    with op.batch_alter_table('draws', schema=None) as batch_op:
        batch_op.drop_index('ix_draws_open_closes_at', postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    op.drop_table('draws')
