"""Intake's tables: the unit registry and officers, dossier completions, pseudonymised ratings, assessments,
API keys, idempotency (revisions 0001 and 0002 of migrations/)."""

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
    # Decree 61/2018 per-dossier inputs, when the sender gives them.
    sa.Column("applicant_contacts", sa.Integer, nullable=True),
    sa.Column("agencies_contacted", sa.Integer, nullable=True),
    sa.Column("steps", sa.JSON, nullable=True),
    sa.Column("complaint", sa.String(16), nullable=False, server_default="none"),
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
    sa.Column("unit_code", sa.String(64), nullable=True, index=True),  # known once the dossier is
    sa.Column("supersedes", sa.String(36), nullable=True),  # a correction names the rating it replaces
    sa.Column("superseded_by", sa.String(36), nullable=True),
    sa.Column("flags", sa.JSON, nullable=True),  # [{"rule", "detail"}] of a held-back rating
    sa.Column("verdict", sa.String(16), nullable=True),  # from workflow's rating.verified
    sa.Column("verified_at", UtcDateTime, nullable=True),
    sa.Index("ix_ratings_dossier_code", "dossier_code"),
    sa.Index("ix_ratings_device_submitted", "device_id", "submitted_at"),
    sa.Index("ix_ratings_status_created", "status", "created_at"),
)

# One counted rating per dossier and channel (the contract's 409 rule): the first rating holds the slot,
# its corrections do not need one.
rating_slots = sa.Table(
    "rating_slots",
    metadata,
    sa.Column("dossier_code", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("rating_id", sa.String(36), nullable=False),
)

# Which officers a respondent rated, for the repeat-respondent check (only ratings with a respondent).
rating_officers = sa.Table(
    "rating_officers",
    metadata,
    sa.Column("rating_id", sa.String(36), primary_key=True),
    sa.Column("officer_id", sa.String(64), primary_key=True),
    sa.Column("respondent_hash", sa.String(64), nullable=False),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Index("ix_rating_officers_respondent", "respondent_hash", "officer_id", "submitted_at"),
    sa.Index("ix_rating_officers_submitted", "submitted_at"),  # pruned after the repeat window (retention.py)
)

# A meeting point for a rating that waits for its dossier and the dossier arriving at the same moment:
# both write the dossier's row here before reading the other's table, so on PostgreSQL the later one
# waits for the earlier one's commit and then sees it (no rating is left pending beside its dossier).
held_dossiers = sa.Table(
    "held_dossiers",
    metadata,
    sa.Column("dossier_code", sa.String(64), primary_key=True),
    sa.Column("touched_at", UtcDateTime, nullable=False),
)


officers = sa.Table(
    "officers",
    metadata,
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("officer_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("phone_hash", sa.String(64), nullable=True, index=True),  # keyed HMAC, like respondents'
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

officer_devices = sa.Table(
    "officer_devices",
    metadata,
    sa.Column("device_id", sa.String(128), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("officer_id", sa.String(64), nullable=False),
    sa.Index("ix_officer_devices_officer", "unit_code", "officer_id"),
)

# Period inputs that do not come from citizens (HCMC 104/2024 D and E, QĐ 766 feedback counts, Decree 61).
assessments = sa.Table(
    "assessments",
    metadata,
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("feedback_handling", sa.Float, nullable=True),
    sa.Column("public_listing", sa.Boolean, nullable=True),
    sa.Column("feedback_received", sa.Integer, nullable=True),
    sa.Column("feedback_answered_on_time", sa.Integer, nullable=True),
    sa.Column("feedback_dissatisfied_or_overdue", sa.Integer, nullable=True),
    sa.Column("decree61", sa.JSON, nullable=True),
    sa.Column("source", sa.String(255), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
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
    sa.Index("ix_idempotency_keys_created", "created_at"),  # pruned after HAILONG_INTAKE_IDEMPOTENCY_RETENTION_HOURS
)
