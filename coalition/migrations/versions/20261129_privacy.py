"""Consent and privacy (SPEC 2): the append-only consent history `member_consents`, and
`members.erased_at`, when a member erased itself.

On PostgreSQL the consent history is a tenant table (row-level security, tenancy.py): a member
sees and writes its own rows (its site's tenant, or a member-delegated token's), a merchant reads
the rows of members who earned points at its shops (its audience), the operator and the system
every row.

Revision ID: 20261129_privacy
Revises: 20261128_refusals
Create Date: 2026-11-29 09:00:00

"""
import sqlalchemy as sa
from alembic import op

import coalition.database

# revision identifiers, used by Alembic.
revision = '20261129_privacy'
down_revision = '20261129_premium'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OWN = (
    "member_id = (SELECT a.member_id FROM accounts a WHERE a.id = coalition_member_account_id())"
)
SHOPPED_HERE = (
    "EXISTS (SELECT 1 FROM accounts a JOIN transactions t ON t.member_account_id = a.id"
    " WHERE a.member_id = member_consents.member_id AND t.type = 'earn'"
    " AND t.merchant_id = coalition_merchant_id())"
)


def upgrade():
    op.create_table('member_consents',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('member_id', BIG_ID, nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('text_version', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', coalition.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(source = 'api') = (client_id IS NOT NULL)", name=op.f('ck_member_consents_api_names_client')),
    sa.CheckConstraint("purpose IN ('email', 'sms', 'post', 'sharing')", name=op.f('ck_member_consents_purpose')),
    sa.CheckConstraint("source IN ('me', 'api')", name=op.f('ck_member_consents_source')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_consents_member_id_members'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_consents'))
    )
    with op.batch_alter_table('member_consents', schema=None) as batch_op:
        batch_op.create_index('ix_member_consents_latest', ['member_id', 'purpose', 'id'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', coalition.database.UTCDateTime(timezone=True), nullable=True))

    if op.get_bind().dialect.name == 'postgresql':
        using = f"coalition_privileged() OR {OWN} OR {SHOPPED_HERE}"
        check = f"coalition_privileged() OR {OWN}"
        op.execute("ALTER TABLE member_consents ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE member_consents FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant ON member_consents USING ({using}) WITH CHECK ({check})")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP POLICY tenant ON member_consents")
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
    with op.batch_alter_table('member_consents', schema=None) as batch_op:
        batch_op.drop_index('ix_member_consents_latest')
    op.drop_table('member_consents')
