"""Indexes for pruning: remembered idempotent answers by age, officer ratings by submission time
(services/intake/retention.py deletes what has expired without scanning either table).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])
    op.create_index("ix_rating_officers_submitted", "rating_officers", ["submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_rating_officers_submitted", "rating_officers")
    op.drop_index("ix_idempotency_keys_created", "idempotency_keys")
