"""Workflow's tables: tickets, the ratings attached to them, and their append-only history."""

from __future__ import annotations

import sqlalchemy as sa

from shared.bus.tables import define_bus_tables
from shared.db import UtcDateTime

metadata = sa.MetaData()
bus = define_bus_tables(metadata)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Index("ix_tickets_open", "unit_code", "category", "period", "status"),
)

# A rating attaches to one ticket per category, once: redelivery cannot attach it twice.
ticket_ratings = sa.Table(
    "ticket_ratings",
    metadata,
    sa.Column("rating_id", sa.String(36), primary_key=True),
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("ticket_id", sa.String(36), nullable=False, index=True),
    sa.Column("reasons", sa.JSON, nullable=False),
)

ticket_history = sa.Table(
    "ticket_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(36), nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(32), nullable=True),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)
