"""Earn rules as data (SPEC 2): each merchant's versions of its rules (`earn_rules`), its
members' stamp-card progress (`stamp_progress`), its monthly issuance cap and the counters that
hold it (`merchants.monthly_issuance_cap`, `issuance_counters`); a purchase keeps the rules
version it was earned under, its store and its items.

A merchant without a version earns at `merchants.base_rate` alone (its implicit version 1), so
no row is written for existing merchants here.

Revision ID: 20261129_rules
Revises: 20261128_refusals
Create Date: 2026-11-29 00:00:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import coalition.database

# revision identifiers, used by Alembic.
revision = "20261129_rules"
down_revision = "20261128_refusals"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MERCHANT_ROW = "coalition_privileged() OR merchant_id = coalition_merchant_id()"
TENANT_TABLES = ("earn_rules", "stamp_progress", "issuance_counters")


def upgrade():
    op.create_table(
        "earn_rules",
        sa.Column("id", BIG, nullable=False),
        sa.Column("merchant_id", BIG, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", coalition.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("actor_id", sa.String(length=80), nullable=True),
        sa.Column("created_at", coalition.database.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_earn_rules_version_positive")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_earn_rules_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_earn_rules")),
        sa.UniqueConstraint("merchant_id", "version", name="uq_earn_rules_version"),
    )
    op.create_index(
        "ix_earn_rules_in_force", "earn_rules", ["merchant_id", "effective_from"], unique=False
    )
    op.create_table(
        "stamp_progress",
        sa.Column("id", BIG, nullable=False),
        sa.Column("member_account_id", BIG, nullable=False),
        sa.Column("merchant_id", BIG, nullable=False),
        sa.Column("card", sa.String(length=100), nullable=False),
        sa.Column("stamps", BIG, nullable=False),
        sa.Column("updated_at", coalition.database.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("stamps >= 0", name=op.f("ck_stamp_progress_stamps")),
        sa.ForeignKeyConstraint(
            ["member_account_id"],
            ["accounts.id"],
            name=op.f("fk_stamp_progress_member_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_stamp_progress_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stamp_progress")),
        sa.UniqueConstraint("member_account_id", "merchant_id", "card", name="uq_stamp_progress"),
    )
    op.create_table(
        "issuance_counters",
        sa.Column("id", BIG, nullable=False),
        sa.Column("merchant_id", BIG, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("issued", BIG, nullable=False),
        sa.CheckConstraint("issued >= 0", name=op.f("ck_issuance_counters_issued")),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_issuance_counters_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuance_counters")),
        sa.UniqueConstraint("merchant_id", "month", name="uq_issuance_counters_month"),
    )
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("monthly_issuance_cap", BIG, nullable=True))
        batch_op.create_check_constraint("monthly_issuance_cap", "monthly_issuance_cap >= 0")
    # Plain ADD COLUMNs: the transactions table refuses UPDATE and DELETE (its triggers), which
    # a batch rebuild on SQLite would not keep.
    op.add_column("transactions", sa.Column("rules_version", sa.Integer(), nullable=True))
    op.add_column("transactions", sa.Column("store", sa.String(length=100), nullable=True))
    op.add_column("transactions", sa.Column("items", JSON, nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        for name in TENANT_TABLES:
            op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant ON {name} USING ({MERCHANT_ROW}) WITH CHECK ({MERCHANT_ROW})"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in TENANT_TABLES:
            op.execute(f"DROP POLICY tenant ON {name}")
    op.drop_column("transactions", "items")
    op.drop_column("transactions", "store")
    op.drop_column("transactions", "rules_version")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_merchants_monthly_issuance_cap"), type_="check")
        batch_op.drop_column("monthly_issuance_cap")
    op.drop_table("issuance_counters")
    op.drop_table("stamp_progress")
    op.drop_index("ix_earn_rules_in_force", table_name="earn_rules")
    op.drop_table("earn_rules")
