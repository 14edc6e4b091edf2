"""Alembic environment of the publisher service."""

from shared.migrations_env import run_migrations

run_migrations()
