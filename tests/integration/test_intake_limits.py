"""Absurd sizes are refused before they are read: 413 problem+json, for declared and for streamed bodies."""

from __future__ import annotations

import pytest

from tests.support.data import dossier, rating
from tests.support.intake import IntakeClient, intake  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def test_bodies_over_the_cap_are_413_and_junk_paths_are_4xx(intake: IntakeClient) -> None:
    record = dossier()
    huge = rating(record["dossier_code"], comment="x" * 200_000)
    declared = intake.post("/v1/ratings", huge, intake.kiosk)
    assert declared.status_code == 413 and declared.headers["content-type"] == "application/problem+json"
    assert declared.json()["max_bytes"] == intake.settings.intake_max_body_bytes

    def stream():  # no Content-Length: counted while it is read
        yield b'{"dossier_code": "' + b"x" * 100_000

    streamed = intake.client.post("/v1/ratings", content=stream(), headers={
        "Authorization": f"Bearer {intake.kiosk}", "Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.headers["content-type"] == "application/problem+json"

    # A batch may be larger than one item, up to its own cap.
    batch = {"items": [rating(dossier()["dossier_code"], device_id=None, channel="portal", respondent=None) for _ in range(200)]}
    assert intake.post("/v1/ratings/batch", batch, intake.portal).status_code == 200

    for path in ("/v1/ratings/../../etc/passwd", "/v1/ratings/%00", "/v1/units/" + "9" * 300, "/v1/units/a%20b"):
        answer = intake.get(path, intake.admin)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert answer.headers["content-type"] == "application/problem+json", path
    future = intake.post("/v1/ratings", rating(record["dossier_code"], submitted_at="2099-01-01T00:00:00+07:00"), intake.kiosk)
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "body.submitted_at"
    ancient = intake.post("/v1/dossiers", dossier(received_at="1900-01-01T00:00:00+07:00"), intake.portal)
    assert ancient.status_code == 422 and "received_at" in ancient.text
    wrong_type = intake.post("/v1/dossiers", {**dossier(), "supplement_requests": "two"}, intake.portal)
    assert wrong_type.status_code == 422 and wrong_type.json()["errors"][0]["field"] == "body.supplement_requests"
