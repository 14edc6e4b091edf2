"""Workflow on both databases against the real broker: tickets from events, roles, disputes, duties with a
set clock, mail through a real SMTP server, phúc tra, obligations and their XLSX reports, the calendar."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from services.workflow import store
from services.workflow.app import build
from services.workflow.duties import DutyReport, run_duties
from shared.auth import issue_jwt
from shared.db import create_engine_for
from shared.periods import VIETNAM
from shared.settings import Settings
from tests.support import workflow as ev
from tests.support.infra import JWT_SECRET, Backend, cloud_events, read_topic, wait_until

pytestmark = pytest.mark.integration
HOME_AFFAIRS_MAIL = "sonoivu@example.gov.vn"
HEAD_MAIL = "giamdoc.snv@example.gov.vn"
WEBHOOK_SECRET = "test-webhook-secret"
T0 = datetime(2025, 4, 25, 9, 0, tzinfo=VIETNAM)  # Fri 25 Apr 2025, DOMAIN.md's worked example
COMPLETED = datetime(2025, 4, 24, 15, 0, tzinfo=VIETNAM)


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Workflow:
    def __init__(self, client: TestClient, settings: Settings, clock: Clock) -> None:
        self.client, self.settings, self.clock = client, settings, clock
        self.runtime = client.app.state.runtime  # type: ignore[attr-defined]

    def token(self, role: str, scope: str | None = None, subject: str = "person") -> str:
        return issue_jwt(JWT_SECRET, subject, role, scope)

    def get(self, path: str, token: str | None, **params: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})

    def post(self, path: str, token: str | None, body: Any = None, **headers: str):  # type: ignore[no-untyped-def]
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(path, json=body, headers={**all_headers, **headers})

    def send(self, *batch: Any) -> None:
        ev.produce(self.settings.kafka_bootstrap, self.settings.topic_prefix, *batch)

    def tickets(self, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
        answer = self.get("/v1/tickets", token or self.token("home_affairs"), **params)
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]

    def wait_tickets(self, count: int, **params: Any) -> list[dict[str, Any]]:
        return wait_until(lambda: len(items := self.tickets(**params)) == count and items, timeout=60,
                          what=f"{count} tickets {params}")

    def duties(self, now: datetime) -> DutyReport:
        self.clock.now = now
        return self.client.portal.call(run_duties, self.runtime.engine, self.settings, now)  # type: ignore[union-attr]

    def sql(self, statement: Any) -> list[Any]:
        async def run() -> list[Any]:
            async with self.runtime.engine.begin() as conn:
                result = await conn.execute(statement)
                return list(result.all()) if result.returns_rows else []

        return self.client.portal.call(run)  # type: ignore[union-attr]


@pytest.fixture
def smtp() -> Iterator[ev.SmtpSink]:
    sink = ev.SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def webhook() -> Iterator[ev.WebhookSink]:
    sink = ev.WebhookSink()
    yield sink
    sink.close()


@pytest.fixture
def workflow(backend: Backend, kafka_broker, topic_prefix: str, smtp: ev.SmtpSink, webhook: ev.WebhookSink) -> Iterator[Workflow]:  # type: ignore[no-untyped-def]
    settings = Settings(
        notify_webhook_url=webhook.url, notify_webhook_secret=WEBHOOK_SECRET,
        database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=topic_prefix, jwt_secret=JWT_SECRET, smtp_host="127.0.0.1", smtp_port=smtp.port,
        home_affairs_email=HOME_AFFAIRS_MAIL, workflow_tick_seconds=3600, outbox_poll_seconds=0.2,
        verification_sample_seed="test-seed",
    )
    clock = Clock(T0)
    with TestClient(build(settings, clock)) as client:
        api = Workflow(client, settings, clock)
        api.send(ev.unit("79", "TP. Hồ Chí Minh", "province"), ev.unit("79.SNV", "Sở Nội vụ", parent="79"),
                 ev.unit("79.SNV.P1", "Phòng Công chức", "agency", parent="79.SNV"), ev.unit("79.STP", "Sở Tư pháp", parent="79"))
        wait_until(lambda: len(api.sql(sa.select(store.units))) == 4, timeout=60, what="the unit registry")
        yield api


def test_a_dissatisfied_rating_opens_one_ticket_per_category_and_later_ones_attach(workflow: Workflow, kafka_broker) -> None:
    first = ev.rating("79.SNV", reasons=("attitude", "documents"), completed_at=COMPLETED, time=T0)
    workflow.send(first)
    tickets = {t["category"]: t for t in workflow.wait_tickets(2)}
    # Đà Nẵng Art. 3.3: 5 working days → Tue 6 May 2025 (DOMAIN.md); 15 → 26 Apr (Sat, worked), 28, 29 Apr,
    # 5-9 May, 12-16 May, 19, 20 May → Tue 20 May 2025.
    assert tickets["service_conditions"]["due_at"] == "2025-05-06T23:59:59+07:00"
    assert tickets["procedure"]["due_at"] == "2025-05-20T23:59:59+07:00"
    assert {t["status"] for t in tickets.values()} == {"open"} and {t["period"] for t in tickets.values()} == {"2025-04"}

    burst = [ev.rating("79.SNV", reasons=("attitude", "documents"), completed_at=COMPLETED, time=T0 + timedelta(hours=1))
             for _ in range(5)]
    costly = ev.rating("79.SNV", reasons=("informal_cost",), completed_at=COMPLETED, time=T0 + timedelta(hours=2))
    held = ev.rating("79.SNV", reasons=("attitude",), completed_at=COMPLETED, time=T0, flagged=True)
    satisfied = ev.rating("79.SNV", overall="satisfied", completed_at=COMPLETED, time=T0)
    workflow.send(*burst, costly, held, satisfied, first)  # `first` again: a redelivery attaches nothing
    wait_until(lambda: {t["category"]: t["rating_count"] for t in workflow.tickets()} == {"service_conditions": 7, "procedure": 6},
               timeout=60, what="the burst attached to the two open tickets")
    tickets = {t["category"]: t for t in workflow.tickets()}
    assert tickets["service_conditions"]["severity"] == "high"  # an informal cost joined it
    # The flagged rating waits for phúc tra instead of obliging a remedy.
    tasks = workflow.get("/v1/verifications", workflow.token("inspector"), reason="flagged").json()["items"]
    assert [t["rating_id"] for t in tasks] == [held.data["rating_id"]]

    published = cloud_events(read_topic(kafka_broker.bootstrap, f"{workflow.settings.topic_prefix}tickets.v1", 4, timeout=30))
    opened = [e for e in published if e["type"] == "vn.hailong.ticket.opened.v1"]
    assert sorted(e["data"]["category"] for e in opened) == ["procedure", "service_conditions"]
    latest = [e for e in published if e["data"]["ticket_id"] == tickets["service_conditions"]["id"]][-1]["data"]
    assert latest["rating_count"] == 7 and first.data["rating_id"] in latest["rating_ids"]
    assert "ab" * 32 not in str(published) and "CB0012" not in str(published)  # no respondent, no officer


def test_late_dossiers_threshold_crossings_and_repeated_years_open_their_own_tickets(workflow: Workflow, kafka_broker) -> None:
    on_time = ev.dossier("79.SNV", due_at=vn(2025, 4, 24, 17), completed_at=vn(2025, 4, 24, 18), time=T0)
    late = ev.dossier("79.SNV", due_at=vn(2025, 4, 23, 17), completed_at=vn(2025, 4, 24, 10), time=T0, code="H29-LATE-1")
    workflow.send(on_time, late, late)
    (letter,) = workflow.wait_tickets(1, category="apology_letter")
    # One working day after Fri 25 Apr 2025 is Sat 26 Apr: worked that year in exchange for Fri 2 May.
    assert letter["due_at"] == "2025-04-26T23:59:59+07:00"
    workflow.send(ev.crossing("79.SNV", "2025-04", time=T0), ev.crossing("79.SNV", "2025-Q2", time=T0 + timedelta(hours=1)))
    (plan,) = workflow.wait_tickets(1, category="unit_plan")
    assert plan["due_at"] == "2025-05-20T23:59:59+07:00"

    after_2026 = vn(2027, 1, 10, 9)
    workflow.send(
        ev.unit_score("79.STP", "2025", "not_satisfied", time=vn(2026, 1, 5)),
        ev.unit_score("79.STP", "2026", "not_satisfied", time=after_2026),
        ev.unit_score("79.SNV", "2026", "not_satisfied", time=after_2026),  # one year only: nothing
        ev.officer("79.STP.CB7", "79.STP", "Nguyễn Văn A"),
        ev.officer_score("79.STP.CB7", "79.STP", "2025", "not_satisfied", time=vn(2026, 1, 5)),
        ev.officer_score("79.STP.CB7", "79.STP", "2026", "not_satisfied", time=after_2026),
    )
    (repeated,) = workflow.wait_tickets(1, category="repeated_dissatisfaction")
    assert (repeated["unit_code"], repeated["escalated_to"], repeated["severity"]) == ("79.STP", "peoples_committee", "high")
    (review,) = workflow.wait_tickets(1, category="officer_review")
    assert review["restricted"] and review["officer_id"] == "79.STP.CB7"
    # The officer's record: their unit head and Home Affairs only — not admin, not the People's Committee.
    head = workflow.token("unit_head", "79.STP")
    assert workflow.get(f"/v1/tickets/{review['id']}", head).json()["officer_name"] == "Nguyễn Văn A"
    for role in ("admin", "peoples_committee", "inspector"):
        assert workflow.get(f"/v1/tickets/{review['id']}", workflow.token(role)).status_code == 404, role
    assert [t["category"] for t in workflow.tickets(workflow.token("peoples_committee"))] == ["repeated_dissatisfaction"]
    published = cloud_events(read_topic(kafka_broker.bootstrap, f"{workflow.settings.topic_prefix}tickets.v1", 3, timeout=20))
    assert review["id"] not in str(published) and "CB7" not in str(published)


def _two_tickets(workflow: Workflow, unit_code: str = "79.SNV.P1") -> dict[str, dict[str, Any]]:
    workflow.send(ev.rating(unit_code, reasons=("attitude", "documents"), completed_at=COMPLETED, time=T0))
    return {t["category"]: t for t in workflow.wait_tickets(2, unit_code=unit_code)}


def test_roles_see_and_move_only_what_they_may(workflow: Workflow) -> None:
    tickets = _two_tickets(workflow)
    workflow.send(ev.rating("79.STP", reasons=("equipment",), completed_at=COMPLETED, time=T0))
    workflow.wait_tickets(1, unit_code="79.STP")
    ticket = tickets["service_conditions"]
    path = f"/v1/tickets/{ticket['id']}/transitions"
    head, other_head = workflow.token("unit_head", "79.SNV", "head-snv"), workflow.token("unit_head", "79.STP")

    # A unit head's scope is a subtree: 79.SNV sees its agency 79.SNV.P1, not 79.STP.
    assert {t["unit_code"] for t in workflow.tickets(head)} == {"79.SNV.P1"}
    assert workflow.get("/v1/tickets", head, unit_code="79.STP").status_code == 403
    assert workflow.get(f"/v1/tickets/{ticket['id']}", other_head).status_code == 404
    assert workflow.post(path, other_head, {"action": "acknowledge"}).status_code == 404
    # The public sees none; roles without tickets get 403; a unit head needs a scope.
    assert workflow.get("/v1/tickets", None).status_code == 401
    assert workflow.get("/v1/tickets", workflow.token("kiosk")).status_code == 403
    assert workflow.get("/v1/tickets", workflow.token("unit_head")).status_code == 403

    officer = workflow.token("officer", "79.SNV.P1")
    assert workflow.post(path, officer, {"action": "resolve", "note": "fixed"}).status_code == 403
    assert workflow.post(path, head, {"action": "verify"}).status_code == 403  # a unit does not verify itself
    assert workflow.post(path, workflow.token("home_affairs"), {"action": "verify"}).status_code == 409  # not resolved yet
    bad = workflow.post(path, head, {"action": "fly"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert "body.action" in [e["field"] for e in bad.json()["errors"]]

    acknowledged = workflow.post(path, officer, {"action": "acknowledge", "note": "seen"}, **{"Idempotency-Key": "ack-1"})
    assert acknowledged.status_code == 200 and acknowledged.json()["status"] == "acknowledged"
    replay = workflow.post(path, officer, {"action": "acknowledge", "note": "seen"}, **{"Idempotency-Key": "ack-1"})
    assert replay.status_code == 200 and replay.json() == acknowledged.json()
    assert workflow.post(path, officer, {"action": "acknowledge", "note": "other"}, **{"Idempotency-Key": "ack-1"}).status_code == 409
    assert workflow.post(path, officer, {"action": "acknowledge"}).status_code == 409  # already acknowledged

    workflow.clock.now = vn(2025, 4, 29, 10)
    plan = workflow.post(path, head, {"action": "submit_plan", "note": "retrain counter staff by 2 May"})
    assert plan.status_code == 200
    done = workflow.post(path, head, {"action": "resolve", "note": "retrained", "measures": "Counter staff retrained"})
    assert done.status_code == 200 and done.json()["resolved_at"] == "2025-04-29T10:00:00+07:00"
    supervisor = workflow.token("home_affairs", None, "snv-inspector")
    assert workflow.post(path, supervisor, {"action": "verify"}).json()["status"] == "verified"
    closed = workflow.post(path, supervisor, {"action": "close", "note": "checked on site"}).json()
    assert closed["status"] == "closed" and closed["allowed_actions"] == ["reopen"]
    assert [(h["action"], h["to_status"], h["actor"]) for h in closed["history"]] == [
        ("open", "open", "system"), ("acknowledge", "acknowledged", "officer:person"),
        ("submit_plan", "plan_submitted", "unit_head:head-snv"), ("resolve", "resolved", "unit_head:head-snv"),
        ("verify", "verified", "home_affairs:snv-inspector"), ("close", "closed", "home_affairs:snv-inspector"),
    ]

    # The history is append-only in the database itself.
    with pytest.raises(Exception, match="append-only"):
        workflow.sql(store.ticket_history.update().values(note="rewritten"))
    with pytest.raises(Exception, match="append-only"):
        workflow.sql(store.ticket_history.delete())

    # The inspectorate sees informal-cost (high severity) tickets only.
    assert workflow.tickets(workflow.token("inspector")) == []


def test_a_dispute_within_five_working_days_is_answered_within_seven(workflow: Workflow) -> None:
    tickets = _two_tickets(workflow)
    head, supervisor = workflow.token("unit_head", "79.SNV"), workflow.token("home_affairs")
    late_path = f"/v1/tickets/{tickets['procedure']['id']}/transitions"
    path = f"/v1/tickets/{tickets['service_conditions']['id']}/transitions"
    assert tickets["service_conditions"]["dispute_until"] == "2025-05-06T23:59:59+07:00"

    workflow.clock.now = vn(2025, 5, 7, 8)  # Wed 7 May: the window closed at the end of Tue 6 May
    refused = workflow.post(late_path, head, {"action": "dispute", "note": "survey error"})
    assert refused.status_code == 409 and refused.json()["title"] == "Dispute window closed"

    workflow.clock.now = vn(2025, 5, 6, 16)
    disputed = workflow.post(path, head, {"action": "dispute", "note": "the kiosk was out of order that day"}).json()
    # Contested Tue 6 May 2025: 7, 8, 9, 12, 13, 14, 15 May → Home Affairs answers by Thu 15 May.
    assert disputed["status"] == "disputed" and disputed["due_at"] == "2025-05-15T23:59:59+07:00"
    assert workflow.post(path, head, {"action": "reject_dispute", "note": "x"}).status_code == 403

    workflow.clock.now = vn(2025, 5, 9, 11)
    answered = workflow.post(path, supervisor, {"action": "reject_dispute", "note": "the ratings are genuine"}).json()
    # The results stand from Fri 9 May: 5 working days → 12-16 May → Fri 16 May.
    assert answered["status"] == "open" and answered["due_at"] == "2025-05-16T23:59:59+07:00" and not answered["breached"]


def test_duties_remind_breach_escalate_and_mail_once(workflow: Workflow, smtp: ev.SmtpSink, webhook: ev.WebhookSink) -> None:
    admin = workflow.token("admin")
    assert workflow.client.put("/v1/units/79.SNV/contact", json={"head_email": HEAD_MAIL},
                               headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    bad = workflow.client.put("/v1/units/79.SNV/contact", json={"head_email": "not an address"}, headers={"Authorization": f"Bearer {admin}"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.head_email"
    tickets = _two_tickets(workflow)  # 79.SNV.P1 has no contact of its own: its parent's head is mailed
    quick = tickets["service_conditions"]

    opened = wait_until(lambda: len(smtp.to(HEAD_MAIL)) == 2 and smtp.to(HEAD_MAIL), timeout=30, what="two 'opened' mails")
    assert all("New remediation ticket" in m["Subject"] for m in opened)

    # Due Tue 6 May 2025: two working days remain from Tue 29 Apr (30 Apr - 4 May are off).
    assert workflow.duties(vn(2025, 4, 28, 23, 59)).reminded == []
    assert workflow.duties(vn(2025, 4, 29, 0, 1)).reminded == [quick["id"]]
    assert workflow.duties(vn(2025, 4, 29, 8, 0)).reminded == []  # once per deadline
    wait_until(lambda: any("Due in two working days" in m["Subject"] for m in smtp.to(HEAD_MAIL)), timeout=30, what="the reminder")

    assert workflow.duties(vn(2025, 5, 6, 23, 59, 58)).breached == []
    report = workflow.duties(vn(2025, 5, 7, 0, 0, 1))
    assert report.breached == [quick["id"]]
    assert workflow.duties(vn(2025, 5, 7, 9)).breached == []  # idempotent: the next tick changes nothing
    ticket = workflow.get(f"/v1/tickets/{quick['id']}", admin).json()
    assert ticket["breached"] and ticket["escalated_to"] == "home_affairs" and ticket["status"] == "open"
    assert [h["action"] for h in ticket["history"]] == ["open", "breach", "escalate"]
    assert [t["id"] for t in workflow.tickets(admin, overdue="true")] == [quick["id"]]
    escalated = wait_until(lambda: smtp.to(HOME_AFFAIRS_MAIL), timeout=30, what="the escalation mail to Home Affairs")
    assert "Escalated" in escalated[0]["Subject"] and quick["id"] in escalated[0].get_content()
    wait_until(lambda: any("Deadline missed" in m["Subject"] for m in smtp.to(HEAD_MAIL)), timeout=30, what="the breach mail")
    workflow.duties(vn(2025, 5, 8, 9))
    notes = store.notifications
    sent = workflow.sql(sa.select(notes.c.kind, notes.c.status).where(notes.c.channel == "email"))
    assert sorted(kind for kind, _ in sent) == ["breached", "due_soon", "escalated", "opened", "opened"]
    wait_until(lambda: all(s == "sent" for _, s in workflow.sql(sa.select(store.notifications.c.kind, store.notifications.c.status))),
               timeout=30, what="every notification sent")
    assert len(smtp.messages) == 5
    # The optional webhook hears of the same five, each signed with the shared secret.
    hooks = wait_until(lambda: len(webhook.posts) == 5 and webhook.posts, timeout=30, what="the webhook posts")
    kinds = sorted(orjson.loads(body)["kind"] for _, body in hooks)
    assert kinds == ["breached", "due_soon", "escalated", "opened", "opened"]
    for headers, body in hooks:
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-hailong-signature"] == expected


def test_phuc_tra_samples_a_quarter_of_online_ratings_and_verdicts_reach_scoring(workflow: Workflow, kafka_broker) -> None:
    october = datetime(2025, 10, 10, 9, tzinfo=VIETNAM)
    online = [ev.rating("79.SNV", overall="satisfied", channel="portal", completed_at=october, time=october) for _ in range(10)]
    other = [ev.rating("79.STP", overall="satisfied", channel="online", completed_at=october, time=october) for _ in range(3)]
    kiosk = [ev.rating("79.SNV", overall="satisfied", channel="kiosk", completed_at=october, time=october) for _ in range(4)]
    workflow.send(*online, *other, *kiosk)
    wait_until(lambda: len(workflow.sql(sa.select(store.online_ratings))) == 13, timeout=60, what="online ratings recorded")

    # October 2025 ends Fri 31 Oct; three working days later is Wed 5 Nov: the sample is drawn from then on.
    assert "2025-10" not in workflow.duties(vn(2025, 11, 4, 23)).sampled  # (earlier, empty months are drawn)
    assert workflow.duties(vn(2025, 11, 5, 0, 30)).sampled == {"2025-10": 4}  # ⌈25% of 10⌉ + ⌈25% of 3⌉
    assert workflow.duties(vn(2025, 11, 6, 9)).sampled == {}  # once per period, whatever the restarts
    inspector = workflow.token("inspector")
    tasks = workflow.get("/v1/verifications", inspector, reason="sample", period="2025-10").json()["items"]
    by_unit = {}
    for task in tasks:
        by_unit.setdefault(task["unit_code"], []).append(task)
    assert {unit: len(items) for unit, items in by_unit.items()} == {"79.SNV": 3, "79.STP": 1}
    assert {t["rating_id"] for t in tasks} <= {e.data["rating_id"] for e in online + other}

    task = by_unit["79.SNV"][0]
    assert workflow.post(f"/v1/verifications/{task['id']}/result", workflow.token("unit_head", "79.SNV"), {"verdict": "genuine"}).status_code == 403
    bad = workflow.post(f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.verdict"
    result = workflow.post(f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "not_genuine", "note": "number unreachable"})
    assert result.status_code == 200 and result.json()["verdict"] == "not_genuine"
    assert workflow.post(f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "not_genuine"}).status_code == 200
    assert workflow.post(f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "genuine"}).status_code == 409

    # A flagged rating found genuine counts from now: its remedy is owed from the verdict.
    held = ev.rating("79.STP", reasons=("processing_time",), completed_at=october, time=october, flagged=True)
    workflow.send(held)
    flagged = wait_until(lambda: workflow.get("/v1/verifications", inspector, reason="flagged").json()["items"], timeout=60, what="a flagged task")
    assert workflow.tickets(unit_code="79.STP") == []
    workflow.clock.now = vn(2025, 11, 6, 10)
    assert workflow.post(f"/v1/verifications/{flagged[0]['id']}/result", inspector, {"verdict": "genuine"}).status_code == 200
    (ticket,) = workflow.tickets(unit_code="79.STP")
    assert ticket["category"] == "procedure" and ticket["opened_at"].startswith("2025-11-06T03:00:00")

    verified = cloud_events(read_topic(kafka_broker.bootstrap, f"{workflow.settings.topic_prefix}verifications.v1", 2, timeout=30))
    by_rating = {e["data"]["rating_id"]: e for e in verified}
    assert by_rating[task["rating_id"]]["type"] == "vn.hailong.rating.verified.v1"
    assert by_rating[task["rating_id"]]["data"] | {"verified_at": None} == {
        "task_id": task["id"], "rating_id": task["rating_id"], "dossier_code": task["dossier_code"], "unit_code": "79.SNV",
        "verdict": "not_genuine", "reason": "sample", "verified_at": None}
    assert by_rating[held.data["rating_id"]]["data"]["verdict"] == "genuine"
    assert by_rating[held.data["rating_id"]]["data"]["reason"] == "flagged"


def test_a_rating_found_not_genuine_leaves_its_ticket_and_a_ticket_left_empty_closes(workflow: Workflow) -> None:
    portal = ev.rating("79.SNV", reasons=("equipment",), channel="portal", completed_at=COMPLETED, time=T0, flagged=True)
    workflow.send(portal)
    inspector = workflow.token("inspector")
    (task,) = wait_until(lambda: workflow.get("/v1/verifications", inspector).json()["items"], timeout=60, what="the task")
    workflow.post(f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "genuine"})
    (ticket,) = workflow.tickets(unit_code="79.SNV")
    second = ev.rating("79.SNV", reasons=("equipment",), completed_at=COMPLETED, time=T0)
    correction = ev.rating("79.SNV", overall="satisfied", completed_at=COMPLETED, time=T0, supersedes=second.data["rating_id"])
    workflow.send(second)
    wait_until(lambda: workflow.tickets(unit_code="79.SNV")[0]["rating_count"] == 2, timeout=60, what="the second rating")
    workflow.send(correction)  # the citizen corrected the second rating to satisfied
    wait_until(lambda: workflow.tickets(unit_code="79.SNV")[0]["rating_count"] == 1, timeout=60, what="the correction")
    workflow.sql(store.verification_tasks.update().where(store.verification_tasks.c.id == task["id"]).values(status="pending"))
    answer = workflow.post(f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "not_genuine"})
    assert answer.status_code == 200
    closed = workflow.get(f"/v1/tickets/{ticket['id']}", workflow.token("admin")).json()
    assert closed["status"] == "closed" and closed["rating_ids"] == [] and "no rating left" in closed["history"][-1]["note"]


def test_obligations_show_their_status_and_reports_come_as_xlsx(workflow: Workflow) -> None:
    tickets = _two_tickets(workflow, "79.SNV")
    workflow.send(ev.unit_score("79.SNV", "2025-04", "satisfied", score=21.3, time=T0),
                  ev.unit_score("79.STP", "2025-04", "not_satisfied", score=19.8, time=T0),
                  ev.unit_score("79", "2025-04", "not_satisfied", score=19.8, time=T0))
    wait_until(lambda: len(workflow.sql(sa.select(store.scores))) == 3, timeout=60, what="the month's scores")
    workflow.duties(vn(2025, 5, 20, 9))
    home_affairs, head = workflow.token("home_affairs"), workflow.token("unit_head", "79.SNV")
    items = {(o["kind"], o["scope"], o["period"]): o for o in workflow.get("/v1/obligations", home_affairs).json()["items"]}
    unit_report = items[("unit_remediation_report", "79.SNV", "2025-H1")]
    assert unit_report["due_before"] == "2025-06-15T00:00:00+07:00" and unit_report["status"] == "pending"
    assert items[("annual_report", "*", "2024")]["status"] == "overdue"  # due before 30 Jan 2025, never submitted
    ranking = items[("monthly_ranking_report", "*", "2025-04")]
    assert ranking["due_before"] == "2025-05-25T00:00:00+07:00"
    assert [o["scope"] for o in workflow.get("/v1/obligations", head).json()["items"]] == ["79.SNV"]
    overdue = workflow.get("/v1/obligations", home_affairs, status="overdue").json()["items"]
    # On 20 May 2025: last year's annual report (before 30 Jan) and March's ranking (before 25 Apr) are overdue.
    assert [(o["kind"], o["period"]) for o in overdue] == [("annual_report", "2024"), ("monthly_ranking_report", "2025-03")]
    first = workflow.get("/v1/obligations", home_affairs, limit=2).json()
    rest = workflow.get("/v1/obligations", home_affairs, limit=2, cursor=first["next_cursor"]).json()
    assert [o["id"] for o in first["items"] + rest["items"]] == [o["id"] for o in sorted(items.values(), key=lambda o: o["due_before"])][:4]

    sheet = load_workbook(io.BytesIO(workflow.get(f"/v1/obligations/{ranking['id']}/report", home_affairs).content)).active
    rows = [r for r in sheet.iter_rows(values_only=True) if r and isinstance(r[0], int)]
    assert rows == [(1, "79.SNV", "Sở Nội vụ", 21.3, "satisfied"), (2, "79", "TP. Hồ Chí Minh", 19.8, "not_satisfied"),
                    (2, "79.STP", "Sở Tư pháp", 19.8, "not_satisfied")]  # ties share a rank; names from units.v1

    assert workflow.post(f"/v1/obligations/{unit_report['id']}/submit", home_affairs).status_code == 403  # the unit's duty
    workflow.clock.now = vn(2025, 6, 14, 16)
    submitted = workflow.post(f"/v1/obligations/{unit_report['id']}/submit", head)
    assert submitted.status_code == 200 and submitted.json()["status"] == "met"
    assert workflow.post(f"/v1/obligations/{unit_report['id']}/submit", head).status_code == 409
    report = workflow.get(f"/v1/obligations/{unit_report['id']}/report", head)
    assert report.headers["content-type"].startswith("application/vnd.openxmlformats")
    table = [r for r in load_workbook(io.BytesIO(report.content)).active.iter_rows(values_only=True) if r and r[0] in {t["id"] for t in tickets.values()}]
    assert sorted((r[2], r[5]) for r in table) == [("procedure", datetime(2025, 5, 20, 23, 59, 59)), ("service_conditions", datetime(2025, 5, 6, 23, 59, 59))]


def test_the_calendar_api_counts_working_days_and_shows_its_sources(workflow: Workflow) -> None:
    assert workflow.get("/v1/calendar/working-days", None, **{"from": "2025-04-25", "to": "2025-05-06"}).json()["working_days"] == 5
    added = workflow.get("/v1/calendar/add", None, start="2025-12-31", days=15).json()
    assert (added["date"], added["deadline"]) == ("2026-01-22", "2026-01-22T23:59:59+07:00")
    moment = workflow.get("/v1/calendar/add", None, start="2025-04-24T23:30:00Z", days=5).json()  # already Fri 25 Apr in Hà Nội
    assert moment["date"] == "2025-05-06"
    days = {h["date"]: h for h in workflow.get("/v1/calendar/holidays", None, year=2026).json()["items"]}
    assert days["2026-08-22"]["working_day"] and not days["2026-08-31"]["working_day"] and not days["2026-11-24"]["working_day"]
    assert workflow.get("/v1/calendar/overlay", None).json()["file"] == "calendar_overlay.json"
    for params, field in (({"start": "yesterday", "days": 1}, "query.start"), ({"start": "2025-01-01", "days": -1}, "query.days"),
                          ({"start": "2025-01-01T09:00:00", "days": 1}, "query.start")):
        bad = workflow.get("/v1/calendar/add", None, **params)
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json", params
        assert field in [e["field"] for e in bad.json()["errors"]], bad.json()
    rules = workflow.get("/v1/rules", None).json()
    assert rules["working_days"]["service_conditions"] == 5 and rules["dispute_answer_working_days"] == 7


def test_two_replicas_running_the_duties_at_once_do_each_duty_once(workflow: Workflow) -> None:
    tickets = _two_tickets(workflow)
    october = datetime(2025, 10, 10, 9, tzinfo=VIETNAM)
    workflow.send(*[ev.rating("79.SNV", overall="satisfied", channel="portal", completed_at=october, time=october) for _ in range(8)])
    wait_until(lambda: len(workflow.sql(sa.select(store.online_ratings))) == 8, timeout=60, what="online ratings recorded")

    async def two_replicas(now: datetime) -> list[DutyReport]:
        other = create_engine_for(workflow.settings.database_url_for("workflow"), "workflow")
        try:
            return list(await asyncio.gather(run_duties(workflow.runtime.engine, workflow.settings, now),
                                             run_duties(other, workflow.settings, now)))
        finally:
            await other.dispose()

    for now in (vn(2025, 4, 29, 9), vn(2025, 5, 21, 9), vn(2025, 11, 20, 9)):  # remind; breach both; sample October
        workflow.clock.now = now
        reports = workflow.client.portal.call(two_replicas, now)  # type: ignore[union-attr]
        if now.month == 4:
            assert sorted(r for report in reports for r in report.reminded) == [tickets["service_conditions"]["id"]]
        if now.month == 5:
            assert sorted(b for report in reports for b in report.breached) == sorted(t["id"] for t in tickets.values())
        if now.month == 11:
            assert sum(report.sampled.get("2025-10", 0) for report in reports) == 2
    notes = store.notifications
    kinds = sorted(k for (k,) in workflow.sql(sa.select(notes.c.kind).where(notes.c.channel == "webhook")))
    assert kinds == ["breached", "breached", "due_soon", "escalated", "escalated", "opened", "opened"]
    history = workflow.sql(sa.select(store.ticket_history.c.action).where(store.ticket_history.c.action == "breach"))
    assert len(history) == 2


def test_figures_delivered_again_or_out_of_order_change_nothing_and_leave_no_processed_rows(workflow: Workflow) -> None:
    """Scores are kept by version (the newest holds), so workflow remembers no event id for them: a re-sent or
    older figure is absorbed by the version, and a busy second's thousand figures write no processed_events rows."""
    newer = ev.unit_score("79.SNV", "2026-11", "satisfied", time=T0, version=5, score=21.0)
    older = ev.unit_score("79.SNV", "2026-11", "not_satisfied", time=T0, version=4, score=12.0)
    last = ev.unit_score("79.SNV", "2026-10", "satisfied", time=T0, version=1)  # same key, same partition: applied after them
    workflow.send(newer, older, newer, last)

    def stored(period: str) -> list[Any]:
        scores = store.scores
        return workflow.sql(sa.select(scores.c.version, scores.c.score, scores.c.band).where(
            scores.c.subject_id == "79.SNV", scores.c.period == period))

    wait_until(lambda: stored("2026-10"), what="the last figure stored")
    assert stored("2026-11") == [(5, 21.0, "satisfied")]
    remembered = {row[0] for row in workflow.sql(sa.select(store.bus.processed_events.c.event_id))}
    assert remembered, "registry events are still remembered by id"
    assert not {newer.id, older.id, last.id} & remembered
