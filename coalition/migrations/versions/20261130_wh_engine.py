"""Webhooks' delivery engine: an index of each endpoint's pending deliveries by due time, so the
pump asks "has this endpoint anything due?" and a delivery job takes the oldest due first with
one index probe, whatever number of deliveries the endpoint has had.

Revision ID: 20261130_wh_engine
Revises: 20261130_webhooks
Create Date: 2026-11-30 00:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '20261130_wh_engine'
down_revision = '20261130_webhooks'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_endpoint_due', ['endpoint_id', 'next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))


def downgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_endpoint_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
