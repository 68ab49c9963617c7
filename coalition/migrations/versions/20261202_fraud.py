"""Issue 16, point 5: the nightly fraud report's alerts, seen only by the operator and the system
(row-level security, as the fraud events), and two more kinds of fraud event: a wrong redemption
code, and the wrong code that locked a member's redemption.

Revision ID: 20261202_fraud
Revises: 20261202_campaigns
Create Date: 2026-12-02 00:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261202_fraud'
down_revision = '20261202_campaigns'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
OLD_EVENT_KINDS = "kind IN ('member_velocity', 'merchant_velocity')"
NEW_EVENT_KINDS = (
    "kind IN ('member_velocity', 'merchant_velocity', 'wrong_code', 'code_lockout')"
)
ALERT_KINDS = (
    "kind IN ('redemption_excess', 'self_dealing', 'enrol_drain', 'unusual_transaction',"
    " 'earn_spend_cluster', 'wrong_codes', 'velocity')"
)


def upgrade():
    with op.batch_alter_table('fraud_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_fraud_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', NEW_EVENT_KINDS)
    op.create_table('fraud_alerts',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('merchant_id', BIG_ID, nullable=True),
    sa.Column('member_id', BIG_ID, nullable=True),
    sa.Column('evidence', JSON, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', coalition.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint(ALERT_KINDS, name=op.f('ck_fraud_alerts_kind')),
    sa.CheckConstraint("state IN ('open', 'dismissed', 'confirmed')", name=op.f('ck_fraud_alerts_state')),
    sa.CheckConstraint("state <> 'dismissed' OR reason IS NOT NULL", name=op.f('ck_fraud_alerts_dismissed_reason')),
    sa.CheckConstraint("(state = 'open') = (decided_at IS NULL)", name=op.f('ck_fraud_alerts_decided')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_fraud_alerts_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_fraud_alerts_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fraud_alerts')),
    sa.UniqueConstraint('key', name=op.f('uq_fraud_alerts_key')),
    sa.UniqueConstraint('public_id', name=op.f('uq_fraud_alerts_public_id'))
    )
    with op.batch_alter_table('fraud_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_fraud_alerts_kind', ['kind', 'id'], unique=False)
        batch_op.create_index('ix_fraud_alerts_merchant', ['merchant_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fraud_alerts_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_fraud_alerts_state', ['state', 'id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE fraud_alerts ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE fraud_alerts FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant ON fraud_alerts"
            " USING (coalition_privileged()) WITH CHECK (coalition_privileged())"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP POLICY tenant ON fraud_alerts")
    with op.batch_alter_table('fraud_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_fraud_alerts_state')
        batch_op.drop_index(batch_op.f('ix_fraud_alerts_member_id'))
        batch_op.drop_index('ix_fraud_alerts_merchant')
        batch_op.drop_index('ix_fraud_alerts_kind')
    op.drop_table('fraud_alerts')
    op.execute("DELETE FROM fraud_events WHERE kind IN ('wrong_code', 'code_lockout')")
    with op.batch_alter_table('fraud_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_fraud_events_kind'), type_='check')
        batch_op.create_check_constraint('kind', OLD_EVENT_KINDS)
