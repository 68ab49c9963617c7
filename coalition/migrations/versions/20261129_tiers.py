"""Tiers (issue 13): a member's qualifying spend, the purchases of the trailing 12 months less
their refunds at every merchant, read by a purchase at one merchant. Row-level security shows a
merchant only its own transactions, so `coalition_qualifying_spend(account, since, currency)`
sums them as the system, as `coalition_held_points` does for holds (`coalition.members.tiers`).

Revision ID: 20261129_tiers
Revises: 20261128_refusals
Create Date: 2026-11-29 00:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '20261129_tiers'
down_revision = '20261129_pending'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    # PL/pgSQL, not SQL: its statement's plan is kept for the session, where a SQL function
    # with a SET clause plans it again on every call (0.2 ms of the server's CPU a purchase
    # instead of 0.5: docs/benchmarks.md, issue 13).
    op.execute("""
        CREATE FUNCTION coalition_qualifying_spend(account bigint, since timestamptz, money text)
        RETURNS bigint LANGUAGE plpgsql STABLE SET coalition.tenant = 'system' AS $$
        BEGIN
            RETURN (SELECT coalesce(sum(amount), 0)::bigint FROM (
                SELECT amount_minor AS amount FROM transactions
                WHERE member_account_id = account AND type = 'earn' AND currency = money
                  AND created_at >= since
                UNION ALL
                SELECT -r.amount_minor FROM transactions r
                JOIN transactions o ON o.id = r.original_id
                WHERE r.member_account_id = account AND r.type = 'refund'
                  AND o.currency = money AND o.created_at >= since
            ) spent);
        END
        $$
    """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION coalition_qualifying_spend(bigint, timestamptz, text)")
