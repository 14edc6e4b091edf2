"""Scoring's tables: its copy of the unit registry, contributions per rating and dossier, aggregates."""

from __future__ import annotations

import sqlalchemy as sa

from shared.bus.tables import define_bus_tables
from shared.db import UtcDateTime

metadata = sa.MetaData()
bus = define_bus_tables(metadata)

units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("parent_code", sa.String(64), nullable=True),
)

# One row per counted rating: re-delivery or correction replaces it, so aggregates = sum of these.
rating_contributions = sa.Table(
    "rating_contributions",
    metadata,
    sa.Column("rating_id", sa.String(36), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("dossier_code", sa.String(64), nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=False),
    sa.Column("satisfied", sa.Boolean, nullable=False),
)

dossier_contributions = sa.Table(
    "dossier_contributions",
    metadata,
    sa.Column("dossier_code", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
)

aggregates = sa.Table(
    "aggregates",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("ratings", sa.Integer, nullable=False),
    sa.Column("satisfied", sa.Integer, nullable=False),
    sa.Column("dossiers", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("band", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_aggregates_ranking", "profile", "period", "score"),
)
