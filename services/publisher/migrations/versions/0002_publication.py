"""Publication: unit and ticket projections, the changes feed, official snapshots, delivery claims and editions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

IMMUTABLE = ("snapshots", "snapshot_items")


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("parent_code", sa.String(64), nullable=True),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("coordinates_source", sa.String(32), nullable=True),
        sa.Column("valid_from", sa.String(32), nullable=True),
        sa.Column("valid_to", sa.String(32), nullable=True),
        sa.Column("successor_code", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("latest_scores") as batch:
        batch.add_column(sa.Column("band", sa.String(32), nullable=True))
        batch.add_column(sa.Column("ratings", sa.Integer, nullable=True))
        batch.add_column(sa.Column("provisional", sa.Boolean, nullable=True))
    _backfill_latest_scores()
    op.create_index("ix_latest_scores_period", "latest_scores", ["profile", "period", "score"])
    op.create_index("ix_latest_scores_unit", "latest_scores", ["unit_code", "profile"])

    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("measures", sa.Text, nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tickets_unit_code", "tickets", ["unit_code"])

    op.create_table(
        "changes",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("edition", sa.String(16), nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("edition", "profile", "unit_code", "period", "version", name="uq_changes_version"),
    )
    sequences = op.create_table(
        "sequences",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("next_value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(sequences, [{"name": "changes", "next_value": 1}])  # seeded: no first-writer race

    op.create_table(
        "snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("unit_count", sa.Integer, nullable=False),
        sa.UniqueConstraint("period", "profile", "version", name="uq_snapshots_version"),
    )
    op.create_table(
        "snapshot_items",
        sa.Column("snapshot_id", sa.BigInteger, primary_key=True),
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("level", sa.String(32), nullable=True),
        sa.Column("rank", sa.Integer, nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_snapshot_items_unit", "snapshot_items", ["unit_code"])
    _forbid_changes_to_snapshots()

    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("edition", sa.String(16), nullable=False, server_default="live"))
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("uq_deliveries_subject", type_="unique")
        batch.create_unique_constraint("uq_deliveries_subject", ["target", "unit_code", "period", "profile", "edition"])


def _backfill_latest_scores() -> None:
    table = sa.table(
        "latest_scores", sa.column("profile"), sa.column("unit_code"), sa.column("period"), sa.column("payload", sa.JSON),
        sa.column("band"), sa.column("ratings"), sa.column("provisional"),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(table)).all():
        payload = row.payload or {}
        conn.execute(
            table.update()
            .where(table.c.profile == row.profile, table.c.unit_code == row.unit_code, table.c.period == row.period)
            .values(band=payload.get("band"), ratings=payload.get("ratings"), provisional=bool(payload.get("provisional")))
        )


def _forbid_changes_to_snapshots() -> None:
    """An official snapshot is immutable: the database itself refuses UPDATE and DELETE."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION hailong_snapshot_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'official snapshots are immutable; publish a new version instead'; END $$"
        )
        for table in IMMUTABLE:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION hailong_snapshot_immutable()"
            )
        return
    for table in IMMUTABLE:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} BEGIN "
                "SELECT RAISE(ABORT, 'official snapshots are immutable; publish a new version instead'); END"
            )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_subject", type_="unique")
        batch.create_unique_constraint("uq_deliveries_subject", ["target", "unit_code", "period", "profile"])
        for column in ("delivered_at", "claimed_until", "claimed_by", "edition"):
            batch.drop_column(column)
    for table in ("snapshot_items", "snapshots", "sequences", "changes", "tickets", "units"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hailong_snapshot_immutable()")
    op.drop_index("ix_latest_scores_unit", "latest_scores")
    op.drop_index("ix_latest_scores_period", "latest_scores")
    with op.batch_alter_table("latest_scores") as batch:
        for column in ("provisional", "ratings", "band"):
            batch.drop_column(column)
