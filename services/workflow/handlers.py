"""Workflow's event handlers — one per event type — and the write flows the API shares with them.

A dissatisfied rating opens, or joins, a remediation ticket per category (Đà Nẵng 5697/2017 Art. 3);
a flagged rating waits for phúc tra; a late dossier obliges an apology letter (Quảng Điền 490/2020);
a unit falling into "not satisfied" owes a plan; two such years in a row go to the People's Committee
(Art. 6). Handlers are built with the service's settings (who to mail, which channels are sampled).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.workflow import store
from services.workflow.domain import lifecycle, remediation, repeated, sampling
from services.workflow.tickets import Context, add_history, emit, emit_many, open_ticket, update, utcnow
from shared import events, topics
from shared.auth import DEV_JWT_SECRET
from shared.bus.consumer import Handler, Tx
from shared.bus.outbox import add_to_outbox
from shared.db import upsert, upsert_statement
from shared.ids import new_id
from shared.periods import local_time, month_of, parse_period
from shared.settings import Settings

SOURCE = "/hailong/workflow"
SAMPLE_DUTY = "phuc_tra_sample"
SCORED_PERIOD_KINDS = ("month", "year")  # months for the ranking report, years for Art. 6


def sampled_channels(settings: Settings) -> set[str]:
    return {c.strip() for c in settings.verification_channels.split(",") if c.strip()}


@dataclass
class OpenTicket:
    id: str
    severity: str


async def _open_tickets_of(ctx: Context, unit_code: str) -> dict[tuple[str, str], OpenTicket]:
    """A unit's open rating tickets by (category, period), in one query."""
    t = store.tickets
    rows = await ctx.conn.execute(
        sa.select(t.c.id, t.c.category, t.c.period, t.c.severity)
        .where(t.c.unit_code == unit_code, t.c.status.in_(lifecycle.DEADLINE_STATUSES), t.c.restricted.is_(False))
        .order_by(t.c.opened_at.desc(), t.c.id.desc())  # the oldest wins when (unusually) two are open
    )
    return {(row.category, row.period): OpenTicket(row.id, row.severity) for row in rows}


async def remediate_rating(ctx: Context, rating: events.RatingAccepted, opened_at: datetime,
                           batch: dict[str, Any] | None = None) -> list[str]:
    """Open or join one ticket per category of the rating's reasons; the ids of the existing tickets joined.

    Inside a consumed batch (`batch` is the batch's scratch space) a unit's open tickets are read once and
    the attachments are written together when the batch commits (`flush_attachments`)."""
    period = str(month_of(rating.dossier_completed_at))
    scratch = batch if batch is not None else {}
    units: dict[str, dict[tuple[str, str], OpenTicket]] = scratch.setdefault("open_tickets", {})
    pending: list[dict[str, Any]] = scratch.setdefault("attachments", [])
    touched = []
    for remedy in remediation.remedies_for(rating.overall, list(rating.reasons), ctx.rules):
        if rating.unit_code not in units:
            units[rating.unit_code] = await _open_tickets_of(ctx, rating.unit_code)
        current = units[rating.unit_code].get((remedy.category, period))
        if current is None:
            ticket_id = await open_ticket(
                ctx, unit_code=rating.unit_code, category=remedy.category, source="rating", severity=remedy.severity,
                period=period, opened_at=opened_at, note=f"rating {rating.rating_id}: {', '.join(remedy.reasons)}",
                rating=(rating.rating_id, list(remedy.reasons)),
            )
            units[rating.unit_code][(remedy.category, period)] = OpenTicket(ticket_id, remedy.severity)
            continue
        pending.append({"rating_id": rating.rating_id, "category": remedy.category, "ticket_id": current.id,
                        "reasons": list(remedy.reasons)})
        if remedy.severity == "high" and current.severity != "high":
            # An informal cost among the attached ratings makes the whole ticket the inspectorate's business.
            await ctx.conn.execute(store.tickets.update().where(store.tickets.c.id == current.id)
                                   .values(severity="high", version=store.tickets.c.version + 1, updated_at=opened_at))
            current.severity = "high"
        touched.append(current.id)
    if batch is None:
        await flush_attachments(ctx, scratch)
    return touched


async def flush_attachments(ctx: Context, scratch: dict[str, Any]) -> None:
    """Write the collected attachments in one statement; a rating already attached (a redelivery) is skipped."""
    rows = scratch.pop("attachments", [])
    if rows:
        keys = ["rating_id", "category"]
        await ctx.conn.execute(upsert_statement(store.ticket_ratings, keys, keys, ctx.conn.dialect.name), rows)


async def invalidate_rating(ctx: Context, rating_id: str, why: str, now: datetime) -> None:
    """A rating found not genuine, or superseded, no longer supports its tickets; a ticket left with none closes."""
    links = store.ticket_ratings
    ticket_ids = list((await ctx.conn.execute(
        sa.select(links.c.ticket_id).where(links.c.rating_id == rating_id, links.c.invalidated.is_(False))
    )).scalars())
    if not ticket_ids:
        return
    await ctx.conn.execute(links.update().where(links.c.rating_id == rating_id).values(invalidated=True))
    for ticket_id in ticket_ids:
        row = (await ctx.conn.execute(sa.select(store.tickets).where(store.tickets.c.id == ticket_id))).first()
        remaining = await ctx.conn.scalar(
            sa.select(sa.func.count()).select_from(links).where(links.c.ticket_id == ticket_id, links.c.invalidated.is_(False))
        )
        if remaining == 0 and row.status in lifecycle.DEADLINE_STATUSES:
            updated = await update(ctx, row, {"status": lifecycle.CLOSED, "closed_at": now}, now)
            await add_history(ctx, row.id, now, "system", "close", row.status, lifecycle.CLOSED, f"no rating left: {why}")
            await emit(ctx, updated, events.TICKET_UPDATED)
        else:
            await ctx.conn.execute(store.tickets.update().where(store.tickets.c.id == ticket_id)
                                   .values(version=row.version + 1, updated_at=now))
            await emit(ctx, (await ctx.conn.execute(sa.select(store.tickets).where(store.tickets.c.id == ticket_id))).first(),
                       events.TICKET_UPDATED)


async def create_verification_task(
    ctx: Context, *, rating_id: str, unit_code: str, dossier_code: str, period: str, channel: str, reason: str,
    held: dict[str, Any] | None = None,
) -> bool:
    """One phúc tra task per rating; False when the rating already has one (flagged and also sampled: one task)."""
    table = store.verification_tasks
    if await ctx.conn.scalar(sa.select(table.c.id).where(table.c.rating_id == rating_id)) is not None:
        return False
    await ctx.conn.execute(table.insert().values(
        id=new_id(), rating_id=rating_id, unit_code=unit_code, dossier_code=dossier_code, period=period,
        channel=channel, reason=reason, status="pending", rating=held, created_at=utcnow(),
    ))
    return True


async def record_verdict(ctx: Context, task: Any, verdict: str, note: str | None, actor: str, now: datetime) -> None:
    """A phúc tra result: told to scoring on verifications.v1; not genuine drops the rating from its tickets,
    genuine lets a held (flagged) rating count, and so oblige its remedies, from now."""
    table = store.verification_tasks
    await ctx.conn.execute(table.update().where(table.c.id == task.id, table.c.status == "pending").values(
        status="done", verdict=verdict, note=note, verified_by=actor, verified_at=now,
    ))
    data = events.RatingVerified(
        task_id=task.id, rating_id=task.rating_id, dossier_code=task.dossier_code, unit_code=task.unit_code,
        verdict=verdict, reason=task.reason, verified_at=now,
    )
    event = events.new_event(events.RATING_VERIFIED, SOURCE, task.unit_code, data)
    await add_to_outbox(ctx.conn, store.bus, ctx.settings.topic(topics.VERIFICATIONS), task.unit_code, event)
    if verdict == "not_genuine":
        await invalidate_rating(ctx, task.rating_id, "found not genuine on re-verification", now)
    elif task.rating:
        held = events.RatingFlagged.model_validate(task.rating)
        accepted = events.RatingAccepted.model_validate(held.model_dump(exclude={"flags"}))
        for ticket_id in await remediate_rating(ctx, accepted, now):
            await emit(ctx, (await ctx.conn.execute(sa.select(store.tickets).where(store.tickets.c.id == ticket_id))).first(),
                       events.TICKET_UPDATED)


async def review_repeated_dissatisfaction(ctx: Context, kind: str, subject_id: str, unit_code: str, profile: str,
                                          year: int, now: datetime) -> None:
    """Đà Nẵng Art. 6: not satisfied two years or more in a row, once the year is over."""
    if profile != ctx.settings.report_profile or year >= local_time(now).year:
        return
    table = store.scores
    years = [str(year - back) for back in range(0, 10)]
    rows = await ctx.conn.execute(sa.select(table.c.period, table.c.band).where(
        table.c.subject_kind == kind, table.c.subject_id == subject_id, table.c.profile == profile, table.c.period.in_(years)
    ))
    bands = {int(row.period): row.band for row in rows}
    if not repeated.is_repeated(bands, year, ctx.rules.repeated_years):
        return
    run = repeated.consecutive_years_not_satisfied(bands, year)
    category = remediation.REPEATED_DISSATISFACTION if kind == "unit" else remediation.OFFICER_REVIEW
    subject_ref = f"{kind}:{subject_id}:{year}"
    tickets = store.tickets
    if await ctx.conn.scalar(sa.select(tickets.c.id).where(tickets.c.category == category, tickets.c.subject_ref == subject_ref)):
        return
    if kind == "unit":
        await open_ticket(
            ctx, unit_code=unit_code, category=category, source="annual_review", severity="high", period=str(year),
            opened_at=now, subject_ref=subject_ref, escalated_to=lifecycle.PEOPLES_COMMITTEE,
            note=f"not satisfied {run} years in a row up to {year} ({profile}): the People's Committee reminds the unit in writing",
        )
    else:
        # Restricted: the unit head and Home Affairs only; never on tickets.v1 (Art. 6.2: rotation, no early step).
        await open_ticket(
            ctx, unit_code=unit_code, category=category, source="annual_review", severity="high", period=str(year),
            opened_at=now, subject_ref=subject_ref, restricted=True, officer_id=subject_id,
            note=f"officer not satisfied {run} years in a row up to {year} ({profile}): consider rotation; no early salary step",
        )


SCORES = "scores"  # tx.state: the batch's newest figure per subject, profile and period


def _collect_score(tx: Tx, kind: str, subject_id: str, unit_code: str, unit_name: str | None, score: Any, at: datetime) -> None:
    """Keep the batch's newest figure per key; `store_scores` writes them all once before the batch commits."""
    batch: dict[tuple[str, str, str, str], tuple[dict[str, Any], datetime]] = tx.state.setdefault(SCORES, {})
    key = (kind, subject_id, score.profile, score.period)
    if key in batch and batch[key][0]["version"] >= score.version:
        return
    batch[key] = ({
        "subject_kind": kind, "subject_id": subject_id, "profile": score.profile, "period": score.period,
        "unit_code": unit_code, "unit_name": unit_name, "score": score.score, "band": score.band, "version": score.version,
    }, at)


async def store_scores(tx: Tx, settings: Settings) -> None:
    """Once per batch: one read and one upsert of every figure that is newer than the stored one (versions only
    go up), then Đà Nẵng Art. 6's review for the newer year figures. Scoring sends a figure per profile and
    period at every change, so per-event reads and writes were most of workflow's consumption."""
    batch = tx.state.pop(SCORES, {})
    if not batch:
        return
    table = store.scores
    columns = (table.c.subject_kind, table.c.subject_id, table.c.profile, table.c.period)
    keys = list(batch)
    known: dict[tuple[str, str, str, str], int] = {}
    for start in range(0, len(keys), 500):  # bounded IN lists
        rows = await tx.conn.execute(sa.select(*columns, table.c.version).where(sa.tuple_(*columns).in_(keys[start:start + 500])))
        known.update({(r.subject_kind, r.subject_id, r.profile, r.period): r.version for r in rows})
    newer = [(row, at) for key, (row, at) in batch.items() if known.get(key, 0) < row["version"]]
    if not newer:
        return
    keys_of_row = ["subject_kind", "subject_id", "profile", "period"]
    await tx.conn.execute(upsert_statement(table, keys_of_row, list(newer[0][0]), tx.conn.dialect.name), [row for row, _ in newer])
    ctx = Context.of(tx.conn, settings)
    for row, at in newer:
        period = parse_period(row["period"])
        if period.kind == "year":
            await review_repeated_dissatisfaction(ctx, row["subject_kind"], row["subject_id"], row["unit_code"], row["profile"],
                                                  period.year, at)


async def record_online_rating(ctx: Context, rating: events.RatingAccepted) -> None:
    """Into the population phúc tra samples; after the period's draw, a late rating is drawn on arrival."""
    period = str(month_of(rating.dossier_completed_at))
    keys = ["rating_id"]
    await ctx.conn.execute(upsert_statement(store.online_ratings, keys, keys, ctx.conn.dialect.name).values(
        rating_id=rating.rating_id, unit_code=rating.unit_code, dossier_code=rating.dossier_code, period=period,
        channel=rating.channel,
    ))
    runs = store.duty_runs
    drawn = await ctx.conn.scalar(sa.select(runs.c.ran_at).where(runs.c.duty == SAMPLE_DUTY, runs.c.key == period))
    settings = ctx.settings
    if drawn is not None and sampling.in_late_sample(rating.rating_id, rate=settings.verification_sample_rate,
                                                     seed=sample_seed(settings), period=period, unit_code=rating.unit_code):
        await create_verification_task(ctx, rating_id=rating.rating_id, unit_code=rating.unit_code,
                                       dossier_code=rating.dossier_code, period=period, channel=rating.channel, reason="sample")


def sample_seed(settings: Settings) -> str:
    """The configured seed, else one derived from the JWT secret: reproducible here, unguessable by units."""
    if settings.verification_sample_seed:
        return settings.verification_sample_seed
    secret = settings.jwt_secret or DEV_JWT_SECRET
    return hmac.new(secret.encode(), b"hailong phuc tra sample", hashlib.sha256).hexdigest()


def build_handlers(settings: Settings) -> dict[str, Handler]:
    channels = sampled_channels(settings)

    def context(tx: Tx) -> Context:
        return Context.of(tx.conn, settings)

    async def on_unit_upserted(event: events.CloudEvent, unit: events.UnitUpserted, tx: Tx) -> None:
        row = {"code": unit.code, "name": unit.name, "level": unit.level, "parent_code": unit.parent_code,
               "successor_code": unit.successor_code}
        await tx.conn.execute(upsert(store.units, row, ["code"], tx.conn.dialect.name))

    async def on_officer_upserted(event: events.CloudEvent, officer: events.OfficerUpserted, tx: Tx) -> None:
        row = {"officer_id": officer.officer_id, "unit_code": officer.unit_code, "name": officer.name, "active": officer.active}
        await tx.conn.execute(upsert(store.officers, row, ["officer_id"], tx.conn.dialect.name))

    async def on_dossier_completed(event: events.CloudEvent, dossier: events.DossierCompleted, tx: Tx) -> None:
        # Late means completed on a later day than due (DOMAIN.md: "equal to the limit" is the due date itself).
        if local_time(dossier.completed_at).date() <= local_time(dossier.due_at).date():
            return
        ctx = context(tx)
        tickets = store.tickets
        exists = await tx.conn.scalar(sa.select(tickets.c.id).where(
            tickets.c.category == remediation.APOLOGY_LETTER, tickets.c.subject_ref == dossier.dossier_code
        ))
        if exists is not None:
            return  # a corrected revision of a dossier already owed its letter
        due, done = local_time(dossier.due_at).date(), local_time(dossier.completed_at).date()
        await open_ticket(
            ctx, unit_code=dossier.unit_code, category=remediation.APOLOGY_LETTER, source="dossier", severity="normal",
            period=str(month_of(dossier.completed_at)), opened_at=event.time, subject_ref=dossier.dossier_code,
            note=(f"dossier {dossier.dossier_code} due {due.isoformat()}, completed {done.isoformat()}: send the citizen a "
                  "written apology giving the reason and the new return date (Quảng Điền 490/2020)"),
        )

    async def on_rating_accepted(event: events.CloudEvent, rating: events.RatingAccepted, tx: Tx) -> None:
        ctx = context(tx)
        if rating.supersedes:
            # The superseded rating may have joined a ticket earlier in this batch, and its ticket may close.
            await flush_attachments(ctx, tx.state)
            tx.state.get("open_tickets", {}).pop(rating.unit_code, None)
            await invalidate_rating(ctx, rating.supersedes, f"superseded by rating {rating.rating_id}", event.time)
            await tx.conn.execute(store.online_ratings.delete().where(store.online_ratings.c.rating_id == rating.supersedes))
        if rating.channel in channels:
            await record_online_rating(ctx, rating)
        # The clock starts when the rating was accepted (the event's time), so a replay computes the same deadline.
        for ticket_id in await remediate_rating(ctx, rating, event.time, tx.state):
            tx.state.setdefault("touched_tickets", set()).add(ticket_id)

    async def on_rating_flagged(event: events.CloudEvent, rating: events.RatingFlagged, tx: Tx) -> None:
        # Held back: no remedy is owed for a rating that may be an officer's own, until phúc tra finds it genuine.
        await create_verification_task(
            context(tx), rating_id=rating.rating_id, unit_code=rating.unit_code, dossier_code=rating.dossier_code,
            period=str(month_of(rating.dossier_completed_at)), channel=rating.channel, reason="flagged",
            held=rating.model_dump(mode="json"),
        )

    async def on_score_changed(event: events.CloudEvent, score: events.ScoreChanged, tx: Tx) -> None:
        period = parse_period(score.period)
        if period.kind not in SCORED_PERIOD_KINDS:
            return
        _collect_score(tx, "unit", score.unit_code, score.unit_code, score.unit_name, score, event.time)

    async def on_officer_score_changed(event: events.CloudEvent, score: events.OfficerScoreChanged, tx: Tx) -> None:
        period = parse_period(score.period)
        if period.kind != "year":
            return
        _collect_score(tx, "officer", score.officer_id, score.unit_code, None, score, event.time)

    async def on_threshold_crossed(event: events.CloudEvent, crossing: events.ScoreThresholdCrossed, tx: Tx) -> None:
        ctx = context(tx)
        tickets = store.tickets
        current = (await tx.conn.execute(
            sa.select(tickets).where(tickets.c.unit_code == crossing.unit_code, tickets.c.category == remediation.UNIT_PLAN,
                                     tickets.c.status.in_(lifecycle.DEADLINE_STATUSES))
            .order_by(tickets.c.opened_at).limit(1)
        )).first()
        note = f"{crossing.profile} {crossing.period}: {crossing.direction} (score {crossing.score}, band {crossing.band})"
        if current is not None or crossing.direction == "recovered":
            if current is not None:  # one plan per unit at a time: later crossings are recorded on it
                await add_history(ctx, current.id, event.time, "system", "note", current.status, current.status, note)
            return
        await open_ticket(
            ctx, unit_code=crossing.unit_code, category=remediation.UNIT_PLAN, source="score", severity="normal",
            period=crossing.period[:8], opened_at=event.time, subject_ref=f"{crossing.profile}:{crossing.period}",
            note=f"{note}: the unit owes a remediation plan",
        )

    return {
        events.UNIT_UPSERTED: on_unit_upserted,
        events.OFFICER_UPSERTED: on_officer_upserted,
        events.DOSSIER_COMPLETED: on_dossier_completed,
        events.RATING_ACCEPTED: on_rating_accepted,
        events.RATING_FLAGGED: on_rating_flagged,
        events.SCORE_CHANGED: on_score_changed,
        events.OFFICER_SCORE_CHANGED: on_officer_score_changed,
        events.SCORE_THRESHOLD_CROSSED: on_threshold_crossed,
    }


async def publish_touched_tickets(tx: Tx, settings: Settings) -> None:
    """Once per batch, one ticket.updated per ticket that gained ratings (a burst of 50 is one event, not 50)."""
    ctx = Context.of(tx.conn, settings)
    await flush_attachments(ctx, tx.state)
    tx.state.pop("open_tickets", None)
    touched = tx.state.pop("touched_tickets", set())
    if not touched:
        return
    rows = (await tx.conn.execute(sa.select(store.tickets).where(store.tickets.c.id.in_(sorted(touched))))).all()
    await emit_many(ctx, list(rows), events.TICKET_UPDATED)
