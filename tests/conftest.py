"""Fixtures for the real infrastructure: one Kafka broker and one PostgreSQL server per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import Backend


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator["KafkaBroker"]:  # noqa: F821
    from deploy.kafka.runner import KafkaBroker, free_port

    broker = KafkaBroker(free_port(), tmp_path_factory.mktemp("kafka"), num_partitions=3, die_with_parent=True)
    broker.start_and_wait(timeout=120)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator["ThrowawayPostgres"]:  # noqa: F821
    from deploy.postgres.runner import ThrowawayPostgres

    # Its own temporary folder: the server runs as the postgres user, who cannot enter pytest's root-only tmp.
    server = ThrowawayPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def topic_prefix(kafka_broker) -> str:  # type: ignore[no-untyped-def]
    """A prefix of the test's own, with every topic of the contract created under it."""
    from shared.topics import topic_specs

    prefix = f"t{uuid.uuid4().hex[:8]}."
    kafka_broker.create_topics_sync(topic_specs(prefix, 3))
    return prefix


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The integration suite runs on both databases."""
    if request.param == "sqlite":
        return Backend("sqlite", None, tmp_path / "var")
    server = request.getfixturevalue("postgres_server")
    url = server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    return Backend("postgresql", url, tmp_path / "var")


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests configure services explicitly; a developer's HAILONG_* variables must not leak in.
    for name in list(os.environ):
        if name.startswith("HAILONG_"):
            monkeypatch.delenv(name)
