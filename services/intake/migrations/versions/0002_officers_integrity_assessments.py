"""Officers and their devices, rating slots (one counted rating per dossier and channel, corrections beside
it), integrity flags and verdicts, the Decree 61 dossier inputs, and unit assessments.

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


def upgrade() -> None:
    op.create_table(
        "officers",
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("officer_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("phone_hash", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_officers_phone_hash", "officers", ["phone_hash"])
    op.create_table(
        "officer_devices",
        sa.Column("device_id", sa.String(128), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("officer_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_officer_devices_officer", "officer_devices", ["unit_code", "officer_id"])
    op.create_table(
        "rating_slots",
        sa.Column("dossier_code", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("rating_id", sa.String(36), nullable=False),
    )
    op.create_table(
        "rating_officers",
        sa.Column("rating_id", sa.String(36), primary_key=True),
        sa.Column("officer_id", sa.String(64), primary_key=True),
        sa.Column("respondent_hash", sa.String(64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rating_officers_respondent", "rating_officers", ["respondent_hash", "officer_id", "submitted_at"])
    op.create_table(
        "held_dossiers",
        sa.Column("dossier_code", sa.String(64), primary_key=True),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "assessments",
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("feedback_handling", sa.Float, nullable=True),
        sa.Column("public_listing", sa.Boolean, nullable=True),
        sa.Column("feedback_received", sa.Integer, nullable=True),
        sa.Column("feedback_answered_on_time", sa.Integer, nullable=True),
        sa.Column("feedback_dissatisfied_or_overdue", sa.Integer, nullable=True),
        sa.Column("decree61", sa.JSON, nullable=True),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The slot table now carries the one-rating-per-dossier-and-channel rule, so a correction (a new
    # rating of the same dossier and channel) can sit beside the rating it supersedes.
    op.execute(
        "INSERT INTO rating_slots (dossier_code, channel, rating_id) "
        "SELECT dossier_code, channel, rating_id FROM ratings"
    )
    with op.batch_alter_table("ratings") as batch:
        batch.drop_constraint("uq_ratings_dossier_channel", type_="unique")
        batch.add_column(sa.Column("unit_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("supersedes", sa.String(36), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(36), nullable=True))
        batch.add_column(sa.Column("flags", sa.JSON, nullable=True))
        batch.add_column(sa.Column("verdict", sa.String(16), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_ratings_dossier_code", "ratings", ["dossier_code"])
    op.create_index("ix_ratings_device_submitted", "ratings", ["device_id", "submitted_at"])
    op.create_index("ix_ratings_status_created", "ratings", ["status", "created_at"])
    op.create_index("ix_ratings_unit_code", "ratings", ["unit_code"])
    with op.batch_alter_table("dossiers") as batch:
        batch.add_column(sa.Column("applicant_contacts", sa.Integer, nullable=True))
        batch.add_column(sa.Column("agencies_contacted", sa.Integer, nullable=True))
        batch.add_column(sa.Column("steps", sa.JSON, nullable=True))
        batch.add_column(sa.Column("complaint", sa.String(16), nullable=False, server_default="none"))


def downgrade() -> None:
    with op.batch_alter_table("dossiers") as batch:
        for column in ("complaint", "steps", "agencies_contacted", "applicant_contacts"):
            batch.drop_column(column)
    for index in ("ix_ratings_unit_code", "ix_ratings_status_created", "ix_ratings_device_submitted", "ix_ratings_dossier_code"):
        op.drop_index(index, "ratings")
    with op.batch_alter_table("ratings") as batch:
        for column in ("verified_at", "verdict", "flags", "superseded_by", "supersedes", "unit_code"):
            batch.drop_column(column)
        batch.create_unique_constraint("uq_ratings_dossier_channel", ["dossier_code", "channel"])
    for table in ("assessments", "held_dossiers", "rating_officers", "rating_slots", "officer_devices", "officers"):
        op.drop_table(table)
