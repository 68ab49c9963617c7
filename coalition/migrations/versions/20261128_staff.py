"""The operator's console: staff accounts (role, scrypt password hash, TOTP second factor) and
the audit log of every staff action and operator API change. On PostgreSQL only the operator's
and the system's tenants see either table (row-level security, tenancy.py).

Revision ID: 20261128_staff
Revises: 20261128_refunds_by_day
Create Date: 2026-11-28 14:30:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261128_staff'
down_revision = '20261128_refunds_by_day'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
PRIVILEGED_TABLES = ('staff', 'audit_events')


def upgrade():
    op.create_table('staff',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('totp_step_used', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default='false', nullable=False),
    sa.CheckConstraint("role IN ('admin', 'finance', 'support')", name=op.f('ck_staff_role')),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_staff_email_lower_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_email'))
    )
    op.create_table('audit_events',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=80), nullable=False),
    sa.Column('actor_label', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('target_type', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.String(length=80), nullable=False),
    sa.Column('before', JSON, nullable=True),
    sa.Column('after', JSON, nullable=True),
    sa.CheckConstraint("actor_kind IN ('staff', 'operator_client')", name=op.f('ck_audit_events_actor_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index('ix_audit_events_target', ['target_type', 'target_id'], unique=False)
        batch_op.create_index('ix_audit_events_actor', ['actor_kind', 'actor_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        for name in PRIVILEGED_TABLES:
            op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant ON {name}"
                " USING (coalition_privileged()) WITH CHECK (coalition_privileged())"
            )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for name in PRIVILEGED_TABLES:
            op.execute(f"DROP POLICY tenant ON {name}")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_actor')
        batch_op.drop_index('ix_audit_events_target')
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
    op.drop_table('audit_events')
    op.drop_table('staff')
