"""Ticket lifecycle, phúc tra tasks, reporting obligations, notifications and the unit registry copy.

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

_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    for column in (
        sa.Column("breached", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("breached_at", TIMESTAMP, nullable=True),
        sa.Column("escalated_to", sa.String(32), nullable=True),
        sa.Column("reminded_due_at", TIMESTAMP, nullable=True),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.Column("measures", sa.Text, nullable=True),
        sa.Column("status_before_dispute", sa.String(32), nullable=True),
        sa.Column("restricted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("officer_id", sa.String(64), nullable=True),
        sa.Column("subject_ref", sa.String(128), nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
    ):
        op.add_column("tickets", column)
    op.create_index("ix_tickets_deadline", "tickets", ["status", "due_at"])
    op.add_column("ticket_ratings", sa.Column("invalidated", sa.Boolean, nullable=False, server_default=sa.false()))

    op.create_table(
        "units",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("parent_code", sa.String(64), nullable=True),
        sa.Column("successor_code", sa.String(64), nullable=True),
    )
    op.create_index("ix_units_parent_code", "units", ["parent_code"])
    op.create_table(
        "officers",
        sa.Column("officer_id", sa.String(64), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "unit_contacts",
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("head_email", sa.String(320), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "verification_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("rating_id", sa.String(36), nullable=False, unique=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("dossier_code", sa.String(64), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("verified_by", sa.String(128), nullable=True),
        sa.Column("verified_at", TIMESTAMP, nullable=True),
        sa.Column("rating", sa.JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_verification_tasks_unit", "verification_tasks", ["unit_code", "status"])
    op.create_table(
        "online_ratings",
        sa.Column("rating_id", sa.String(36), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("dossier_code", sa.String(64), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
    )
    op.create_index("ix_online_ratings_period", "online_ratings", ["period", "unit_code"])
    op.create_table(
        "duty_runs",
        sa.Column("duty", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("ran_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "scores",
        sa.Column("subject_kind", sa.String(8), primary_key=True),
        sa.Column("subject_id", sa.String(64), primary_key=True),
        sa.Column("profile", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("unit_name", sa.String(255), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("band", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
        sa.Column("ticket_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_notifications_ticket_id", "notifications", ["ticket_id"])
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_table(
        "obligations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=True),
        sa.Column("submitted_by", sa.String(128), nullable=True),
        sa.Column("report", sa.LargeBinary, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("kind", "scope", "period", name="uq_obligations_kind_scope_period"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    _make_history_append_only()


def _make_history_append_only() -> None:
    """Ticket history is evidence: the database itself refuses to change or delete a line of it."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ticket_history_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'ticket_history is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ticket_history_append_only BEFORE UPDATE OR DELETE ON ticket_history "
            "FOR EACH ROW EXECUTE FUNCTION ticket_history_is_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ticket_history_no_{verb.lower()} BEFORE {verb} ON ticket_history "
                "BEGIN SELECT RAISE(ABORT, 'ticket_history is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ticket_history_append_only ON ticket_history")
        op.execute("DROP FUNCTION ticket_history_is_append_only()")
    else:
        op.execute("DROP TRIGGER ticket_history_no_update")
        op.execute("DROP TRIGGER ticket_history_no_delete")
    for table in ("idempotency_keys", "obligations", "notifications", "scores", "duty_runs", "online_ratings", "verification_tasks",
                  "unit_contacts", "officers", "units"):
        op.drop_table(table)
    with op.batch_alter_table("ticket_ratings") as batch:
        batch.drop_column("invalidated")
    op.drop_index("ix_tickets_deadline", "tickets")
    with op.batch_alter_table("tickets") as batch:
        for column in ("updated_at", "version", "subject_ref", "officer_id", "restricted", "status_before_dispute",
                       "measures", "closed_at", "resolved_at", "reminded_due_at", "escalated_to", "breached_at", "breached"):
            batch.drop_column(column)
