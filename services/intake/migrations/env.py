"""Alembic environment of the intake service."""

from shared.migrations_env import run_migrations

run_migrations()
