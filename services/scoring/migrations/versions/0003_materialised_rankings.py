"""Rankings materialised per profile, period and scope: rendered once when figures change, read by lookup.

`ranking_sources` counts the changes to each (profile, period)'s figures (the score publisher bumps
`revision` in the transaction that writes them) and remembers which revision the stored rankings show;
`rankings` holds each rendered answer, gzip-compressed JSON.

Also: the score publisher takes dirty counter rows in key order; the partial index on `dirty` alone made
every pass walk the primary key past the rows already scored (quadratic in a backlog of dirty rows).
The new partial indexes are in key order and hold only dirty rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


# SQLite proves a partial index usable only if the query repeats its condition: the queries say dirty = 1 there.
DIRTY = {"sqlite_where": sa.text("dirty = 1"), "postgresql_where": sa.text("dirty")}
DIRTY_BEFORE = {"sqlite_where": sa.text("dirty"), "postgresql_where": sa.text("dirty")}


def upgrade() -> None:
    for table, key in (("counters", "unit_code"), ("officer_counters", "officer_id")):
        op.drop_index(f"ix_{table}_dirty", table_name=table)
        op.create_index(f"ix_{table}_dirty_key", table, [key, "month"], **DIRTY)
    op.create_table(
        "ranking_sources",
        sa.Column("profile", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("revision", BIGINT, nullable=False, server_default="0"),
        sa.Column("rendered_revision", BIGINT, nullable=False, server_default="0"),
        sa.Column("stale_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_ranking_sources_stale", "ranking_sources", ["stale_since"])
    op.create_table(
        "rankings",
        sa.Column("profile", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("scope", sa.String(40), primary_key=True),
        sa.Column("body_gzip", sa.LargeBinary, nullable=False),
        sa.Column("revision", BIGINT, nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Every period already scored gets its rankings rendered by the service's refresher after the upgrade.
    op.execute(
        "INSERT INTO ranking_sources (profile, period, revision, rendered_revision, stale_since) "
        "SELECT DISTINCT profile, period, 1, 0, CURRENT_TIMESTAMP FROM aggregates"
    )


def downgrade() -> None:
    op.drop_table("rankings")
    op.drop_index("ix_ranking_sources_stale", table_name="ranking_sources")
    op.drop_table("ranking_sources")
    for table, key in (("counters", "unit_code"), ("officer_counters", "officer_id")):
        op.drop_index(f"ix_{table}_dirty_key", table_name=table)
        op.create_index(f"ix_{table}_dirty", table, ["dirty"], **DIRTY_BEFORE)
