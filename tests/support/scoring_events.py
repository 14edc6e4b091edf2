"""Scoring test helpers: the contract's events built with shared.events, and applying them as the runner does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from services.scoring.domain.counters import COUNTERS
from services.scoring.domain.periods import months_of
from services.scoring.handlers import HANDLERS, apply_scoring_batch
from services.scoring.projection import rebuild_counters
from shared import events
from shared.bus.consumer import Tx
from tests.support.infra import Backend

VN = timezone(timedelta(hours=7))
SOURCE = "/test"


def at(text: str) -> datetime:
    """A local time in Việt Nam, e.g. at("2026-11-18 10:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def unit(code: str, parent: str | None = None, level: str = "ward", name: str | None = None) -> events.CloudEvent:
    data = events.UnitUpserted(code=code, name=name or f"Unit {code}", level=level, parent_code=parent)  # type: ignore[arg-type]
    return events.new_event(events.UNIT_UPSERTED, SOURCE, code, data)


def officer(officer_id: str, unit_code: str) -> events.CloudEvent:
    data = events.OfficerUpserted(officer_id=officer_id, unit_code=unit_code, name=f"Officer {officer_id}")
    return events.new_event(events.OFFICER_UPSERTED, SOURCE, unit_code, data)


def dossier(
    code: str, unit_code: str = "79.P1", *, completed: str = "2026-11-18 10:00", due: str = "2026-11-19 17:00",
    received: str = "2026-11-10 08:00", revision: int = 1, officers: Sequence[str] = (), **fields: Any,
) -> events.CloudEvent:
    data = events.DossierCompleted(
        dossier_code=code, unit_code=unit_code, procedure_code="1.004227", channel=fields.pop("channel", "in_person"),
        received_at=at(received), due_at=at(due), completed_at=at(completed), result=fields.pop("result", "approved"),
        revision=revision, officer_ids=list(officers), **fields,
    )
    return events.new_event(events.DOSSIER_COMPLETED, SOURCE, unit_code, data)


def rating(
    dossier_code: str, unit_code: str = "79.P1", overall: str = "satisfied", *, completed: str = "2026-11-18 10:00",
    rating_id: str | None = None, flagged: bool = False, officers: Sequence[str] = (), **fields: Any,
) -> events.CloudEvent:
    completed_at = at(completed)
    values: dict[str, Any] = dict(
        rating_id=rating_id or str(uuid.uuid4()), dossier_code=dossier_code, unit_code=unit_code, channel=fields.pop("channel", "kiosk"),
        submitted_at=completed_at + timedelta(minutes=2), dossier_completed_at=completed_at, overall=overall,
        officer_ids=list(officers), **fields,
    )
    if flagged:
        data: events.EventData = events.RatingFlagged(**values, flags=[events.Flag(rule="staff_device", detail="device of an officer")])
        return events.new_event(events.RATING_FLAGGED, SOURCE, unit_code, data)
    return events.new_event(events.RATING_ACCEPTED, SOURCE, unit_code, events.RatingAccepted(**values))


def verdict(rating_id: str, dossier_code: str, verdict: str, unit_code: str = "79.P1", when: str = "2026-11-25 09:00") -> events.CloudEvent:
    data = events.RatingVerified(
        task_id=str(uuid.uuid4()), rating_id=rating_id, dossier_code=dossier_code, unit_code=unit_code,
        verdict=verdict, reason="flagged", verified_at=at(when),  # type: ignore[arg-type]
    )
    return events.new_event(events.RATING_VERIFIED, SOURCE, unit_code, data)


def assessment(unit_code: str, period: str, *, time: datetime | None = None, **fields: Any) -> events.CloudEvent:
    event = events.new_event(events.ASSESSMENT_RECORDED, SOURCE, unit_code, events.AssessmentRecorded(unit_code=unit_code, period=period, **fields))
    return event.model_copy(update={"time": time}) if time else event


def rating_id_of(event: events.CloudEvent) -> str:
    return str(event.data["rating_id"])


async def scoring_engine(backend: Backend) -> AsyncEngine:
    return await backend.migrated_engine("scoring")


async def apply(engine: AsyncEngine, batch: Iterable[events.CloudEvent], prefix: str = "t.") -> list[str]:
    """One consumed batch: every handler, then the before-commit hook, in one transaction (as ConsumerRunner)."""
    async with engine.begin() as conn:
        tx = Tx(conn, store.bus, prefix)
        for event in batch:
            await HANDLERS[event.type](event, event.parsed_data(), tx)
        await apply_scoring_batch(tx)
    return tx.emitted


async def apply_each(engine: AsyncEngine, batches: Iterable[Iterable[events.CloudEvent]], prefix: str = "t.") -> None:
    for batch in batches:
        await apply(engine, batch, prefix)


async def counters(engine: AsyncEngine, unit_code: str, period: str) -> dict[str, int]:
    """A unit's counters for any period (summed from its months, as the score publisher does), zeros left out."""
    table = store.counters
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(table).where(table.c.unit_code == unit_code, table.c.month.in_(months_of(period))))).all()
    total: dict[str, int] = {}
    for row in rows:
        for name in COUNTERS:
            total[name] = total.get(name, 0) + getattr(row, name)
    return {k: v for k, v in total.items() if v}


async def _all(engine: AsyncEngine, table: sa.Table, key: str) -> dict[tuple[str, str], dict[str, int]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(table))).all()
    out = {}
    for row in rows:
        values = {name: getattr(row, name) for name in COUNTERS if getattr(row, name)}
        if values:
            out[(getattr(row, key), row.month)] = values
    return out


async def all_counters(engine: AsyncEngine) -> dict[tuple[str, str], dict[str, int]]:
    return await _all(engine, store.counters, "unit_code")


async def all_officer_counters(engine: AsyncEngine) -> dict[tuple[str, str], dict[str, int]]:
    return await _all(engine, store.officer_counters, "officer_id")


async def rebuild(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await rebuild_counters(conn)


async def figure(engine: AsyncEngine, unit_code: str, period: str, profile: str) -> Any:
    async with engine.connect() as conn:
        return await store.unit_figure(conn, unit_code, period, profile)


async def outbox_events(engine: AsyncEngine, event_type: str | None = None) -> list[dict[str, Any]]:
    """The events scoring wrote to its outbox, in order, each validated against its schema."""
    import orjson

    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(store.bus.outbox.c.value).order_by(store.bus.outbox.c.id))).all()
    for row in rows:  # every event scoring writes must parse under the contract's schemas
        events.CloudEvent.from_bytes(row.value).parsed_data()
    found = [orjson.loads(r.value) for r in rows]
    return [e for e in found if event_type is None or e["type"] == event_type]


async def clear_scoring_state(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in reversed(store.metadata.sorted_tables):
            await conn.execute(table.delete())
