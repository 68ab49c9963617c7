"""The operator may refuse a merchant's application, with a reason the merchant reads: status
`refused`, `refused_at` and `refusal_reason`.

Revision ID: 20261128_refusals
Revises: 20261128_staff
Create Date: 2026-11-28 14:40:00

"""
import sqlalchemy as sa
from alembic import op

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261128_refusals'
down_revision = '20261128_staff'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused_at', coalition.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('refusal_reason', sa.String(length=1000), nullable=True))
        batch_op.drop_constraint(op.f('ck_merchants_status'), type_='check')
        batch_op.create_check_constraint(
            'status', "status IN ('pending', 'active', 'suspended', 'refused')"
        )


def downgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_merchants_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('pending', 'active', 'suspended')")
        batch_op.drop_column('refusal_reason')
        batch_op.drop_column('refused_at')
