"""No input makes intake answer 5xx: schemathesis drives every operation of its OpenAPI document, with valid
and invalid data, against a real intake process, and each 4xx is problem+json."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from shared.auth import issue_jwt
from shared.topics import topic_specs
from tests.support.data import UNITS
from tests.support.infra import JWT_SECRET, Backend, ServiceProcess, service_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ADMIN = issue_jwt(JWT_SECRET, "admin", "admin")


@pytest.fixture(scope="module")
def intake_process(kafka_broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:  # type: ignore[no-untyped-def]
    prefix = f"f{uuid.uuid4().hex[:8]}."
    kafka_broker.create_topics_sync(topic_specs(prefix, 3))
    folder: Path = tmp_path_factory.mktemp("fuzz")
    env = service_env(Backend("sqlite", None, folder / "var"), kafka_broker.bootstrap, prefix,
                      HAILONG_INTAKE_RATE_LIMIT_DEFAULT="100000/minute", HAILONG_INTAKE_RATE_LIMIT_PUBLIC="100000/minute")
    service = ServiceProcess("intake", env, folder / "logs").start()
    try:
        service.wait_ready()  # the relay connects after /healthz answers; fuzz the service once it is whole
        for code, unit in UNITS:
            assert service.send("PUT", f"/v1/units/{code}", ADMIN, unit).status_code == 200
        yield service
    finally:
        service.stop()
    log = service.log_path.read_text(errors="replace")
    assert "unhandled error" not in log, log[-3000:]


def test_no_input_gets_a_server_error(intake_process: ServiceProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{intake_process.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14  # every route of intake's contract is in the document
    headers = {"Authorization": f"Bearer {ADMIN}"}
    answered: dict[int, int] = {}
    for operation, mode in [(op, mode) for op in operations for mode in GenerationMode]:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_without_server_error(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=intake_process.url, headers=headers, timeout=30)
            answered[response.status_code] = answered.get(response.status_code, 0) + 1
            # /readyz answers 503 by contract while a dependency is away (the relay reconnecting): an answer, not an error.
            contract_503 = response.status_code == 503 and operation.path == "/readyz"
            assert response.status_code < 500 or contract_503, \
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
            if 400 <= response.status_code < 500:
                content_type = response.headers.get("content-type", [""])
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), response.text[:300]

        try:
            answers_without_server_error()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # e.g. /healthz: nothing about it can be invalid
    print("intake answers to generated requests by status:", dict(sorted(answered.items())))
    assert sum(answered.values()) >= 100 and any(400 <= status < 500 for status in answered)
