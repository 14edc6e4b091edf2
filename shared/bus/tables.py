"""Tables every service carries for the bus: its outbox, its consumed offsets, the event ids it applied."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from shared.db import UtcDateTime


@dataclass(frozen=True)
class BusTables:
    outbox: sa.Table
    consumer_offsets: sa.Table
    processed_events: sa.Table


def define_bus_tables(metadata: sa.MetaData) -> BusTables:
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        sa.Index("ix_outbox_unsent", "sent_at", "id"),
    )
    consumer_offsets = sa.Table(
        "consumer_offsets",
        metadata,
        sa.Column("group_id", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    processed_events = sa.Table(
        "processed_events",
        metadata,
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", UtcDateTime, nullable=False),
    )
    return BusTables(outbox, consumer_offsets, processed_events)


def create_bus_tables(op) -> None:  # type: ignore[no-untyped-def]
    """Alembic step shared by every service's first migration."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "id"])
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
