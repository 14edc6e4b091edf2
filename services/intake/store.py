"""Intake's tables: the unit registry, dossier completions, pseudonymised ratings, API keys, idempotency."""

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
    sa.Column("parent_code", sa.String(64), nullable=True, index=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("valid_from", sa.String(10), nullable=True),
    sa.Column("valid_to", sa.String(10), nullable=True),
    sa.Column("successor_code", sa.String(64), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("dossier_code", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False, index=True),
    sa.Column("procedure_code", sa.String(64), nullable=False),
    sa.Column("procedure_name", sa.String(500), nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=False),
    sa.Column("supplement_requests", sa.Integer, nullable=False),
    sa.Column("officer_ids", sa.JSON, nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

ratings = sa.Table(
    "ratings",
    metadata,
    sa.Column("rating_id", sa.String(36), primary_key=True),
    sa.Column("dossier_code", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("device_id", sa.String(128), nullable=True),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Column("overall", sa.String(32), nullable=False),
    sa.Column("attitude", sa.String(16), nullable=True),
    sa.Column("criteria", sa.JSON, nullable=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("respondent_hash", sa.String(64), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("received_from", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # One counted rating per dossier and channel (the contract's 409 rule).
    sa.UniqueConstraint("dossier_code", "channel", name="uq_ratings_dossier_channel"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("unit_scope", sa.String(64), nullable=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
