"""Intake's write flows: each runs in one transaction that stores the state and its outbox events."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import store
from services.intake.domain.rules import ACCEPTED, PENDING_DOSSIER, RatingRejected, rating_status
from services.intake.schemas import DossierIn, RatingIn, UnitIn
from shared import events, topics
from shared.auth import Principal, respondent_hash
from shared.bus.outbox import add_to_outbox
from shared.db import upsert
from shared.problems import Problem
from shared.settings import Settings

SOURCE = "/hailong/intake"
MAX_UNIT_DEPTH = 12


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _emit(conn: AsyncConnection, settings: Settings, base_topic: str, key: str, event: events.CloudEvent, traceparent: str | None) -> None:
    headers = {"traceparent": events.new_traceparent(traceparent)}
    await add_to_outbox(conn, store.bus, settings.topic(base_topic), key, event, headers=headers)


async def upsert_unit(conn: AsyncConnection, settings: Settings, code: str, unit: UnitIn, traceparent: str | None = None) -> dict[str, Any]:
    row = {
        "code": code,
        "name": unit.name,
        "level": unit.level,
        "parent_code": unit.parent_code,
        "lat": unit.lat,
        "lon": unit.lon,
        "valid_from": unit.valid_from.isoformat() if unit.valid_from else None,
        "valid_to": unit.valid_to.isoformat() if unit.valid_to else None,
        "successor_code": unit.successor_code,
    }
    await conn.execute(upsert(store.units, {**row, "updated_at": _now()}, ["code"], conn.dialect.name))
    event = events.new_event(events.UNIT_UPSERTED, SOURCE, code, events.UnitUpserted(**row))
    await _emit(conn, settings, topics.UNITS, code, event, traceparent)
    return row


async def unit_within_scope(conn: AsyncConnection, unit_code: str, scope: str | None) -> bool:
    """True when `unit_code` is `scope` or lies below it in the registry."""
    if scope is None:
        return True
    current: str | None = unit_code
    for _ in range(MAX_UNIT_DEPTH):
        if current is None:
            return False
        if current == scope:
            return True
        current = await conn.scalar(sa.select(store.units.c.parent_code).where(store.units.c.code == current))
    return False


async def record_dossier(conn: AsyncConnection, settings: Settings, dossier: DossierIn, traceparent: str | None = None) -> tuple[int, int]:
    """Upsert by dossier code; a correction bumps the revision and is re-emitted so scoring re-scores it.

    Returns (revision, ratings released from pending_dossier).
    """
    fields = dossier.model_dump()
    previous = (await conn.execute(sa.select(store.dossiers).where(store.dossiers.c.dossier_code == dossier.dossier_code))).first()
    if previous is not None and all(getattr(previous, k) == v for k, v in fields.items()):
        return previous.revision, 0  # an identical re-send changes nothing
    revision = 1 if previous is None else previous.revision + 1
    await conn.execute(
        upsert(store.dossiers, {**fields, "revision": revision, "updated_at": _now()}, ["dossier_code"], conn.dialect.name)
    )
    event = events.new_event(
        events.DOSSIER_COMPLETED, SOURCE, dossier.unit_code, events.DossierCompleted(**fields, revision=revision)
    )
    await _emit(conn, settings, topics.DOSSIERS, dossier.unit_code, event, traceparent)
    released = await _release_pending_ratings(conn, settings, dossier, traceparent)
    return revision, released




async def _release_pending_ratings(conn: AsyncConnection, settings: Settings, dossier: DossierIn, traceparent: str | None) -> int:
    pending = (
        await conn.execute(
            sa.select(store.ratings).where(
                store.ratings.c.dossier_code == dossier.dossier_code, store.ratings.c.status == PENDING_DOSSIER
            )
        )
    ).all()
    released = 0
    for rating in pending:
        submitted_at = rating.submitted_at
        status = ACCEPTED if submitted_at >= dossier.completed_at else "rejected_before_completion"
        await conn.execute(store.ratings.update().where(store.ratings.c.rating_id == rating.rating_id).values(status=status))
        if status == ACCEPTED:
            await _emit_rating(conn, settings, rating._mapping, dossier, traceparent)
            released += 1
    return released



async def _emit_rating(conn: AsyncConnection, settings: Settings, rating: Any, dossier: DossierIn | Any, traceparent: str | None) -> None:
    data = events.RatingAccepted(
        rating_id=rating["rating_id"],
        dossier_code=rating["dossier_code"],
        unit_code=dossier.unit_code,
        officer_ids=list(dossier.officer_ids or []),
        channel=rating["channel"],
        submitted_at=rating["submitted_at"],
        dossier_completed_at=dossier.completed_at,
        overall=rating["overall"],
        attitude=rating["attitude"],
        criteria=rating["criteria"],
        reasons=rating["reasons"] or [],
        respondent_hash=rating["respondent_hash"],
    )
    event = events.new_event(events.RATING_ACCEPTED, SOURCE, dossier.unit_code, data)
    await _emit(conn, settings, topics.RATINGS, dossier.unit_code, event, traceparent)


async def record_rating(
    conn: AsyncConnection, settings: Settings, principal: Principal, rating: RatingIn, hash_key: str, traceparent: str | None = None
) -> tuple[str, str]:
    """Store a rating and, when its dossier is known, its accepted event. Returns (rating_id, status)."""
    if rating.dossier is not None:
        await _check_scope(conn, principal, rating.dossier.unit_code)
        await record_dossier(conn, settings, rating.dossier, traceparent)
    dossier = (await conn.execute(sa.select(store.dossiers).where(store.dossiers.c.dossier_code == rating.dossier_code))).first()
    if dossier is not None:
        await _check_scope(conn, principal, dossier.unit_code)
    try:
        status = rating_status(dossier.completed_at if dossier else None, rating.submitted_at)
    except RatingRejected as exc:
        raise Problem(422, "Rating contradicts its dossier", str(exc), errors=[{"field": f"body.{exc.field}", "message": str(exc)}]) from exc

    first = await conn.scalar(
        sa.select(store.ratings.c.rating_id).where(
            store.ratings.c.dossier_code == rating.dossier_code, store.ratings.c.channel == rating.channel
        )
    )
    if first is not None:
        raise Problem(
            409, "Dossier already rated on this channel",
            f"dossier {rating.dossier_code} already has a rating from channel {rating.channel}",
            first_rating_id=first,
        )
    respondent = rating.respondent
    identity = (respondent.phone or respondent.id_number) if respondent else None
    row = {
        "rating_id": str(uuid.uuid4()),
        "dossier_code": rating.dossier_code,
        "channel": rating.channel,
        "device_id": rating.device_id,
        "submitted_at": rating.submitted_at,
        "overall": rating.overall,
        "attitude": rating.attitude,
        "criteria": rating.criteria.model_dump(exclude_none=True) if rating.criteria else None,
        "reasons": list(rating.reasons),
        "comment": rating.comment or None,
        "respondent_hash": respondent_hash(hash_key, identity) if identity else None,
        "status": status,
        "received_from": principal.subject,
        "created_at": _now(),
    }
    await conn.execute(store.ratings.insert().values(**row))
    if status == ACCEPTED:
        await _emit_rating(conn, settings, row, dossier, traceparent)
    return row["rating_id"], status


async def _check_scope(conn: AsyncConnection, principal: Principal, unit_code: str) -> None:
    if not await unit_within_scope(conn, unit_code, principal.unit_scope):
        raise Problem(403, "Outside your unit", f"unit {unit_code} is outside the scope {principal.unit_scope} of this key")


def request_fingerprint(body: bytes) -> str:
    """Same key + same body → same answer; the body is compared canonically (key order ignored)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def stored_response(conn: AsyncConnection, principal: Principal, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    row = (
        await conn.execute(
            sa.select(store.idempotency_keys).where(
                store.idempotency_keys.c.principal == principal.subject, store.idempotency_keys.c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise Problem(409, "Idempotency key reused", "this Idempotency-Key was used with a different body")
    return row.status_code, row.response


async def remember_response(conn: AsyncConnection, principal: Principal, key: str, fingerprint: str, status_code: int, response: dict[str, Any]) -> None:
    await conn.execute(
        store.idempotency_keys.insert().values(
            principal=principal.subject, key=key, request_hash=fingerprint, status_code=status_code,
            response=response, created_at=_now(),
        )
    )


async def load_units(conn: AsyncConnection, settings: Settings, units: list[tuple[str, UnitIn]]) -> int:
    """Upsert many units, emitting an event only for those that are new or changed. Returns that count."""
    existing = {row.code: row for row in (await conn.execute(sa.select(store.units))).all()}
    changed = 0
    for code, unit in units:
        current = existing.get(code)
        if current is not None and all(
            getattr(current, field) == value
            for field, value in unit.model_dump(exclude={"code"}, mode="json").items()
        ):
            continue
        await upsert_unit(conn, settings, code, unit)
        changed += 1
    return changed
