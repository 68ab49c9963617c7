"""Targeted campaigns (issue 16): `campaign_exposures`, the purchases at which a targeted campaign
reached its member or held it out in its control group. On PostgreSQL, row-level security: a
merchant's rows are its own, and the operator's.

Revision ID: 20261202_campaigns
Revises: 20261202_targeting
Create Date: 2026-12-02 00:00:01

"""
from alembic import op
import sqlalchemy as sa

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261202_campaigns'
down_revision = '20261202_targeting'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
MERCHANT_ROW = "coalition_privileged() OR merchant_id = coalition_merchant_id()"


def upgrade():
    op.create_table('campaign_exposures',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('merchant_id', BIG_ID, nullable=False),
    sa.Column('campaign', sa.String(length=200), nullable=False),
    sa.Column('member_id', BIG_ID, nullable=False),
    sa.Column('held_out', sa.Boolean(), nullable=False),
    sa.Column('occurred_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_campaign_exposures_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_campaign_exposures_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_exposures'))
    )
    with op.batch_alter_table('campaign_exposures', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_exposures_campaign', ['merchant_id', 'campaign', 'member_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE campaign_exposures ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE campaign_exposures FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant ON campaign_exposures USING ({MERCHANT_ROW}) WITH CHECK ({MERCHANT_ROW})")


def downgrade():
    with op.batch_alter_table('campaign_exposures', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_exposures_campaign')
    op.drop_table('campaign_exposures')
