"""The kiosk simulator against real intake and scoring processes: kiosks post, retry, and the counts at the
kiosks, at intake, on the topic and at scoring agree exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.auth import issue_jwt
from tests.support.data import UNITS
from tests.support.infra import JWT_SECRET, Backend, ServiceProcess, cli, service_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_simulated_kiosks_counts_agree_at_intake_on_the_topic_and_at_scoring(kafka_broker, topic_prefix: str, tmp_path: Path) -> None:
    backend = Backend("sqlite", None, tmp_path / "var")
    env = service_env(backend, kafka_broker.bootstrap, topic_prefix)
    services = {name: ServiceProcess(name, env, tmp_path / "logs") for name in ("intake", "scoring")}
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        admin = issue_jwt(JWT_SECRET, "admin", "admin")
        for code, unit in UNITS:
            assert services["intake"].send("PUT", f"/v1/units/{code}", admin, unit).status_code == 200
        credentials = tmp_path / "credentials.json"
        credentials.write_text(json.dumps({
            "admin": admin, "portal": cli(env, "keys", "create", "portal"),
            "kiosk": {"key": cli(env, "keys", "create", "kiosk", "--unit", "79.SNV"), "unit_code": "79.SNV"},
        }))
        report = cli(
            env, "simulate", "kiosk", "--rate", "8", "--duration", "3", "--credentials", str(credentials),
            "--intake-url", services["intake"].url, "--scoring-url", services["scoring"].url, "--quiet", "60",
        )
    finally:
        for service in services.values():
            service.stop()
    assert "counted ratings of this run — kiosks: 24, intake: 24, topic: 24, scoring: 24" in report, report
    assert "the counts agree" in report
