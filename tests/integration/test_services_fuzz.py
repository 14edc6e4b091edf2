"""No input makes scoring, workflow or the publisher answer 5xx: schemathesis — driven by the chaos run's own
driver (chaos/fuzz.py) — sends every operation of each OpenAPI document valid and invalid data, against a
real process on PostgreSQL (which, unlike SQLite, refuses NUL characters and out-of-range integers), and every
4xx must be problem+json. Intake has its own, longer test (test_intake_fuzz.py); `make chaos` runs all four
with fresh seeds and 1,000+ cases each. Here the seed is fixed, so a failure is the same failure every time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from chaos.fuzz import fuzz_service
from shared.auth import issue_jwt
from shared.topics import topic_specs
from tests.support.infra import JWT_SECRET, MAP_SECRET, MAP_TOKEN, Backend, FakeInstitutionMap, ServiceProcess, service_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ADMIN = issue_jwt(JWT_SECRET, "admin", "admin")
CASES = 300
SEED = 20261125


@pytest.fixture(params=["scoring", "workflow", "publisher"])
def service(request: pytest.FixtureRequest, kafka_broker, postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:  # type: ignore[no-untyped-def]
    name = request.param
    prefix = f"z{uuid.uuid4().hex[:8]}."
    kafka_broker.create_topics_sync(topic_specs(prefix, 3))
    folder = tmp_path_factory.mktemp(f"fuzz-{name}")
    backend = Backend("postgresql", postgres_server.create_database(f"z_{uuid.uuid4().hex[:12]}"), folder / "var")
    institution_map = FakeInstitutionMap()
    unlimited = "1000000/minute"
    env = service_env(backend, kafka_broker.bootstrap, prefix, HAILONG_SCORING_PUBLIC_RATE_LIMIT=unlimited,
                      HAILONG_PUBLIC_RATE_LIMIT=unlimited, HAILONG_MAP_URL=institution_map.url, HAILONG_MAP_TOKEN=MAP_TOKEN,
                      HAILONG_MAP_SIGNING_SECRET=MAP_SECRET)
    process = ServiceProcess(name, env, folder / "logs").start()
    process.wait_ready()  # its consumer has joined: otherwise /readyz rightly answers 503 "kafka unreachable"
    try:
        yield process
    finally:
        process.stop()
        institution_map.close()
    log = process.log_path.read_text(errors="replace")
    assert "unhandled error" not in log, log[-3000:]


def test_no_input_gets_a_server_error(service: ServiceProcess) -> None:
    result = fuzz_service(service.name, service.url, ADMIN, CASES, SEED, print)
    assert result.findings == [], result.findings
    assert result.operations >= 6  # every route of the service's document was driven
    assert result.cases >= CASES and any(400 <= status < 500 for status in result.by_status), result.by_status
