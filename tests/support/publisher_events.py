"""Events the publisher consumes, built with shared.events and produced onto the real broker (publisher tests)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer

from shared import events, topics

UPDATED_AT = datetime(2026, 11, 18, 3, 0, tzinfo=timezone.utc)


def unit(code: str, level: str = "department", parent: str | None = "79", name: str | None = None,
         lat: float | None = None, lon: float | None = None, **extra: object) -> tuple[str, str, events.CloudEvent]:
    data = events.UnitUpserted(code=code, name=name or f"Đơn vị {code}", level=level, parent_code=parent, lat=lat, lon=lon, **extra)
    return topics.UNITS, code, events.new_event(events.UNIT_UPSERTED, "/test/intake", code, data)


def score(code: str, version: int, value: float | None = 90.0, ratings: int = 10, period: str = "2026-11",
          profile: str = "satisfied-share", band: str | None = None, provisional: bool = False,
          max_score: float = 100.0) -> tuple[str, str, events.CloudEvent]:
    band = band or ("insufficient_data" if ratings < 5 else "satisfied" if (value or 0) >= 80 else "not_satisfied")
    data = events.ScoreChanged(
        unit_code=code, period=period, profile=profile, score=value, max_score=max_score, band=band,
        components={"satisfied": ratings, "ratings": ratings}, ratings=ratings, dossiers=ratings, version=version,
        updated_at=UPDATED_AT + timedelta(seconds=version), provisional=provisional,
    )
    return topics.SCORES, code, events.new_event(events.SCORE_CHANGED, "/test/scoring", code, data)


def officer(code: str, officer_id: str, name: str) -> tuple[str, str, events.CloudEvent]:
    data = events.OfficerUpserted(officer_id=officer_id, unit_code=code, name=name)
    return topics.UNITS, f"{code}/officers/{officer_id}", events.new_event(events.OFFICER_UPSERTED, "/test/intake", code, data)


def officer_score(code: str, officer_id: str, value: float) -> tuple[str, str, events.CloudEvent]:
    data = events.OfficerScoreChanged(
        officer_id=officer_id, unit_code=code, period="2026-11", profile="satisfied-share", score=value, max_score=100.0,
        band="satisfied", components={"officer_id": officer_id}, ratings=7, version=1, updated_at=UPDATED_AT,
    )
    return topics.SCORES, code, events.new_event(events.OFFICER_SCORE_CHANGED, "/test/scoring", code, data)


def ticket(ticket_id: str, code: str, status: str, opened_at: datetime, due_at: datetime,
           kind: str = events.TICKET_UPDATED, **changes: object) -> tuple[str, str, events.CloudEvent]:
    data = events.TicketEvent(
        ticket_id=ticket_id, unit_code=code, category=str(changes.pop("category", "procedure")), source="rating",
        severity="normal", status=status, period="2026-11", opened_at=opened_at, due_at=due_at,
        rating_ids=["rating-that-must-stay-private"], **changes,  # type: ignore[arg-type]
    )
    return topics.TICKETS, code, events.new_event(kind, "/test/workflow", code, data)


def produce(bootstrap: str, prefix: str, records: list[tuple[str, str, events.CloudEvent]]) -> None:
    """Write CloudEvents to the real broker, keyed as the contract says (by unit code), in order."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            for base_topic, key, event in records:
                await producer.send_and_wait(f"{prefix}{base_topic}", value=event.to_bytes(), key=key.encode())
        finally:
            await producer.stop()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(send())
        return
    # Called where a loop already runs (Playwright's sync API keeps one): produce from a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(send())).result()
