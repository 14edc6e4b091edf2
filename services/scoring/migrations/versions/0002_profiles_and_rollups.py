"""Scoring profiles, roll-ups and corrections: contributions with counters, counters per unit and officer,
assessments, figures per profile, the SSE feed. Counters are kept per month; longer periods are
summed from their months.

The walking skeleton's contribution rows lacked the facts the profiles need (attitude, criteria,
lateness, supplements), so they are dropped and the consumer's stored offsets cleared: on its next start
scoring replays its topics from offset zero and rebuilds every contribution. Figures keep their versions,
so the versions carried by scores.v1 still only go up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from services.scoring.domain.counters import COUNTERS, DOSSIER_COUNTERS, RATING_COUNTERS

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _counters(names: tuple[str, ...]) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in names]


def _counter_table(name: str, key: list[sa.Column]) -> None:
    op.create_table(
        name,
        *key,
        *_counters(COUNTERS),
        sa.Column("revision", BIGINT, nullable=False, server_default="0"),
        sa.Column("dirty", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(f"ix_{name}_dirty", name, ["dirty"], sqlite_where=sa.text("dirty"), postgresql_where=sa.text("dirty"))


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("valid_to", sa.String(32), nullable=True))
        batch.add_column(sa.Column("successor_code", sa.String(64), nullable=True))
    op.create_table(
        "unit_ancestors",
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("ancestor_code", sa.String(64), primary_key=True),
        sa.Column("depth", sa.Integer, nullable=False),
    )
    op.create_index("ix_unit_ancestors_ancestor", "unit_ancestors", ["ancestor_code"])
    op.create_table(
        "officers",
        sa.Column("officer_id", sa.String(64), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )

    op.drop_table("rating_contributions")
    op.drop_table("dossier_contributions")
    op.create_table(
        "rating_contributions",
        sa.Column("rating_id", sa.String(64), primary_key=True),
        sa.Column("dossier_code", sa.String(64), nullable=True),
        sa.Column("unit_code", sa.String(64), nullable=True),
        sa.Column("month", sa.String(7), nullable=True),
        sa.Column("officer_ids", sa.Text, nullable=False),
        sa.Column("arrived", sa.Boolean, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_by", sa.String(64), nullable=True),
        sa.Column("counted", sa.Boolean, nullable=False),
        *_counters(RATING_COUNTERS),
    )
    op.create_index("ix_rating_contributions_dossier", "rating_contributions", ["dossier_code"])
    op.create_table(
        "dossier_contributions",
        sa.Column("dossier_code", sa.String(64), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("officer_ids", sa.Text, nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("rated_dissatisfied", sa.Boolean, nullable=False),
        *_counters(DOSSIER_COUNTERS),
    )
    _counter_table("counters", [sa.Column("unit_code", sa.String(64), primary_key=True), sa.Column("month", sa.String(7), primary_key=True)])
    _counter_table(
        "officer_counters",
        [sa.Column("officer_id", sa.String(64), primary_key=True), sa.Column("month", sa.String(7), primary_key=True),
         sa.Column("unit_code", sa.String(64), nullable=False)],
    )
    op.create_table(
        "assessments",
        sa.Column("unit_code", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )

    with op.batch_alter_table("aggregates") as batch:
        batch.drop_column("satisfied")
        batch.add_column(sa.Column("max_score", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("provisional", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("ranked", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("sample_size", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("components", sa.JSON, nullable=True))
        batch.add_column(sa.Column("profile_version", sa.String(16), nullable=True))
        batch.add_column(sa.Column("definite_band", sa.String(32), nullable=True))
    op.create_table(
        "officer_aggregates",
        sa.Column("profile", sa.String(32), primary_key=True),
        sa.Column("officer_id", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("max_score", sa.Float, nullable=False),
        sa.Column("band", sa.String(32), nullable=False),
        sa.Column("sample_size", sa.Integer, nullable=False),
        sa.Column("ratings", sa.Integer, nullable=False),
        sa.Column("components", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "score_feed",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Replay from offset zero on the next start: the contributions above are rebuilt from the topics.
    op.execute("DELETE FROM consumer_offsets")
    op.execute("DELETE FROM processed_events")


def downgrade() -> None:
    raise NotImplementedError("scoring 0002 is not reversible: rebuild from the topics instead")
