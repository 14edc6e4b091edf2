"""Workflow as a real process on the real broker: tickets from a kiosk rating, a burst that attaches, a breach
that escalates and mails through a real SMTP server, a sampled rating found not genuine told on
verifications.v1 — and a kill -9 in the middle that makes no duty happen twice."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path


import pytest

from shared.periods import VIETNAM
from tests.support import workflow as ev
from tests.support.infra import Backend, ServiceProcess, cli, cloud_events, read_topic, service_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
HEAD_MAIL = "giamdoc.snv@example.gov.vn"
HOME_AFFAIRS_MAIL = "sonoivu@example.gov.vn"
T0 = datetime(2025, 4, 25, 9, 0, tzinfo=VIETNAM)  # Fri 25 Apr 2025 (DOMAIN.md's worked example)


def test_tickets_burst_breach_escalation_mail_and_phuc_tra(kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path) -> None:
    smtp = ev.SmtpSink()
    env = service_env(
        backend, kafka_broker.bootstrap, topic_prefix, HAILONG_SMTP_HOST="127.0.0.1", HAILONG_SMTP_PORT=str(smtp.port),
        HAILONG_HOME_AFFAIRS_EMAIL=HOME_AFFAIRS_MAIL, HAILONG_WORKFLOW_TICK_SECONDS="1",
    )
    # First without phúc tra being due (a long delay), so the sample is drawn after a restart with all ratings in.
    workflow = ServiceProcess("workflow", {**env, "HAILONG_VERIFICATION_SAMPLE_DELAY_WORKING_DAYS": "600"}, tmp_path / "logs")
    try:
        workflow.start()
        workflow.wait_ready()
        admin, inspector = cli(env, "token", "admin"), cli(env, "token", "inspector")
        ev.produce(kafka_broker.bootstrap, topic_prefix, ev.unit("79", "TP. Hồ Chí Minh", "province"),
                   ev.unit("79.SNV", "Sở Nội vụ", parent="79"))
        assert workflow.send("PUT", "/v1/units/79.SNV/contact", admin, {"head_email": HEAD_MAIL}).status_code == 200

        def tickets() -> list[dict]:
            return workflow.get("/v1/tickets", admin, unit_code="79.SNV").json()["items"]

        completed = T0 - timedelta(hours=18)
        first = ev.rating("79.SNV", reasons=("attitude", "documents"), channel="kiosk", completed_at=completed, time=T0)
        ev.produce(kafka_broker.bootstrap, topic_prefix, first)
        two = wait_until(lambda: len(items := tickets()) == 2 and items, timeout=60, what="two tickets")
        opened = {t["category"]: t for t in two}
        # 5 working days from Fri 25 Apr 2025 → Tue 6 May; 15 → Tue 20 May (Sat 26 Apr worked; 30 Apr - 2 May off).
        assert opened["service_conditions"]["due_at"] == "2025-05-06T23:59:59+07:00"
        assert opened["procedure"]["due_at"] == "2025-05-20T23:59:59+07:00"

        burst = [ev.rating("79.SNV", reasons=("attitude", "documents"), completed_at=completed, time=T0 + timedelta(minutes=i))
                 for i in range(50)]
        ev.produce(kafka_broker.bootstrap, topic_prefix, *burst)
        wait_until(lambda: [t["rating_count"] for t in tickets()] == [51, 51], timeout=90, what="the burst attached to both tickets")
        assert {t["id"] for t in tickets()} == {t["id"] for t in opened.values()}

        # Both deadlines are long past on the real clock: the duty worker breaches, escalates and mails.
        def escalated() -> list[dict]:
            items = tickets()
            return items if all(t["escalated_to"] == "home_affairs" for t in items) else []

        breached = wait_until(escalated, timeout=60, what="both tickets breached and escalated")
        assert all(t["breached"] and t["status"] == "open" for t in breached)
        wait_until(lambda: len(smtp.to(HEAD_MAIL)) == 4 and len(smtp.to(HOME_AFFAIRS_MAIL)) == 2, timeout=60,
                   what="opened and breach mails to the unit head, escalation mails to Home Affairs")
        subjects = sorted(str(m["Subject"]).split(":")[0] for m in smtp.to(HEAD_MAIL))
        assert subjects == ["[Hài Lòng] Phiếu khắc phục mới / New remediation ticket"] * 2 + ["[Hài Lòng] Quá hạn / Deadline missed"] * 2

        # Portal ratings of a month two months back (its sample is due on the real clock), and a dissatisfied one
        # whose ticket shows that all of them were consumed (one unit: one partition, in order).
        today = datetime.now(VIETNAM)
        month = (today.replace(day=1) - timedelta(days=32)).replace(day=10, hour=9, minute=0, second=0, microsecond=0)
        portal = [ev.rating("79.SNV", overall="satisfied", channel="portal", completed_at=month, time=month) for _ in range(8)]
        marker = ev.rating("79.SNV", reasons=("equipment",), channel="portal", completed_at=month, time=month)
        ev.produce(kafka_broker.bootstrap, topic_prefix, *portal, marker)
        period = f"{month.year}-{month.month:02d}"
        wait_until(lambda: workflow.get("/v1/tickets", admin, unit_code="79.SNV", category="service_conditions").json()["items"][-1]["period"] == period,
                   timeout=60, what="the month's ratings consumed")
        assert workflow.get("/v1/verifications", inspector, period=period).json()["items"] == []

        # kill -9 and restart with the sample due: ⌈25% of 9⌉ = 3 tasks; nothing is breached or mailed twice.
        workflow.kill()
        workflow = ServiceProcess("workflow", env, tmp_path / "logs").start()
        workflow.wait_ready()
        sampled = wait_until(lambda: len(items := workflow.get("/v1/verifications", inspector, period=period).json()["items"]) == 3 and items,
                             timeout=90, what="the month's phúc tra sample")
        assert {t["rating_id"] for t in sampled} <= {e.data["rating_id"] for e in [*portal, marker]}
        task = sampled[0]
        answer = workflow.send("POST", f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "not_genuine", "note": "no such call"})
        assert answer.status_code == 200, answer.text
        verified = [e for e in cloud_events(read_topic(kafka_broker.bootstrap, f"{topic_prefix}verifications.v1", 1, timeout=30))
                    if e["data"]["task_id"] == task["id"]]
        assert len(verified) == 1 and verified[0]["subject"] == "79.SNV"
        assert (verified[0]["data"]["rating_id"], verified[0]["data"]["verdict"], verified[0]["data"]["reason"]) == (task["rating_id"], "not_genuine", "sample")

        # The marker's own ticket (two months old) was opened, breached and escalated too: 6 and 3 mails in all.
        wait_until(lambda: len(smtp.to(HEAD_MAIL)) == 6 and len(smtp.to(HOME_AFFAIRS_MAIL)) == 3, timeout=60, what="the marker's mails")
        workflow.kill()
        workflow.start()
        workflow.wait_ready()
        time.sleep(3)  # three ticks of the restarted worker: anything done twice would show now
        assert len(workflow.get("/v1/verifications", inspector, period=period).json()["items"]) == 3
        assert len(smtp.to(HEAD_MAIL)) == 6 and len(smtp.to(HOME_AFFAIRS_MAIL)) == 3
        history = workflow.get(f"/v1/tickets/{opened['procedure']['id']}", admin).json()["history"]
        assert [h["action"] for h in history] == ["open", "breach", "escalate"]
        assert workflow.get("/v1/tickets", None).status_code == 401  # the public sees none
    finally:
        workflow.stop()
        smtp.close()
    assert "ab" * 32 not in workflow.log_path.read_text(errors="replace")
