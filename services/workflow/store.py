"""Workflow's tables and the queries the API and the duties share: tickets, their history, verification
tasks, reporting obligations, notifications, and workflow's own copy of the unit registry."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shared.bus.tables import define_bus_tables
from shared.db import UtcDateTime

metadata = sa.MetaData()
bus = define_bus_tables(metadata)
_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

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
    sa.Column("breached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("breached_at", UtcDateTime, nullable=True),
    sa.Column("escalated_to", sa.String(32), nullable=True),
    sa.Column("reminded_due_at", UtcDateTime, nullable=True),  # the deadline a reminder was sent for
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("measures", sa.Text, nullable=True),
    sa.Column("status_before_dispute", sa.String(32), nullable=True),
    sa.Column("restricted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("officer_id", sa.String(64), nullable=True),
    sa.Column("subject_ref", sa.String(128), nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", UtcDateTime, nullable=True),
    sa.Index("ix_tickets_open", "unit_code", "category", "period", "status"),
    sa.Index("ix_tickets_deadline", "status", "due_at"),
)

# A rating attaches to one ticket per category, once: redelivery cannot attach it twice.
ticket_ratings = sa.Table(
    "ticket_ratings",
    metadata,
    sa.Column("rating_id", sa.String(36), primary_key=True),
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("ticket_id", sa.String(36), nullable=False, index=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("invalidated", sa.Boolean, nullable=False, server_default=sa.false()),  # not genuine, or superseded
)

# Append-only: the migration installs triggers that refuse UPDATE and DELETE on both databases.
ticket_history = sa.Table(
    "ticket_history",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(36), nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(32), nullable=True),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)

units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("parent_code", sa.String(64), nullable=True, index=True),
    sa.Column("successor_code", sa.String(64), nullable=True),
)

officers = sa.Table(
    "officers",
    metadata,
    sa.Column("officer_id", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

# Who is told: the unit head's address (personal data: kept here, never put on an event).
unit_contacts = sa.Table(
    "unit_contacts",
    metadata,
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("head_email", sa.String(320), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

verification_tasks = sa.Table(
    "verification_tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("rating_id", sa.String(36), nullable=False, unique=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("dossier_code", sa.String(64), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # sample | flagged
    sa.Column("status", sa.String(16), nullable=False),  # pending | done
    sa.Column("verdict", sa.String(16), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("verified_by", sa.String(128), nullable=True),
    sa.Column("verified_at", UtcDateTime, nullable=True),
    sa.Column("rating", sa.JSON, nullable=True),  # a flagged rating, held until it is found genuine
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_verification_tasks_unit", "unit_code", "status"),
)

# The population phúc tra samples from: each unit's online ratings per month.
online_ratings = sa.Table(
    "online_ratings",
    metadata,
    sa.Column("rating_id", sa.String(36), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("dossier_code", sa.String(64), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Index("ix_online_ratings_period", "period", "unit_code"),
)

# A duty that must happen once per key (a period's sample, a year's review), whatever the replicas.
duty_runs = sa.Table(
    "duty_runs",
    metadata,
    sa.Column("duty", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("ran_at", UtcDateTime, nullable=False),
)

# The newest figure per unit (months, years) and officer (years): for reports and Art. 6 reviews.
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("subject_kind", sa.String(8), primary_key=True),  # unit | officer
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("unit_name", sa.String(255), nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("band", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
    sa.Column("ticket_id", sa.String(36), nullable=True, index=True),
    sa.Column("kind", sa.String(32), nullable=False),  # opened | due_soon | breached | escalated
    sa.Column("channel", sa.String(16), nullable=False),  # email | webhook
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_notifications_due", "status", "next_attempt_at"),
)

obligations = sa.Table(
    "obligations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(64), nullable=False),  # a unit code, or "*" for the province
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("submitted_at", UtcDateTime, nullable=True),
    sa.Column("submitted_by", sa.String(128), nullable=True),
    sa.Column("report", sa.LargeBinary, nullable=True),  # the XLSX as submitted
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("kind", "scope", "period", name="uq_obligations_kind_scope_period"),
)

# Writes with an Idempotency-Key: the same key and body answer as the first time; another body is 409.
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

MAX_UNIT_DEPTH = 12


def subtree(scope: str) -> sa.CTE:
    """The unit codes at or below `scope` in workflow's copy of the registry (recursive, bounded depth)."""
    tree = sa.select(sa.literal(scope, sa.String).label("code"), sa.literal(0).label("depth")).cte("subtree", recursive=True)
    children = sa.select(units.c.code, (tree.c.depth + 1).label("depth")).where(
        units.c.parent_code == tree.c.code, tree.c.depth < MAX_UNIT_DEPTH
    )
    return tree.union_all(children)


def ancestors_query(unit_code: str) -> sa.CTE:
    """`unit_code` and every unit above it, nearest first."""
    chain = sa.select(sa.literal(unit_code, sa.String).label("code"), sa.literal(0).label("depth")).cte("chain", recursive=True)
    parent = sa.select(units.c.parent_code.label("code"), (chain.c.depth + 1).label("depth")).where(
        units.c.code == chain.c.code, units.c.parent_code.is_not(None), chain.c.depth < MAX_UNIT_DEPTH
    )
    return chain.union_all(parent)


def ticket_public_fields(row: Any) -> dict[str, Any]:
    """What tickets.v1 may say of a ticket: no officer, no note, no comment (publisher shows it openly)."""
    return {
        "ticket_id": row.id, "unit_code": row.unit_code, "category": row.category, "source": row.source,
        "severity": row.severity, "status": row.status, "period": row.period, "opened_at": row.opened_at,
        "due_at": row.due_at, "breached": bool(row.breached), "resolved_at": row.resolved_at,
        "closed_at": row.closed_at, "measures": row.measures, "escalated_to": row.escalated_to,
    }
