"""Intake's write flows: each runs in the caller's transaction and stores the state with its outbox events.

Ratings and dossiers are handled in bulk (a single post is a batch of one): one query per concern for
the whole batch, not per item, so a portal's batch of 1,000 costs a handful of statements.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import metrics, store
from services.intake.domain.integrity import Evidence, Flag, IntegrityLimits, flags_for
from services.intake.domain.rules import (
    ACCEPTED, AWAITING_DOSSIER, COUNTABLE, FLAGGED, PENDING_DOSSIER, REJECTED_BEFORE_COMPLETION, UNMATCHED,
    RatingRejected, rating_status, status_on_release, unmatched_before,
)
from services.intake.registry import Registry
from services.intake.schemas import AssessmentIn, CorrectionIn, DossierIn, OfficerIn, RatingIn, UnitIn
from shared import events, topics
from shared.auth import Principal, respondent_hash
from shared.bus.consumer import Tx
from shared.bus.outbox import bundled_rows
from shared.db import execute_many, upsert, upsert_statement
from shared.events import CloudEvent
from shared.ids import new_id, new_ids
from shared.problems import Problem
from shared.settings import Settings

SOURCE = "/hailong/intake"
SUPERSEDED = "superseded"  # a held rating corrected before its dossier arrived: never emitted


@dataclass
class Intake:
    """What the write flows need besides the transaction (built once in app.py)."""

    settings: Settings
    hash_key: str
    registry: Registry
    limits: IntegrityLimits

    def hash_identity(self, value: str | None) -> str | None:
        return respondent_hash(self.hash_key, value) if value else None


@dataclass
class ItemError(Exception):
    """One item of a batch refused; a single post turns it into its problem answer."""

    status: int
    title: str
    detail: str
    field_path: str | None = None  # e.g. body.submitted_at
    extra: dict[str, Any] = field(default_factory=dict)

    def as_problem(self) -> Problem:
        errors = [{"field": self.field_path, "message": self.detail}] if self.field_path else None
        extra = {**self.extra, **({"errors": errors} if errors else {})}
        return Problem(self.status, self.title, self.detail, **extra)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "title": self.title, "detail": self.detail}
        if self.field_path:
            body["field"] = self.field_path
        return {**body, **self.extra}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _outbox_row(settings: Settings, base_topic: str, key: str, event: CloudEvent, traceparent: str | None, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event.id, "topic": settings.topic(base_topic), "key": key, "value": event.to_bytes(),
        "headers": {"traceparent": events.new_traceparent(traceparent)}, "created_at": now,
    }


async def _emit(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(store.bus.outbox.insert(), rows)


def _scope_error(principal: Principal, unit_code: str) -> ItemError:
    return ItemError(403, "Outside your unit", f"unit {unit_code} is outside the scope {principal.unit_scope} of this key")


# Statements of the rating hot path, built once: SQLAlchemy compiles and caches each of them once, and the
# IN lists are expanding parameters (no per-value expression objects per call).
_ratings, _slots, _dossiers = store.ratings, store.rating_slots, store.dossiers


def _by_codes(code_column: Any, *columns: Any) -> tuple[Any, Any]:
    """SELECT `columns` of the rows whose `code_column` is among the given codes: (with an expanding IN list,
    parameter `codes`; with the codes as ONE parameter `codes_json`, a JSON array read by SQLite's json_each).
    On SQLite the second does the same index search, and SQLAlchemy no longer renders an IN list of 500
    placeholders on every execution (~2 µs a rating of the event loop's time)."""
    codes = sa.func.json_each(sa.bindparam("codes_json", type_=sa.Text)).table_valued("value")
    return (
        sa.select(*columns).where(code_column.in_(sa.bindparam("codes", expanding=True))),
        sa.select(*columns).where(code_column.in_(sa.select(codes.c.value))),
    )


# officer_ids as its JSON text where the driver gives text (SQLite): parsed once per distinct list in a write
# (a unit's dossiers share few officer lists), not by SQLAlchemy's JSON type once per row.
_DOSSIERS_BY_CODE = _by_codes(
    _dossiers.c.dossier_code, _dossiers.c.dossier_code, _dossiers.c.unit_code, sa.type_coerce(_dossiers.c.officer_ids, sa.Text),
    _dossiers.c.completed_at,
)
_SLOTS_BY_CODE = _by_codes(_slots.c.dossier_code, _slots.c.dossier_code, _slots.c.channel, _slots.c.rating_id)


async def _select_by_codes(conn: AsyncConnection, statements: tuple[Any, Any], codes: list[str]) -> Any:
    if conn.dialect.name == "sqlite":
        return await conn.execute(statements[1], {"codes_json": orjson.dumps(codes).decode()})
    return await conn.execute(statements[0], {"codes": codes})


_DEVICE_RATINGS = sa.select(_ratings.c.rating_id, _ratings.c.device_id, _ratings.c.submitted_at).where(
    _ratings.c.device_id.in_(sa.bindparam("devices", expanding=True)), _ratings.c.submitted_at >= sa.bindparam("earliest"),
    _ratings.c.submitted_at <= sa.bindparam("latest"), _ratings.c.supersedes.is_(None),
)
_INSERT_SLOT = _slots.insert()
_INSERT_RATING = _ratings.insert()
_INSERT_OUTBOX = store.bus.outbox.insert()


@dataclass(frozen=True, slots=True)
class _KnownDossier:
    unit_code: str
    officer_ids: list[str]
    completed_at: datetime


# --- registry ---------------------------------------------------------------------------------------


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
    now = _now()
    await conn.execute(upsert(store.units, {**row, "updated_at": now}, ["code"], conn.dialect.name))
    event = events.new_event(events.UNIT_UPSERTED, SOURCE, code, events.UnitUpserted(**row))
    await _emit(conn, [_outbox_row(settings, topics.UNITS, code, event, traceparent, now)])
    return row


async def load_units(conn: AsyncConnection, settings: Settings, units: list[tuple[str, UnitIn]]) -> int:
    """Upsert many units, emitting an event only for those that are new or changed. Returns that count."""
    existing = {row.code: row for row in (await conn.execute(sa.select(store.units))).all()}
    changed = 0
    for code, unit in units:
        current = existing.get(code)
        if current is not None and all(
            getattr(current, name) == value for name, value in unit.model_dump(exclude={"code"}, mode="json").items()
        ):
            continue
        await upsert_unit(conn, settings, code, unit)
        changed += 1
    return changed


def officer_key(unit_code: str, officer_id: str) -> str:
    """Key on the compacted units.v1: one record per officer survives compaction."""
    return f"{unit_code}/officers/{officer_id}"


async def upsert_officer(
    conn: AsyncConnection, intake: Intake, unit_code: str, officer_id: str, officer: OfficerIn, traceparent: str | None = None
) -> dict[str, Any]:
    if not await conn.scalar(sa.select(sa.func.count()).select_from(store.units).where(store.units.c.code == unit_code)):
        raise Problem(404, "Not found", f"no unit {unit_code}")
    now = _now()
    phone_hash = intake.hash_identity(officer.phone)
    row = {"unit_code": unit_code, "officer_id": officer_id, "name": officer.name, "phone_hash": phone_hash, "active": officer.active}
    await conn.execute(upsert(store.officers, {**row, "updated_at": now}, ["unit_code", "officer_id"], conn.dialect.name))
    devices = store.officer_devices
    await conn.execute(devices.delete().where(devices.c.unit_code == unit_code, devices.c.officer_id == officer_id))
    if officer.device_ids:
        # A device handed to another officer moves with it: the newest registration holds.
        await conn.execute(devices.delete().where(devices.c.device_id.in_(officer.device_ids)))
        await conn.execute(devices.insert(), [{"device_id": d, "unit_code": unit_code, "officer_id": officer_id} for d in officer.device_ids])
    data = events.OfficerUpserted(officer_id=officer_id, unit_code=unit_code, name=officer.name, active=officer.active)
    event = events.new_event(events.OFFICER_UPSERTED, SOURCE, unit_code, data)
    await _emit(conn, [_outbox_row(intake.settings, topics.UNITS, officer_key(unit_code, officer_id), event, traceparent, now)])
    return {
        "unit_code": unit_code, "officer_id": officer_id, "name": officer.name, "device_ids": officer.device_ids,
        "has_phone": phone_hash is not None, "active": officer.active,
    }


# --- dossiers ---------------------------------------------------------------------------------------

DOSSIER_FIELDS = (
    "unit_code", "procedure_code", "procedure_name", "channel", "received_at", "due_at", "completed_at",
    "supplement_requests", "officer_ids", "result", "applicant_contacts", "agencies_contacted", "steps", "complaint",
)


def _dossier_row(dossier: DossierIn) -> dict[str, Any]:
    row = dossier.model_dump(mode="python")
    row["steps"] = [step.model_dump(mode="json") for step in dossier.steps] or None
    return row


@dataclass
class DossierOutcome:
    dossier_code: str
    revision: int
    released_ratings: int = 0


async def record_dossiers(
    conn: AsyncConnection, intake: Intake, principal: Principal, items: list[DossierIn], traceparent: str | None = None
) -> list[DossierOutcome | ItemError]:
    """Upsert by dossier code; a correction bumps the revision and is re-emitted so scoring re-scores it.
    Ratings held for these dossiers are released (or rejected when they predate completion)."""
    results: list[DossierOutcome | ItemError] = []
    codes = list(dict.fromkeys(item.dossier_code for item in items))
    known: dict[str, dict[str, Any]] = {}  # dossier code → its newest row, stored or written by this batch
    for chunk in _chunks(codes, 500):
        for stored in (await conn.execute(sa.select(store.dossiers).where(store.dossiers.c.dossier_code.in_(chunk)))).all():
            known[stored.dossier_code] = dict(stored._mapping)
    writes: dict[str, dict[str, Any]] = {}
    outbox: list[dict[str, Any]] = []
    now = _now()
    for item in items:
        if not intake.registry.within_scope(item.unit_code, principal.unit_scope):
            results.append(_scope_error(principal, item.unit_code))
            continue
        if not intake.registry.has_unit(item.unit_code):
            results.append(ItemError(422, "Unknown unit", f"no unit {item.unit_code} in the registry", "body.unit_code"))
            continue
        row = _dossier_row(item)
        previous = known.get(item.dossier_code)
        if previous is not None and all(previous[name] == row[name] for name in DOSSIER_FIELDS):
            results.append(DossierOutcome(item.dossier_code, previous["revision"]))  # an identical re-send changes nothing
            metrics.DOSSIERS.labels("unchanged").inc()
            continue
        revision = 1 if previous is None else previous["revision"] + 1
        row.update(revision=revision, updated_at=now)
        known[item.dossier_code] = writes[item.dossier_code] = row
        data = events.DossierCompleted(**{k: v for k, v in row.items() if k not in {"updated_at", "steps"}}, steps=[s.model_dump() for s in item.steps])
        event = events.new_event(events.DOSSIER_COMPLETED, SOURCE, item.unit_code, data)
        outbox.append(_outbox_row(intake.settings, topics.DOSSIERS, item.unit_code, event, traceparent, now))
        results.append(DossierOutcome(item.dossier_code, revision))
        metrics.DOSSIERS.labels("new" if revision == 1 else "corrected").inc()
    if writes:
        statement = upsert_statement(store.dossiers, ["dossier_code"], ["dossier_code", *DOSSIER_FIELDS, "revision", "updated_at"], conn.dialect.name)
        # In key order: two batches touching the same dossiers lock their rows in the same order (no deadlock).
        await conn.execute(statement, [writes[code] for code in sorted(writes)])
        await _emit(conn, outbox)
        await _meet(conn, list(writes), now)
        released = await _release_held_ratings(conn, intake, writes, traceparent)
        await conn.execute(store.held_dossiers.delete().where(store.held_dossiers.c.dossier_code.in_(list(writes))))
        for result in results:
            if isinstance(result, DossierOutcome) and result.dossier_code in released and writes.get(result.dossier_code, {}).get("revision") == result.revision:
                result.released_ratings = released.pop(result.dossier_code)
    return results


async def _meet(conn: AsyncConnection, codes: list[str], now: datetime) -> None:
    """Write the meeting rows of `codes` (see store.held_dossiers) before reading the other side."""
    statement = upsert_statement(store.held_dossiers, ["dossier_code"], ["dossier_code", "touched_at"], conn.dialect.name)
    for chunk in _chunks(sorted(codes), 500):  # sorted: two batches lock rows in the same order, no deadlock
        await conn.execute(statement, [{"dossier_code": code, "touched_at": now} for code in chunk])


async def _release_held_ratings(
    conn: AsyncConnection, intake: Intake, dossiers: dict[str, dict[str, Any]], traceparent: str | None
) -> dict[str, int]:
    """Ratings waiting for these dossiers: counted (or flagged) now, or rejected when they predate completion."""
    ratings = store.ratings
    held: list[Any] = []
    for chunk in _chunks(list(dossiers), 500):
        held += (
            await conn.execute(
                sa.select(ratings).where(ratings.c.dossier_code.in_(chunk), ratings.c.status.in_(AWAITING_DOSSIER))
            )
        ).all()
    if not held:
        return {}
    released: dict[str, int] = {}
    candidates: list[Candidate] = []
    for rating in held:
        dossier = dossiers[rating.dossier_code]
        if rating.superseded_by is not None:
            await conn.execute(ratings.update().where(ratings.c.rating_id == rating.rating_id).values(status=SUPERSEDED, unit_code=dossier["unit_code"]))
            continue
        status = status_on_release(dossier["completed_at"], rating.submitted_at)
        metrics.RELEASED.labels(status).inc()
        if status == REJECTED_BEFORE_COMPLETION:
            await conn.execute(ratings.update().where(ratings.c.rating_id == rating.rating_id).values(status=status, unit_code=dossier["unit_code"]))
            # The slot is free again: a genuine rating on this channel may still come.
            await conn.execute(
                store.rating_slots.delete().where(
                    store.rating_slots.c.dossier_code == rating.dossier_code, store.rating_slots.c.channel == rating.channel,
                    store.rating_slots.c.rating_id.in_([rating.rating_id, rating.supersedes or rating.rating_id]),
                )
            )
            continue
        candidates.append(Candidate.from_row(rating._mapping, dossier))
    await _settle(conn, intake, candidates, traceparent)
    for candidate in candidates:
        await conn.execute(
            ratings.update().where(ratings.c.rating_id == candidate.rating_id).values(
                status=candidate.status, unit_code=candidate.unit_code, flags=candidate.flags_json()
            )
        )
        released[candidate.dossier_code] = released.get(candidate.dossier_code, 0) + 1
    return released


# --- ratings ----------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A rating whose dossier is known, about to be counted or flagged."""

    rating_id: str
    dossier_code: str
    channel: str
    device_id: str | None
    submitted_at: datetime
    respondent_hash: str | None
    unit_code: str
    officer_ids: list[str]
    completed_at: datetime
    answers: dict[str, Any]  # overall, attitude, criteria, reasons
    supersedes: str | None = None
    carried_flags: list[Flag] = field(default_factory=list)  # a correction keeps its original's flags
    new_rating: bool = True  # False for a correction: it is not another press of the kiosk
    traceparent: str | None = None
    flags: list[Flag] = field(default_factory=list)
    status: str = ACCEPTED
    row: dict[str, Any] | None = None  # the ratings row being written, when the caller writes it after settling

    @classmethod
    def from_row(cls, row: Any, dossier: dict[str, Any] | Any, traceparent: str | None = None) -> Candidate:
        get = dossier.get if isinstance(dossier, dict) else lambda name: getattr(dossier, name)
        return cls(
            rating_id=row["rating_id"], dossier_code=row["dossier_code"], channel=row["channel"], device_id=row["device_id"],
            submitted_at=row["submitted_at"], respondent_hash=row["respondent_hash"], unit_code=get("unit_code"),
            officer_ids=list(get("officer_ids") or []), completed_at=get("completed_at"),
            answers={k: row[k] for k in ("overall", "attitude", "criteria", "reasons")}, supersedes=row["supersedes"],
            traceparent=traceparent,
        )

    def flags_json(self) -> list[dict[str, str]] | None:
        return [{"rule": f.rule, "detail": f.detail} for f in self.flags] or None

    def event_bytes(self, at: str, event_id: str | None = None) -> tuple[str, bytes]:
        """(event id, CloudEvent JSON) of rating.accepted, or rating.flagged when flagged, built without pydantic
        round trips (the hot path of batches). Every field comes from validated input; tests parse what is
        emitted with the schemas of shared/events.py."""
        data: dict[str, Any] = {
            "rating_id": self.rating_id, "dossier_code": self.dossier_code, "unit_code": self.unit_code,
            "officer_ids": self.officer_ids, "channel": self.channel, "submitted_at": self.submitted_at,
            "dossier_completed_at": self.completed_at, "overall": self.answers["overall"],
            "attitude": self.answers["attitude"], "criteria": self.answers["criteria"],
            "reasons": self.answers["reasons"] or [], "respondent_hash": self.respondent_hash, "supersedes": self.supersedes,
        }
        if self.flags:
            data["flags"] = [{"rule": f.rule, "detail": f.detail} for f in self.flags]
        event_id = event_id or new_id()
        envelope = {
            "specversion": "1.0", "id": event_id, "source": SOURCE,
            "type": events.RATING_FLAGGED if self.flags else events.RATING_ACCEPTED, "subject": self.unit_code,
            "time": at, "datacontenttype": "application/json", "data": {k: v for k, v in data.items() if v is not None},
        }
        return event_id, orjson.dumps(envelope)


def _integrity_flags(intake: Intake, candidate: Candidate, burst: dict[str, int], repeat: dict[str, dict[str, int]]) -> list[Flag]:
    """What the integrity rules find against one rating of a write."""
    if candidate.device_id is None and candidate.respondent_hash is None:
        # Every rule of flags_for needs a device or a respondent: a portal's anonymous rating trips none, and
        # gathering its empty evidence cost ~3 µs a rating of a batch.
        return []
    return flags_for(Evidence(
        unit_code=candidate.unit_code,
        device_id=candidate.device_id,
        device_owner=intake.registry.staff_device(candidate.device_id, candidate.unit_code, candidate.officer_ids),
        phone_owner=intake.registry.staff_phone(candidate.respondent_hash, candidate.unit_code, candidate.officer_ids),
        device_ratings_in_window=burst.get(candidate.rating_id, 0),
        respondent_ratings_per_officer=repeat.get(candidate.rating_id, {}),
    ), intake.limits)


async def _settle(conn: AsyncConnection, intake: Intake, candidates: list[Candidate], traceparent: str | None) -> None:
    """Decide each candidate's flags (Đà Nẵng 5697/2017 Art. 4.2.a), record who it rated, emit its event."""
    if not candidates:
        return
    limits = intake.limits
    fresh = [c for c in candidates if c.new_rating]
    burst = await _device_counts(conn, fresh, timedelta(seconds=limits.burst_window_seconds))
    repeat = await _respondent_counts(conn, fresh, timedelta(days=limits.repeat_window_days))
    now = _now()
    at = now.isoformat()
    headers: dict[str | None, dict[str, str]] = {}  # one span per trace and write, not per event
    flagged: Counter[str] = Counter()
    outbox: list[tuple[str, str, bytes, dict[str, str]]] = []
    event_ids = new_ids(len(candidates))
    for candidate in candidates:
        found = _integrity_flags(intake, candidate, burst, repeat)
        rules = {f.rule for f in found}
        candidate.flags = found + [f for f in candidate.carried_flags if f.rule not in rules]
        candidate.status = FLAGGED if candidate.flags else ACCEPTED
        if found:
            flagged.update(flag.rule for flag in found)
        trace = candidate.traceparent or traceparent
        if trace not in headers:
            headers[trace] = {"traceparent": events.new_traceparent(trace)}
        event_id, value = candidate.event_bytes(at, next(event_ids))
        outbox.append((candidate.unit_code, event_id, value, headers[trace]))
    for rule, count in flagged.items():
        metrics.FLAGS.labels(rule).inc(count)
    officers = [
        {"rating_id": c.rating_id, "officer_id": officer, "respondent_hash": c.respondent_hash, "submitted_at": c.submitted_at}
        for c in fresh if c.respondent_hash for officer in c.officer_ids
    ]
    if officers:
        statement = upsert_statement(store.rating_officers, ["rating_id", "officer_id"], ["rating_id", "officer_id"], conn.dialect.name)
        await execute_many(conn, statement, officers)
    # Bundled: a few outbox rows for the whole write, each event still its own record on the topic.
    await execute_many(conn, _INSERT_OUTBOX, bundled_rows(intake.settings.topic(topics.RATINGS), outbox, now))


async def _device_counts(conn: AsyncConnection, candidates: list[Candidate], window: timedelta) -> dict[str, int]:
    """Per candidate: ratings from its device submitted in the window ending at its own submission, itself included."""
    by_device: dict[str, dict[str, datetime]] = {}
    for c in candidates:
        if c.device_id:
            by_device.setdefault(c.device_id, {})[c.rating_id] = c.submitted_at
    if not by_device:
        return {}
    earliest = min(c.submitted_at for c in candidates if c.device_id) - window
    latest = max(c.submitted_at for c in candidates if c.device_id)
    for chunk in _chunks(list(by_device), 500):
        found = await conn.execute(_DEVICE_RATINGS, {"devices": chunk, "earliest": earliest, "latest": latest})
        for rating_id, device_id, submitted_at in found:
            by_device[device_id].setdefault(rating_id, submitted_at)
    counts: dict[str, int] = {}
    for c in candidates:
        if c.device_id:
            times = by_device[c.device_id].values()
            counts[c.rating_id] = sum(1 for t in times if c.submitted_at - window <= t <= c.submitted_at)
    return counts


async def _respondent_counts(conn: AsyncConnection, candidates: list[Candidate], window: timedelta) -> dict[str, dict[str, int]]:
    """Per candidate and officer: ratings by the same respondent for that officer in the window, itself included."""
    relevant = [c for c in candidates if c.respondent_hash and c.officer_ids]
    if not relevant:
        return {}
    seen: dict[tuple[str, str], dict[str, datetime]] = {}
    for c in relevant:
        for officer in c.officer_ids:
            seen.setdefault((c.respondent_hash, officer), {})[c.rating_id] = c.submitted_at  # type: ignore[index]
    earliest = min(c.submitted_at for c in relevant) - window
    table = store.rating_officers
    hashes = list({c.respondent_hash for c in relevant})
    for chunk in _chunks(hashes, 500):
        rows = await conn.execute(
            sa.select(table.c.rating_id, table.c.respondent_hash, table.c.officer_id, table.c.submitted_at).where(
                table.c.respondent_hash.in_(chunk), table.c.submitted_at >= earliest
            )
        )
        for row in rows:
            key = (row.respondent_hash, row.officer_id)
            if key in seen:
                seen[key].setdefault(row.rating_id, row.submitted_at)
    counts: dict[str, dict[str, int]] = {}
    for c in relevant:
        per_officer = {}
        for officer in c.officer_ids:
            times = seen[(c.respondent_hash, officer)].values()  # type: ignore[index]
            per_officer[officer] = sum(1 for t in times if c.submitted_at - window <= t <= c.submitted_at)
        counts[c.rating_id] = per_officer
    return counts


@dataclass
class RatingOutcome:
    rating_id: str
    status: str


async def record_ratings(
    conn: AsyncConnection, intake: Intake, principal: Principal | list[Principal], items: list[RatingIn],
    traceparent: str | None | list[str | None] = None,
) -> list[RatingOutcome | ItemError]:
    """Store ratings; those whose dossier is known are counted or flagged now, the others wait for it.

    `principal` and `traceparent` are one for all items (a batch) or one per item (grouped single posts)."""
    principals = principal if isinstance(principal, list) else [principal] * len(items)
    traces = traceparent if isinstance(traceparent, list) else [traceparent] * len(items)
    group_trace = None if isinstance(traceparent, list) else traceparent
    results: list[RatingOutcome | ItemError | None] = [None] * len(items)
    inline = [i for i, item in enumerate(items) if item.dossier is not None]
    for index in inline:
        [outcome] = await record_dossiers(conn, intake, principals[index], [items[index].dossier], traces[index])  # type: ignore[list-item]
        if isinstance(outcome, ItemError):
            outcome.field_path = outcome.field_path and outcome.field_path.replace("body.", "body.dossier.")
            results[index] = outcome
    codes = list(dict.fromkeys(item.dossier_code for i, item in enumerate(items) if results[i] is None))
    dossiers: dict[str, _KnownDossier] = {}
    slots: dict[tuple[str, str], str] = {}
    officer_lists: dict[str, list[str]] = {}
    for chunk in _chunks(codes, 500):
        for code, unit_code, officer_ids, completed_at in await _select_by_codes(conn, _DOSSIERS_BY_CODE, chunk):
            if isinstance(officer_ids, str):  # the JSON text (SQLite); PostgreSQL's driver has parsed it already
                parsed = officer_lists.get(officer_ids)
                if parsed is None:
                    parsed = officer_lists[officer_ids] = orjson.loads(officer_ids)
                officer_ids = parsed
            dossiers[code] = _KnownDossier(unit_code, officer_ids or [], completed_at)
        for code, channel, rating_id in await _select_by_codes(conn, _SLOTS_BY_CODE, chunk):
            slots[(code, channel)] = rating_id
    now = _now()
    rows: list[dict[str, Any]] = []
    candidates: list[Candidate] = []
    hash_identity = intake.hash_identity
    rating_ids = new_ids(len(items))
    # Equal criteria and reasons of a write share one object (a few hundred distinct values among a thousand
    # ratings), so execute_many converts each to JSON once; nothing mutates them after this point.
    interned: dict[tuple[Any, ...], Any] = {}
    for index, item in enumerate(items):
        if results[index] is not None:
            continue
        dossier = dossiers.get(item.dossier_code)
        sender = principals[index]
        if dossier is not None and sender.unit_scope is not None and not intake.registry.within_scope(dossier.unit_code, sender.unit_scope):
            results[index] = _scope_error(sender, dossier.unit_code)
            continue
        try:
            status = rating_status(dossier.completed_at if dossier else None, item.submitted_at)
        except RatingRejected as exc:
            results[index] = ItemError(422, "Rating contradicts its dossier", str(exc), f"body.{exc.field}")
            continue
        first = slots.get((item.dossier_code, item.channel))
        if first is not None:
            results[index] = ItemError(
                409, "Dossier already rated on this channel",
                f"dossier {item.dossier_code} already has a rating from channel {item.channel}", extra={"first_rating_id": first},
            )
            continue
        rating_id = next(rating_ids)
        slots[(item.dossier_code, item.channel)] = rating_id
        respondent = item.respondent
        respondent_hash = hash_identity(respondent.phone or respondent.id_number) if respondent else None
        criteria = item.criteria.model_dump(exclude_none=True) if item.criteria else None
        if criteria is not None:
            criteria = interned.setdefault(("criteria", *criteria.items()), criteria)
        reasons = interned.setdefault(("reasons", *item.reasons), list(item.reasons))
        row = {
            "rating_id": rating_id, "dossier_code": item.dossier_code, "channel": item.channel, "device_id": item.device_id,
            "submitted_at": item.submitted_at, "overall": item.overall, "attitude": item.attitude, "criteria": criteria,
            "reasons": reasons, "comment": item.comment or None, "respondent_hash": respondent_hash, "status": status,
            "received_from": sender.subject, "created_at": now, "unit_code": dossier.unit_code if dossier else None,
            "flags": None,  # supersedes, superseded_by, verdict and verified_at are left out: NULL for a new rating
        }
        rows.append(row)
        if dossier is not None:
            candidates.append(Candidate(
                rating_id, item.dossier_code, item.channel, item.device_id, item.submitted_at, respondent_hash, dossier.unit_code,
                dossier.officer_ids, dossier.completed_at,
                {"overall": item.overall, "attitude": item.attitude, "criteria": criteria, "reasons": reasons},
                traceparent=traces[index], row=row,
            ))
        results[index] = RatingOutcome(rating_id, status)
    if rows:
        slots_taken = sorted((r["dossier_code"], r["channel"], r["rating_id"]) for r in rows)  # key order, as above
        await execute_many(conn, _INSERT_SLOT, [{"dossier_code": d, "channel": c, "rating_id": i} for d, c, i in slots_taken])
        await _settle(conn, intake, candidates, group_trace)
        for candidate in candidates:
            candidate.row["status"], candidate.row["flags"] = candidate.status, candidate.flags_json()  # type: ignore[index]
        await execute_many(conn, _INSERT_RATING, rows)
        waiting = sorted({row["dossier_code"] for row in rows if row["status"] == PENDING_DOSSIER})
        if waiting:
            await _release_if_arrived(conn, intake, waiting, now, group_trace)
            arrived = await conn.execute(sa.select(store.ratings.c.rating_id, store.ratings.c.status).where(
                store.ratings.c.rating_id.in_([r["rating_id"] for r in rows if r["status"] == PENDING_DOSSIER])))
            by_id = {r["rating_id"]: r for r in rows}
            for rating_id, status in arrived.all():
                by_id[rating_id]["status"] = status
    status_of = {row["rating_id"]: row["status"] for row in rows}
    final: list[RatingOutcome | ItemError] = []
    for result in results:
        assert result is not None
        if isinstance(result, RatingOutcome):
            result.status = status_of[result.rating_id]
        final.append(result)
    tally: Counter[tuple[str, str]] = Counter()
    for result, item in zip(final, items, strict=True):
        tally[(item.channel, result.status) if isinstance(result, RatingOutcome) else ("", str(result.status))] += 1
    for (channel, status), count in tally.items():
        if channel:
            metrics.RATINGS.labels(channel, status).inc(count)
        else:
            metrics.RATINGS_REFUSED.labels(status).inc(count)
    return final


async def _release_if_arrived(conn: AsyncConnection, intake: Intake, codes: list[str], now: datetime, traceparent: str | None) -> None:
    """A dossier committed while these ratings were being stored as pending: release them now."""
    await _meet(conn, codes, now)
    arrived: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(codes, 500):
        for row in (await conn.execute(sa.select(store.dossiers).where(store.dossiers.c.dossier_code.in_(chunk)))).all():
            arrived[row.dossier_code] = dict(row._mapping)
    if arrived:
        await _release_held_ratings(conn, intake, arrived, traceparent)
    await conn.execute(store.held_dossiers.delete().where(store.held_dossiers.c.dossier_code.in_(codes)))


async def correct_rating(
    conn: AsyncConnection, intake: Intake, principal: Principal, rating_id: str, correction: CorrectionIn, traceparent: str | None = None
) -> RatingOutcome:
    """A correction is a new rating that supersedes the earlier one; the earlier one is never edited in place."""
    ratings = store.ratings
    original = (await conn.execute(sa.select(ratings).where(ratings.c.rating_id == rating_id))).first()
    if original is None:
        raise Problem(404, "Not found", f"no rating {rating_id}")
    if original.unit_code is not None:
        if not intake.registry.within_scope(original.unit_code, principal.unit_scope):
            raise _scope_error(principal, original.unit_code).as_problem()
    elif principal.unit_scope is not None and principal.subject != original.received_from:
        raise Problem(403, "Outside your unit", "only the sender may correct a rating whose dossier is not known yet")
    if original.superseded_by is not None:
        raise Problem(409, "Rating already corrected", f"rating {rating_id} was corrected by {original.superseded_by}; correct that one",
                      superseded_by=original.superseded_by)
    if original.status in {REJECTED_BEFORE_COMPLETION, SUPERSEDED} or original.verdict == "not_genuine":
        raise Problem(409, "Rating cannot be corrected", f"rating {rating_id} is {original.verdict or original.status}")
    dossier = None
    if original.status in COUNTABLE:
        dossier = (await conn.execute(sa.select(store.dossiers).where(store.dossiers.c.dossier_code == original.dossier_code))).first()
        if dossier is not None and correction.submitted_at < dossier.completed_at:
            raise Problem(422, "Rating contradicts its dossier", "the correction is dated before its dossier was completed",
                          errors=[{"field": "body.submitted_at", "message": "before the dossier's completion"}])
    correction_id = new_id()
    marked = await conn.execute(
        ratings.update().where(ratings.c.rating_id == rating_id, ratings.c.superseded_by.is_(None)).values(superseded_by=correction_id)
    )
    if marked.rowcount != 1:
        raise Problem(409, "Rating already corrected", f"rating {rating_id} was corrected concurrently")
    row = {
        "rating_id": correction_id, "dossier_code": original.dossier_code, "channel": original.channel, "device_id": original.device_id,
        "submitted_at": correction.submitted_at, "overall": correction.overall, "attitude": correction.attitude,
        "criteria": correction.criteria.model_dump(exclude_none=True) if correction.criteria else None,
        "reasons": list(correction.reasons), "comment": correction.comment or None,
        "respondent_hash": original.respondent_hash, "status": original.status, "received_from": principal.subject,
        "created_at": _now(), "unit_code": original.unit_code, "supersedes": rating_id, "superseded_by": None,
        "flags": None, "verdict": None, "verified_at": None,
    }
    if dossier is not None:
        candidate = Candidate.from_row(row, dossier)
        candidate.new_rating = False
        if original.verdict != "genuine":
            candidate.carried_flags = [Flag(f["rule"], f["detail"]) for f in original.flags or []]
        await _settle(conn, intake, [candidate], traceparent)
        row["status"], row["flags"] = candidate.status, candidate.flags_json()
    await conn.execute(ratings.insert().values(**row))
    metrics.RATINGS.labels(row["channel"], row["status"]).inc()
    return RatingOutcome(correction_id, row["status"])


# --- assessments ------------------------------------------------------------------------------------

ASSESSMENT_FIELDS = (
    "feedback_handling", "public_listing", "feedback_received", "feedback_answered_on_time",
    "feedback_dissatisfied_or_overdue", "decree61", "source",
)


async def record_assessment(
    conn: AsyncConnection, intake: Intake, unit_code: str, assessment: AssessmentIn, traceparent: str | None = None
) -> dict[str, Any]:
    """Merge a partial update into the unit's inputs for the period and emit the merged whole."""
    if not intake.registry.has_unit(unit_code):
        raise Problem(404, "Not found", f"no unit {unit_code}")
    table = store.assessments
    stored = (await conn.execute(sa.select(table).where(table.c.unit_code == unit_code, table.c.period == assessment.period))).first()
    merged = {name: getattr(stored, name) if stored is not None else None for name in ASSESSMENT_FIELDS}
    given = assessment.model_dump(mode="json", include=assessment.model_fields_set - {"period"})
    if isinstance(given.get("decree61"), dict):
        given["decree61"] = {**(merged["decree61"] or {}), **{k: v for k, v in given["decree61"].items() if v is not None}}
    merged.update(given)
    received = merged["feedback_received"]
    for name in ("feedback_answered_on_time", "feedback_dissatisfied_or_overdue"):
        if received is not None and merged[name] is not None and merged[name] > received:
            raise Problem(422, "Invalid request", f"{name} would exceed feedback_received", errors=[{"field": f"body.{name}", "message": "more than feedback_received"}])
    now = _now()
    await conn.execute(upsert(table, {"unit_code": unit_code, "period": assessment.period, **merged, "updated_at": now}, ["unit_code", "period"], conn.dialect.name))
    data = events.AssessmentRecorded(unit_code=unit_code, period=assessment.period, **merged)
    event = events.new_event(events.ASSESSMENT_RECORDED, SOURCE, unit_code, data)
    await _emit(conn, [_outbox_row(intake.settings, topics.ASSESSMENTS, unit_code, event, traceparent, now)])
    return {"unit_code": unit_code, "period": assessment.period, **merged}


# --- consumed events and sweeps ---------------------------------------------------------------------


async def on_rating_verified(event: CloudEvent, data: events.EventData, tx: Tx) -> None:
    """Workflow's phúc tra verdict, shown in GET /v1/ratings/{id} (scoring acts on it; intake only records it)."""
    assert isinstance(data, events.RatingVerified)
    await tx.conn.execute(
        store.ratings.update().where(store.ratings.c.rating_id == data.rating_id).values(verdict=data.verdict, verified_at=data.verified_at)
    )


HANDLERS = {events.RATING_VERIFIED: on_rating_verified}


async def sweep_unmatched(engine: AsyncEngine, window_days: float) -> int:
    """Ratings that waited out the window without their dossier become `unmatched` — never silently dropped."""
    ratings = store.ratings
    async with engine.begin() as conn:
        result = await conn.execute(
            ratings.update()
            .where(ratings.c.status == PENDING_DOSSIER, ratings.c.created_at < unmatched_before(_now(), window_days))
            .values(status=UNMATCHED)
        )
        counts = dict(
            (await conn.execute(
                sa.select(ratings.c.status, sa.func.count()).where(ratings.c.status.in_(AWAITING_DOSSIER)).group_by(ratings.c.status)
            )).all()
        )
    swept = max(0, result.rowcount or 0)
    metrics.UNMATCHED.inc(swept)
    for status in AWAITING_DOSSIER:
        metrics.HELD.labels(status).set(counts.get(status, 0))
    return swept


# --- idempotency ------------------------------------------------------------------------------------


def request_fingerprint(body: bytes) -> str:
    """Same key + same body → same answer; a JSON body is compared canonically (key order ignored)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def stored_response(conn: AsyncConnection, principal: Principal, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    table = store.idempotency_keys
    row = (await conn.execute(sa.select(table).where(table.c.principal == principal.subject, table.c.key == key))).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise Problem(409, "Idempotency key reused", "this Idempotency-Key was used with a different body")
    return row.status_code, row.response


async def remember_response(conn: AsyncConnection, principal: Principal, key: str, fingerprint: str, status_code: int, response: dict[str, Any]) -> None:
    await conn.execute(
        store.idempotency_keys.insert().values(
            principal=principal.subject, key=key, request_hash=fingerprint, status_code=status_code, response=response, created_at=_now(),
        )
    )


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
