"""Helpers for workflow's tests: the events it consumes, built with shared.events and produced onto the
real broker, and a real SMTP server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from shared import events, topics
from tests.support.infra import free_port

SOURCE = "/test"


def at(event: events.CloudEvent, moment: datetime) -> events.CloudEvent:
    """The same event, stamped as accepted at `moment` (ticket clocks start at the event's time)."""
    return event.model_copy(update={"time": moment})


def rating(unit_code: str, *, overall: str = "dissatisfied", reasons: tuple[str, ...] = (), channel: str = "kiosk",
           completed_at: datetime, time: datetime, rating_id: str | None = None, flagged: bool = False,
           supersedes: str | None = None) -> events.CloudEvent:
    fields: dict[str, Any] = dict(
        rating_id=rating_id or str(uuid.uuid4()), dossier_code=f"D-{uuid.uuid4().hex[:10]}", unit_code=unit_code,
        officer_ids=[f"{unit_code}.CB0012"], channel=channel, submitted_at=completed_at + timedelta(minutes=2),
        dossier_completed_at=completed_at, overall=overall, attitude="bad" if "attitude" in reasons else "good",
        reasons=list(reasons), respondent_hash="ab" * 32, supersedes=supersedes,
    )
    if flagged:
        data: events.EventData = events.RatingFlagged(**fields, flags=[events.Flag(rule="staff_device", detail="officer's kiosk")])
        kind = events.RATING_FLAGGED
    else:
        data, kind = events.RatingAccepted(**fields), events.RATING_ACCEPTED
    return at(events.new_event(kind, SOURCE, unit_code, data), time)


def dossier(unit_code: str, *, due_at: datetime, completed_at: datetime, time: datetime, code: str | None = None) -> events.CloudEvent:
    data = events.DossierCompleted(
        dossier_code=code or f"H29-{uuid.uuid4().hex[:8]}", unit_code=unit_code, procedure_code="1.004227",
        channel="in_person", received_at=due_at - timedelta(days=10), due_at=due_at, completed_at=completed_at, result="approved",
    )
    return at(events.new_event(events.DOSSIER_COMPLETED, SOURCE, unit_code, data), time)


def unit(code: str, name: str, level: str = "department", parent: str | None = None) -> events.CloudEvent:
    return events.new_event(events.UNIT_UPSERTED, SOURCE, code, events.UnitUpserted(code=code, name=name, level=level, parent_code=parent))


def officer(officer_id: str, unit_code: str, name: str) -> events.CloudEvent:
    return events.new_event(events.OFFICER_UPSERTED, SOURCE, unit_code,
                            events.OfficerUpserted(officer_id=officer_id, unit_code=unit_code, name=name))


def unit_score(unit_code: str, period: str, band: str, *, time: datetime, profile: str = "hcmc-2024", version: int = 1,
               score: float = 19.5) -> events.CloudEvent:
    data = events.ScoreChanged(unit_code=unit_code, period=period, profile=profile, score=score, max_score=22, band=band,
                               components={}, ratings=40, dossiers=40, version=version, updated_at=time)
    return at(events.new_event(events.SCORE_CHANGED, SOURCE, unit_code, data), time)


def officer_score(officer_id: str, unit_code: str, period: str, band: str, *, time: datetime, profile: str = "hcmc-2024") -> events.CloudEvent:
    data = events.OfficerScoreChanged(officer_id=officer_id, unit_code=unit_code, period=period, profile=profile, score=0.5,
                                      max_score=1, band=band, components={}, ratings=30, version=1, updated_at=time)
    return at(events.new_event(events.OFFICER_SCORE_CHANGED, SOURCE, unit_code, data), time)


def crossing(unit_code: str, period: str, *, time: datetime, direction: str = "became_not_satisfied") -> events.CloudEvent:
    data = events.ScoreThresholdCrossed(unit_code=unit_code, period=period, profile="hcmc-2024", direction=direction,
                                        score=19.8, band="not_satisfied", version=3, at=time)
    return at(events.new_event(events.SCORE_THRESHOLD_CROSSED, SOURCE, unit_code, data), time)


TOPIC_OF = {
    events.UNIT_UPSERTED: topics.UNITS, events.OFFICER_UPSERTED: topics.UNITS, events.DOSSIER_COMPLETED: topics.DOSSIERS,
    events.RATING_ACCEPTED: topics.RATINGS, events.RATING_FLAGGED: topics.RATINGS, events.SCORE_CHANGED: topics.SCORES,
    events.OFFICER_SCORE_CHANGED: topics.SCORES, events.SCORE_THRESHOLD_CROSSED: topics.SCORES,
}


def produce(bootstrap: str, prefix: str, *batch: events.CloudEvent) -> None:
    """Write events to their topics on the real broker, keyed by unit code as intake and scoring do."""
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            for event in batch:
                await producer.send_and_wait(f"{prefix}{TOPIC_OF[event.type]}", value=event.to_bytes(), key=(event.subject or "").encode())
        finally:
            await producer.stop()

    asyncio.run(send())


@dataclass
class SmtpSink:
    """A real SMTP server on a free port; `messages` holds what it accepted."""

    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=policy.default)  # decodes the Vietnamese subject
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if address in m["X-Envelope-To"]]

    def close(self) -> None:
        self.controller.stop()


@dataclass
class WebhookSink:
    """A real HTTP server taking the optional notification webhook's POSTs."""

    port: int = field(default_factory=free_port)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hailong"

    def close(self) -> None:
        self.server.shutdown()
