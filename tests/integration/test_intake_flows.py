"""Intake's rules on both databases, with its events read back from the real broker by an outside consumer."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaProducer

from shared import events
from tests.support.data import dossier, rating
from tests.support.infra import Backend, cloud_events, read_topic, wait_until
from tests.support.intake import IntakeClient, intake, intake_settings, running_intake  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
STAFF_PHONE = "+84900000001"


def topic_events(kafka_broker, prefix: str, base: str, expect: int, timeout: float = 30.0) -> list[dict]:  # type: ignore[no-untyped-def]
    return cloud_events(read_topic(kafka_broker.bootstrap, f"{prefix}{base}", expect, timeout))


def ratings_of(found: list[dict], dossier_code: str) -> list[dict]:
    return [e for e in found if e["data"]["dossier_code"] == dossier_code]


def metric(api: IntakeClient, name: str) -> float:
    """A sample of /metrics (counters are per process, so tests compare before and after)."""
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def strict_intake(backend: Backend, kafka_broker, topic_prefix: str) -> Iterator[IntakeClient]:  # type: ignore[no-untyped-def]
    """Intake with small integrity and rate limits, and a pending window of a fraction of a second."""
    settings = intake_settings(
        backend, kafka_broker.bootstrap, topic_prefix,
        intake_burst_max_ratings=3, intake_burst_window_seconds=60, intake_repeat_max_ratings=2,
        intake_pending_window_days=0.5 / 86400, intake_sweep_seconds=0.3, intake_rate_limit_kiosk="12/minute",
    )
    yield from running_intake(settings)


def test_officers_feed_the_self_rating_check_and_are_published_without_phone_or_devices(
    intake: IntakeClient, kafka_broker, topic_prefix: str
) -> None:
    officer = {"name": "Nguyễn Văn A", "device_ids": ["TABLET-CB0012"], "phone": STAFF_PHONE}
    assert intake.put("/v1/units/79.SNV/officers/79.SNV.CB0012", officer, intake.portal).status_code == 403
    assert intake.put("/v1/units/79.NOPE/officers/X1", officer, intake.admin).status_code == 404
    stored = intake.put("/v1/units/79.SNV/officers/79.SNV.CB0012", officer, intake.admin)
    assert stored.status_code == 200, stored.text
    assert stored.json()["has_phone"] is True and "phone" not in stored.json()

    listed = intake.get("/v1/units/79.SNV/officers", intake.unit_head).json()["items"]
    assert [(o["officer_id"], o["device_ids"]) for o in listed] == [("79.SNV.CB0012", ["TABLET-CB0012"])]
    assert intake.get("/v1/units/74/officers", intake.unit_head).status_code == 403

    record = dossier("79.SNV")  # officer_ids: 79.SNV.CB0012
    intake.post("/v1/dossiers", record, intake.portal)
    from_staff_tablet = intake.post("/v1/ratings", rating(record["dossier_code"], device_id="TABLET-CB0012", respondent=None), intake.kiosk)
    assert from_staff_tablet.status_code == 202 and from_staff_tablet.json()["status"] == "flagged"
    staff_phone = intake.post("/v1/ratings", rating(record["dossier_code"], channel="online", device_id=None,
                                                    respondent={"phone": STAFF_PHONE}), intake.portal)
    assert staff_phone.json()["status"] == "flagged"
    citizen = intake.post("/v1/ratings", rating(record["dossier_code"], channel="phone", device_id=None), intake.portal)
    assert citizen.json()["status"] == "accepted"

    detail = intake.get(f"/v1/ratings/{from_staff_tablet.json()['rating_id']}", intake.admin).json()
    assert detail["status"] == "flagged" and [f["rule"] for f in detail["flags"]] == ["staff_device"]

    records = read_topic(kafka_broker.bootstrap, f"{topic_prefix}units.v1", 5)  # four units and the officer
    units = cloud_events(records)
    officer_events = [e for e in units if e["type"] == events.OFFICER_UPSERTED]
    assert len(officer_events) == 1 and officer_events[0]["data"]["officer_id"] == "79.SNV.CB0012"
    assert b"79.SNV/officers/79.SNV.CB0012" in [r.key for r in records]
    assert STAFF_PHONE not in json.dumps(units) and "TABLET-CB0012" not in json.dumps(units)

    emitted = ratings_of(topic_events(kafka_broker, topic_prefix, "ratings.v1", 3), record["dossier_code"])
    parsed = {e["type"]: type(events.CloudEvent.model_validate(e).parsed_data()) for e in emitted}  # the contract's schemas
    assert parsed == {events.RATING_FLAGGED: events.RatingFlagged, events.RATING_ACCEPTED: events.RatingAccepted}
    by_id = {e["data"]["rating_id"]: e for e in emitted}
    assert by_id[from_staff_tablet.json()["rating_id"]]["type"] == events.RATING_FLAGGED
    assert by_id[from_staff_tablet.json()["rating_id"]]["data"]["flags"][0]["rule"] == "staff_device"
    assert [f["rule"] for f in by_id[staff_phone.json()["rating_id"]]["data"]["flags"]] == ["staff_phone"]
    assert "79.SNV.CB0012" in by_id[staff_phone.json()["rating_id"]]["data"]["flags"][0]["detail"]
    assert by_id[citizen.json()["rating_id"]]["type"] == events.RATING_ACCEPTED
    assert STAFF_PHONE not in json.dumps(emitted)


def test_kiosk_bursts_and_repeat_respondents_are_flagged_and_rates_limited(strict_intake: IntakeClient) -> None:
    api = strict_intake
    start = datetime(2026, 11, 18, 3, 5, tzinfo=timezone.utc)
    statuses = []
    for n in range(4):  # four presses of one kiosk within a minute: more than 3 is a burst
        record = dossier("79.SNV")
        api.post("/v1/dossiers", record, api.portal)
        answer = api.post("/v1/ratings", rating(record["dossier_code"], device_id="KIOSK-BURST", respondent=None,
                                                submitted_at=(start + timedelta(seconds=10 * n)).isoformat()), api.kiosk)
        statuses.append(answer.json()["status"])
    assert statuses == ["accepted", "accepted", "accepted", "flagged"]
    burst = api.get("/v1/ratings", api.admin, status="flagged").json()["items"]
    assert [f["rule"] for f in burst[0]["flags"]] == ["kiosk_burst"] and "4 ratings" in burst[0]["flags"][0]["detail"]

    later = start + timedelta(hours=1)
    repeat = []
    for n in range(3):  # the same citizen rating officer CB0012 three times: more than 2 is suspicious
        record = dossier("79.SNV")
        api.post("/v1/dossiers", record, api.portal)
        answer = api.post("/v1/ratings", rating(record["dossier_code"], channel="online", device_id=None,
                                                submitted_at=(later + timedelta(days=n)).isoformat()), api.portal)
        repeat.append(answer.json()["status"])
    assert repeat == ["accepted", "accepted", "flagged"]

    # The kiosk key's limit (12/minute) was used by the four ratings above; past it: 429 with Retry-After.
    codes = []
    for _ in range(9):
        record = dossier("79.SNV")
        api.post("/v1/dossiers", record, api.portal)
        codes.append(api.post("/v1/ratings", rating(record["dossier_code"], device_id=None), api.kiosk))
    refused = [a for a in codes if a.status_code == 429]
    assert refused and refused[0].headers["content-type"] == "application/problem+json"
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert api.post("/v1/ratings", rating(dossier()["dossier_code"]), api.portal).status_code == 202  # other keys unaffected


def test_a_correction_is_a_new_rating_event_that_supersedes_the_first(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    record = dossier("79.SNV")
    intake.post("/v1/dossiers", record, intake.portal)
    first = intake.post("/v1/ratings", rating(record["dossier_code"], "satisfied", channel="paper", device_id=None), intake.portal).json()
    fix = {"submitted_at": "2026-11-18T10:05:00+07:00", "overall": "dissatisfied", "attitude": "bad", "reasons": ["attitude"],
           "note": "keyed in from the wrong form"}
    corrected = intake.post(f"/v1/ratings/{first['rating_id']}/corrections", fix, intake.portal)
    assert corrected.status_code == 202, corrected.text
    second = corrected.json()
    assert second["rating_id"] != first["rating_id"] and second["supersedes"] == first["rating_id"]

    again = intake.post(f"/v1/ratings/{first['rating_id']}/corrections", fix, intake.portal)
    assert again.status_code == 409 and again.json()["superseded_by"] == second["rating_id"]
    assert intake.post(f"/v1/ratings/{uuid.uuid4()}/corrections", fix, intake.portal).status_code == 404
    assert intake.post("/v1/ratings/not-a-uuid/corrections", fix, intake.portal).status_code == 422
    outside = intake.key("kiosk", "74")
    assert intake.post(f"/v1/ratings/{second['rating_id']}/corrections", fix, outside).status_code == 403

    original = intake.get(f"/v1/ratings/{first['rating_id']}", intake.admin).json()
    assert (original["overall"], original["superseded_by"]) == ("satisfied", second["rating_id"])  # never edited in place
    # The slot is still taken: a new rating on the paper channel is a 409 naming the first.
    dup = intake.post("/v1/ratings", rating(record["dossier_code"], channel="paper", device_id=None), intake.portal)
    assert dup.status_code == 409 and dup.json()["first_rating_id"] == first["rating_id"]

    emitted = ratings_of(topic_events(kafka_broker, topic_prefix, "ratings.v1", 2), record["dossier_code"])
    assert [(e["data"]["overall"], e["data"].get("supersedes")) for e in emitted] == [
        ("satisfied", None), ("dissatisfied", first["rating_id"])]


def test_held_ratings_become_unmatched_by_the_sweep_and_are_released_when_the_dossier_comes(
    strict_intake: IntakeClient, kafka_broker, topic_prefix: str
) -> None:
    api = strict_intake
    unmatched_before = metric(api, "hailong_intake_ratings_unmatched_total")
    record = dossier("79.SNV")
    held = api.post("/v1/ratings", rating(record["dossier_code"], device_id=None), api.portal).json()
    assert held["status"] == "pending_dossier"
    wait_until(lambda: api.get(f"/v1/ratings/{held['rating_id']}", api.admin).json()["status"] == "unmatched",
               timeout=20, what="the sweep to mark the rating unmatched")
    assert metric(api, "hailong_intake_ratings_unmatched_total") == unmatched_before + 1
    assert metric(api, 'hailong_intake_ratings_held{status="unmatched"}') == 1
    assert [r["rating_id"] for r in api.get("/v1/ratings", api.admin, status="unmatched").json()["items"]] == [held["rating_id"]]

    arrived = api.post("/v1/dossiers", record, api.portal).json()
    assert arrived["released_ratings"] == 1
    assert api.get(f"/v1/ratings/{held['rating_id']}", api.admin).json()["status"] == "accepted"
    emitted = ratings_of(topic_events(kafka_broker, topic_prefix, "ratings.v1", 1), record["dossier_code"])
    assert [e["data"]["rating_id"] for e in emitted] == [held["rating_id"]]

    # A held rating that turns out to predate its dossier's completion is rejected, and frees its slot.
    late = dossier("79.SNV", completed_at="2026-11-18T12:00:00+07:00")
    early = api.post("/v1/ratings", rating(late["dossier_code"], device_id=None, channel="online"), api.portal).json()
    assert api.post("/v1/dossiers", late, api.portal).json()["released_ratings"] == 0
    assert api.get(f"/v1/ratings/{early['rating_id']}", api.admin).json()["status"] == "rejected_before_completion"
    retry = api.post("/v1/ratings", rating(late["dossier_code"], device_id=None, channel="online", submitted_at="2026-11-18T12:01:00+07:00"), api.portal)
    assert retry.status_code == 202 and retry.json()["status"] == "accepted"


def test_the_same_rating_posted_twenty_times_at_once_is_counted_once(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    record = dossier("79.SNV")
    intake.post("/v1/dossiers", record, intake.portal)
    body = rating(record["dossier_code"])
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: intake.post("/v1/ratings", body, intake.kiosk), range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 19, [a.text for a in answers if a.status_code not in (202, 409)]
    winner = next(a.json()["rating_id"] for a in answers if a.status_code == 202)
    assert {a.json()["first_rating_id"] for a in answers if a.status_code == 409} == {winner}
    assert intake.sql(f"SELECT count(*) FROM ratings WHERE dossier_code = '{record['dossier_code']}'")[0][0] == 1
    emitted = ratings_of(topic_events(kafka_broker, topic_prefix, "ratings.v1", 2, timeout=5), record["dossier_code"])
    assert [e["data"]["rating_id"] for e in emitted] == [winner]


def test_ratings_racing_their_dossiers_are_all_released(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    pairs = [dossier("79.SNV") for _ in range(12)]

    def send(job: tuple[str, dict]) -> int:
        kind, record = job
        if kind == "dossier":
            return intake.post("/v1/dossiers", record, intake.portal).status_code
        body = rating(record["dossier_code"], device_id=None, channel="online", respondent=None)
        return intake.post("/v1/ratings", body, intake.portal).status_code

    jobs = [(kind, record) for record in pairs for kind in ("rating", "dossier")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(send, jobs)) == {202}
    statuses = intake.sql("SELECT status, count(*) FROM ratings GROUP BY status")
    assert dict(statuses) == {"accepted": 12}
    emitted = topic_events(kafka_broker, topic_prefix, "ratings.v1", 12)
    assert sorted(e["data"]["dossier_code"] for e in emitted) == sorted(r["dossier_code"] for r in pairs)


def test_a_batch_of_1000_fails_only_its_bad_items(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    records = [dossier("79.SNV") for _ in range(1000)]
    bad_dossier = {**records[7], "completed_at": "2026-11-09T00:00:00+07:00"}  # before it was received
    loaded = intake.post("/v1/dossiers/batch", {"items": records[:7] + [bad_dossier] + records[8:]}, intake.portal)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["failed"] == 1 and loaded.json()["items"][7]["status"] == "error"

    items = [rating(r["dossier_code"], device_id=None, channel="portal", respondent=None) for r in records]
    items[3]["overall"] = "ecstatic"
    items[10]["submitted_at"] = "2026-11-18T09:00:00+07:00"  # before completion
    items[20] = dict(items[19])  # the same dossier and channel twice in one batch
    items[500]["criteria"] = {"access": 0}
    items[999] = "not an object"
    answer = intake.post("/v1/ratings/batch", {"items": items}, intake.portal)
    assert answer.status_code == 200, answer.text
    results = answer.json()["items"]
    failed = {r["index"]: r["error"] for r in results if r["status"] == "error"}
    assert sorted(failed) == [3, 10, 20, 500, 999]
    assert failed[3]["status"] == 422 and failed[3]["errors"][0]["field"] == "overall"
    assert failed[10]["field"] == "body.submitted_at"
    assert failed[20]["status"] == 409 and failed[20]["first_rating_id"] == results[19]["rating_id"]
    assert failed[500]["errors"][0]["field"] == "criteria.access"
    statuses = {r["status"] for i, r in enumerate(results) if i not in failed}
    assert statuses == {"accepted", "pending_dossier"}  # the dossier of item 7 was refused, so its rating waits
    assert answer.json()["accepted"] == 995
    counted = sum(1 for r in results if r["status"] == "accepted")
    emitted = topic_events(kafka_broker, topic_prefix, "ratings.v1", counted, timeout=60)
    assert len(emitted) == counted == 994
    parsed = [events.CloudEvent.model_validate(e).parsed_data() for e in emitted]  # the contract's schema
    assert {p.rating_id for p in parsed} == {r["rating_id"] for r in results if r["status"] == "accepted"}
    assert all(isinstance(p, events.RatingAccepted) and p.unit_code == "79.SNV" for p in parsed)

    too_many = intake.post("/v1/ratings/batch", {"items": items + items[:1]}, intake.portal)
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "body.items"


def test_paper_forms_import_with_vietnamese_headers_and_a_report_per_row(intake: IntakeClient) -> None:
    records = [dossier("79.SNV") for _ in range(3)]
    intake.post("/v1/dossiers/batch", {"items": records}, intake.portal)
    csv_text = (
        "Mã hồ sơ,Ngày khảo sát,Mức độ hài lòng,Thái độ,Tiếp cận dịch vụ,Lý do,Ý kiến khác,Số điện thoại\n"
        f"{records[0]['dossier_code']},18/11/2026,Rất hài lòng,Tốt,5,,,\n"
        f"{records[1]['dossier_code']},18/11/2026,Không hài lòng,Không tốt,2,Thái độ; Trễ hạn,Chờ lâu,0912 345 678\n"
        f"{records[2]['dossier_code']},18/11/2026,Tuyệt vời,Tốt,5,,,\n"
        "UNKNOWN-DOSSIER-1,18/11/2026,Bình thường,,,,,\n"
    )
    answer = intake.client.post("/v1/imports/paper", content=csv_text.encode(), headers={
        "Authorization": f"Bearer {intake.portal}", "Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert [r["status"] for r in report["items"]] == ["accepted", "accepted", "error", "pending_dossier"]
    assert report["items"][2]["error"]["line"] == 4 and report["items"][2]["error"]["field"] == "overall"
    stored = intake.get(f"/v1/ratings/{report['items'][1]['rating_id']}", intake.admin).json()
    assert (stored["channel"], stored["overall"], stored["reasons"], stored["comment"]) == (
        "paper", "dissatisfied", ["attitude", "processing_time"], "Chờ lâu")
    assert "comment" not in intake.get(f"/v1/ratings/{report['items'][1]['rating_id']}", intake.unit_head).json()
    not_csv = intake.client.post("/v1/imports/paper", content=b"a,b\n1,2\n", headers={"Authorization": f"Bearer {intake.portal}"})
    assert not_csv.status_code == 422 and not_csv.json()["errors"][0]["field"] == "body.header"
    latin1 = intake.client.post("/v1/imports/paper", content="Mã hồ sơ".encode("utf-16"), headers={"Authorization": f"Bearer {intake.portal}"})
    assert latin1.status_code == 422


def test_assessments_merge_partial_updates_and_are_published(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    url = "/v1/units/79.SNV/assessments"
    first = intake.post(url, {"period": "2026-Q3", "feedback_handling": 17.5, "source": "dichvucong.gov.vn PAKN"}, intake.portal)
    assert first.status_code == 202, first.text
    second = intake.post(url, {"period": "2026-Q3", "public_listing": True, "decree61": {"disclosure": 2}}, intake.admin).json()
    assert (second["feedback_handling"], second["public_listing"], second["decree61"]["disclosure"]) == (17.5, True, 2)
    counts = intake.post(url, {"period": "2026-Q3", "feedback_received": 10, "feedback_answered_on_time": 9}, intake.admin).json()
    assert counts["feedback_handling"] == 17.5 and counts["decree61"]["disclosure"] == 2

    bad = [
        ({"period": "2026-Q3", "feedback_handling": 18.5}, "body.feedback_handling"),
        ({"period": "2026-Q5", "public_listing": True}, "body.period"),
        ({"period": "2026-Q3"}, "body"),
        ({"period": "2026-Q3", "decree61": {"disclosure": 3}}, "body.decree61.disclosure"),
        ({"period": "2026-Q3", "feedback_answered_on_time": 11}, "body.feedback_answered_on_time"),
    ]
    for body, field in bad:
        answer = intake.post(url, body, intake.admin)
        assert answer.status_code == 422 and field in [e["field"] for e in answer.json()["errors"]], (body, answer.text)
    assert intake.post("/v1/units/79.NOPE/assessments", {"period": "2026-Q3", "public_listing": True}, intake.admin).status_code == 404
    assert intake.post(url, {"period": "2026-Q3", "public_listing": True}, intake.kiosk).status_code == 403

    emitted = topic_events(kafka_broker, topic_prefix, "assessments.v1", 3)
    assert [e["data"].get("feedback_handling") for e in emitted] == [17.5, 17.5, 17.5]
    assert emitted[-1]["data"]["public_listing"] is True and emitted[-1]["data"]["feedback_received"] == 10
    assert all(events.CloudEvent.model_validate(e).parsed_data() for e in emitted)


def test_kiosk_scope_is_the_units_subtree_and_retired_units_name_their_successor(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    child = dossier("79.SNV.P1")
    elsewhere = dossier("74")
    intake.post("/v1/dossiers/batch", {"items": [child, elsewhere]}, intake.portal)
    assert intake.post("/v1/ratings", rating(child["dossier_code"]), intake.kiosk).status_code == 202
    assert intake.post("/v1/ratings", rating(elsewhere["dossier_code"]), intake.kiosk).status_code == 403
    unknown_unit = intake.post("/v1/dossiers", dossier("79.NOPE"), intake.portal)
    assert unknown_unit.status_code == 422 and unknown_unit.json()["errors"][0]["field"] == "body.unit_code"

    retired = {"name": "Sở cũ (demo)", "level": "department", "parent_code": "79", "valid_from": "2020-01-01",
               "valid_to": "2025-06-30", "successor_code": "79.SNV"}
    assert intake.put("/v1/units/79.OLD", retired, intake.admin).status_code == 200
    assert intake.get("/v1/units/79.OLD").json()["successor_code"] == "79.SNV"
    inverted = {**retired, "valid_to": "2019-01-01"}
    assert intake.put("/v1/units/79.OLD", inverted, intake.admin).status_code == 422
    units = topic_events(kafka_broker, topic_prefix, "units.v1", 5)
    assert any(e["data"].get("successor_code") == "79.SNV" for e in units if e["subject"] == "79.OLD")


def test_a_verdict_from_workflow_is_shown_on_the_rating(intake: IntakeClient, kafka_broker, topic_prefix: str) -> None:
    record = dossier("79.SNV")
    intake.post("/v1/dossiers", record, intake.portal)
    rated = intake.post("/v1/ratings", rating(record["dossier_code"]), intake.kiosk).json()
    verdict = events.RatingVerified(
        task_id="task-1", rating_id=rated["rating_id"], dossier_code=record["dossier_code"], unit_code="79.SNV",
        verdict="not_genuine", reason="sample", verified_at=datetime.now(timezone.utc),
    )
    event = events.new_event(events.RATING_VERIFIED, "/hailong/workflow", "79.SNV", verdict)

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(f"{topic_prefix}verifications.v1", event.to_bytes(), key=b"79.SNV")
        finally:
            await producer.stop()

    asyncio.run(publish())
    shown = wait_until(lambda: (r := intake.get(f"/v1/ratings/{rated['rating_id']}", intake.inspector).json())["verdict"] and r,
                       timeout=60, what="intake to record the verdict")
    assert shown["verdict"] == "not_genuine" and shown["verified_at"]
    fix = {"submitted_at": "2026-11-18T10:05:00+07:00", "overall": "normal"}
    assert intake.post(f"/v1/ratings/{rated['rating_id']}/corrections", fix, intake.kiosk).status_code == 409


def test_a_dossier_correction_is_re_emitted_with_a_higher_revision_and_its_decree_61_inputs(
    intake: IntakeClient, kafka_broker, topic_prefix: str
) -> None:
    record = dossier("79.SNV", applicant_contacts=1, agencies_contacted=1, complaint="none",
                     steps=[{"agency_code": "79.STP", "due_at": "2026-11-14T17:00:00+07:00", "completed_at": "2026-11-13T09:00:00+07:00"}])
    first = intake.post("/v1/dossiers", record, intake.portal).json()
    same = intake.post("/v1/dossiers", record, intake.portal).json()
    corrected = intake.post("/v1/dossiers", {**record, "completed_at": "2026-11-19T16:00:00+07:00", "complaint": "filed"}, intake.portal).json()
    assert (first["revision"], same["revision"], corrected["revision"]) == (1, 1, 2)
    emitted = [e for e in topic_events(kafka_broker, topic_prefix, "dossiers.v1", 2) if e["data"]["dossier_code"] == record["dossier_code"]]
    assert [(e["data"]["revision"], e["data"]["complaint"]) for e in emitted] == [(1, "none"), (2, "filed")]
    data = events.CloudEvent.model_validate(emitted[-1]).parsed_data()
    assert isinstance(data, events.DossierCompleted)
    assert (data.applicant_contacts, data.agencies_contacted, data.steps[0].agency_code) == (1, 1, "79.STP")
