"""Publisher's tables: the newest score per unit and period, and the delivery log per target."""

from __future__ import annotations

import sqlalchemy as sa

from shared.bus.tables import define_bus_tables
from shared.db import UtcDateTime

metadata = sa.MetaData()
bus = define_bus_tables(metadata)

latest_scores = sa.Table(
    "latest_scores",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),
)

# One row per target, unit, period and profile: a newer version replaces a pending one (collapse).
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(32), nullable=False),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("delivered_version", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("target", "unit_code", "period", "profile", name="uq_deliveries_subject"),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
)
