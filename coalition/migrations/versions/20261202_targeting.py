"""Targeting (issue 16): the attributes a member chose to give (`member_attributes`), the
`profiling` consent purpose that allows using them, and segments with their evaluated members.
On PostgreSQL, row-level security: a member's attributes are its own and the operator's (a
merchant learns of them only through a segment's count or a campaign); a segment and its members
are its merchant's, and the operator's.

Revision ID: 20261202_targeting
Revises: 20261201_rewards_settle
Create Date: 2026-12-02 00:00:00

"""
from alembic import op
import sqlalchemy as sa

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261202_targeting'
down_revision = '20261201_rewards_settle'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OWN = (
    "member_id = (SELECT a.member_id FROM accounts a WHERE a.id = coalition_member_account_id())"
)
MERCHANT_ROW = "coalition_privileged() OR merchant_id = coalition_merchant_id()"
SEGMENT_ROW = (
    "coalition_privileged() OR EXISTS (SELECT 1 FROM segments s WHERE s.id = segment_id"
    " AND s.merchant_id = coalition_merchant_id())"
)
OLD_PURPOSES = "purpose IN ('email', 'sms', 'post', 'sharing')"
NEW_PURPOSES = "purpose IN ('email', 'sms', 'post', 'sharing', 'profiling')"


def upgrade():
    op.create_table('member_attributes',
    sa.Column('member_id', BIG_ID, nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('household_size', sa.SmallInteger(), nullable=True),
    sa.Column('interests', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('updated_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('household_size BETWEEN 1 AND 20', name=op.f('ck_member_attributes_household_size')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_attributes_member_id_members'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_attributes'))
    )
    with op.batch_alter_table('member_attributes', schema=None) as batch_op:
        batch_op.create_index('ix_member_attributes_region', ['region'], unique=False)

    op.create_table('segments',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', BIG_ID, nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('member_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('evaluated_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_segments_merchant_id_merchants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('public_id', name=op.f('uq_segments_public_id'))
    )
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_merchant', ['merchant_id', 'id'], unique=False)

    op.create_table('segment_members',
    sa.Column('segment_id', BIG_ID, nullable=False),
    sa.Column('member_id', BIG_ID, nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_segment_members_member_id_members'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_members_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'member_id', name=op.f('pk_segment_members'))
    )
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.create_index('ix_segment_members_member', ['member_id', 'segment_id'], unique=False)

    with op.batch_alter_table('member_consents', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_member_consents_purpose'), type_='check')
        batch_op.create_check_constraint(op.f('ck_member_consents_purpose'), NEW_PURPOSES)

    if op.get_bind().dialect.name == 'postgresql':
        for name in ('member_attributes', 'segments', 'segment_members'):
            op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
        own = f"coalition_privileged() OR {OWN}"
        op.execute(f"CREATE POLICY tenant ON member_attributes USING ({own}) WITH CHECK ({own})")
        op.execute(f"CREATE POLICY tenant ON segments USING ({MERCHANT_ROW}) WITH CHECK ({MERCHANT_ROW})")
        op.execute(f"CREATE POLICY tenant ON segment_members USING ({SEGMENT_ROW}) WITH CHECK ({SEGMENT_ROW})")


def downgrade():
    op.execute("DELETE FROM member_consents WHERE purpose = 'profiling'")
    with op.batch_alter_table('member_consents', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_member_consents_purpose'), type_='check')
        batch_op.create_check_constraint(op.f('ck_member_consents_purpose'), OLD_PURPOSES)
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_members_member')
    op.drop_table('segment_members')
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index('ix_segments_merchant')
    op.drop_table('segments')
    with op.batch_alter_table('member_attributes', schema=None) as batch_op:
        batch_op.drop_index('ix_member_attributes_region')
    op.drop_table('member_attributes')
