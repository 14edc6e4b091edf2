"""Alembic environment of the scoring service."""

from shared.migrations_env import run_migrations

run_migrations()
