"""Issue 13, points 5, 9 and 10: the index of lots not yet told of in a `points.expiring`
notice; the fraud events (velocity limits refused), seen only by the operator and the system
(row-level security); and refresh-token families, so that a refresh token used twice revokes
every token descended from the same authorization.

Revision ID: 20261129_notices
Revises: 20261128_refusals
Create Date: 2026-11-29 09:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261129_notices'
down_revision = '20261129_privacy'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index(
            'ix_lots_unnoticed',
            ['expires_at'],
            unique=False,
            sqlite_where=sa.text('remaining > 0 AND expiring_notice_at IS NULL'),
            postgresql_where=sa.text('remaining > 0 AND expiring_notice_at IS NULL'),
        )
    op.create_table('fraud_events',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('member_id', BIG_ID, nullable=True),
    sa.Column('merchant_id', BIG_ID, nullable=True),
    sa.Column('details', JSON, nullable=False),
    sa.Column('at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('member_velocity', 'merchant_velocity')", name=op.f('ck_fraud_events_kind')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_fraud_events_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_fraud_events_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fraud_events'))
    )
    with op.batch_alter_table('fraud_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fraud_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_fraud_events_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_fraud_events_merchant', ['merchant_id', 'id'], unique=False)
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('rotated_at', coalition.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_oauth_tokens_family'), ['family'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE fraud_events ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE fraud_events FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant ON fraud_events"
            " USING (coalition_privileged()) WITH CHECK (coalition_privileged())"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP POLICY tenant ON fraud_events")
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_tokens_family'))
        batch_op.drop_column('rotated_at')
        batch_op.drop_column('family')
    with op.batch_alter_table('fraud_events', schema=None) as batch_op:
        batch_op.drop_index('ix_fraud_events_merchant')
        batch_op.drop_index(batch_op.f('ix_fraud_events_member_id'))
        batch_op.drop_index(batch_op.f('ix_fraud_events_at'))
    op.drop_table('fraud_events')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_unnoticed', sqlite_where=sa.text('remaining > 0 AND expiring_notice_at IS NULL'), postgresql_where=sa.text('remaining > 0 AND expiring_notice_at IS NULL'))
