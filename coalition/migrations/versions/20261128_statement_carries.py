"""A failed payout is carried into the next statement made after the failure, whatever its month,
and several may be carried at once: the link moves from the carrying statement
(`carried_from_id`, one at most) to the carried one (`carried_into_id`, set once).

Revision ID: 20261128_statement_carries
Revises: 20261122_settlement
Create Date: 2026-11-28 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '20261128_statement_carries'
down_revision = '20261122_settlement'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _as_system():
    # Statements have row-level security (FORCE, so the owner too) on PostgreSQL.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("SELECT set_config('coalition.tenant', 'system', true)")


def upgrade():
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('carried_into_id', ID, nullable=True))
        batch_op.create_index(batch_op.f('ix_statements_carried_into_id'), ['carried_into_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_statements_carried_into_id_statements'), 'statements', ['carried_into_id'], ['id']
        )
    _as_system()
    op.execute(
        "UPDATE statements SET carried_into_id = "
        "(SELECT later.id FROM statements later WHERE later.carried_from_id = statements.id) "
        "WHERE id IN (SELECT carried_from_id FROM statements WHERE carried_from_id IS NOT NULL)"
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_statements_carried_from_id_statements'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_statements_carried_from_id'), type_='unique')
        batch_op.drop_column('carried_from_id')


def downgrade():
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('carried_from_id', ID, nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_statements_carried_from_id'), ['carried_from_id'])
        batch_op.create_foreign_key(
            batch_op.f('fk_statements_carried_from_id_statements'), 'statements', ['carried_from_id'], ['id']
        )
    _as_system()
    # One carried statement per carrying one survives the way back (the latest month's).
    op.execute(
        "UPDATE statements SET carried_from_id = "
        "(SELECT max(earlier.id) FROM statements earlier WHERE earlier.carried_into_id = statements.id)"
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_statements_carried_into_id_statements'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_statements_carried_into_id'))
        batch_op.drop_column('carried_into_id')
