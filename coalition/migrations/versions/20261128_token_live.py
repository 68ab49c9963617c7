"""A bearer token checked from a worker's cache is confirmed live by the same statement that sets
the request's tenant (`coalition.tenancy`): `coalition_token_live(token)` reads the token and its
client as the system tenant, whatever tenant the statement is setting.

Revision ID: 20261128_token_live
Revises: 20261128_statement_carries
Create Date: 2026-11-28 11:30:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '20261128_token_live'
down_revision = '20261128_statement_carries'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE FUNCTION coalition_token_live(token bigint)
        RETURNS boolean LANGUAGE sql STABLE SET coalition.tenant = 'system' AS $$
            SELECT EXISTS (
                SELECT 1 FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id
                WHERE t.id = token AND t.revoked_at IS NULL AND c.revoked_at IS NULL
                  AND NOT c.disabled
            )
        $$
    """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION coalition_token_live(bigint)")
