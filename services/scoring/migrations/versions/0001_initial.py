"""Scoring's first schema: unit copy, contributions, aggregates and the bus tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from shared.bus.tables import create_bus_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_bus_tables(op)
    op.create_table(
        "units",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("parent_code", sa.String(64), nullable=True),
    )
    op.create_table(
        "rating_contributions",
        sa.Column("rating_id", sa.String(36), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("dossier_code", sa.String(64), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("satisfied", sa.Boolean, nullable=False),
    )
    op.create_table(
        "dossier_contributions",
        sa.Column("dossier_code", sa.String(64), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_table(
        "aggregates",
        sa.Column("profile", sa.String(32), primary_key=True),
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("ratings", sa.Integer, nullable=False),
        sa.Column("satisfied", sa.Integer, nullable=False),
        sa.Column("dossiers", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("band", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_aggregates_ranking", "aggregates", ["profile", "period", "score"])


def downgrade() -> None:
    for table in ("aggregates", "dossier_contributions", "rating_contributions", "units", "processed_events", "consumer_offsets", "outbox"):
        op.drop_table(table)
