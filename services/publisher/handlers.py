"""Publisher's event handlers: project units, scores and tickets; publish each batch's new results once.

Handlers only record what changed; `publish_results` (the batch's before-commit hook) turns the newest
score of each touched unit, period and profile into a public result, appends it to the changes feed and
queues it for every push target — all in the consumer's transaction, so a crash loses or repeats nothing.
Nothing about officers is published: officer events have no handler here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import orjson

from services.publisher import store
from services.publisher.domain.publication import LIVE, PublicResult, peer_rank, public_result, pushes_profile
from services.publisher.reference import provincial_seat
from shared import events
from shared.bus.consumer import BatchHook, Handler, Tx

NEW_SCORES = "publisher.new_scores"


@dataclass(frozen=True)
class Target:
    """A push target (the institution map, the national portal) and the profiles it receives."""

    name: str
    profiles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PublicationPolicy:
    min_ratings: int = 5
    targets: tuple[Target, ...] = field(default_factory=tuple)


def push_body(result: PublicResult, edition: str, version: int, snapshot_version: int | None = None) -> bytes:
    """The contract's body for PUT /units/{unit}/satisfaction/{period}; fixed once per version and edition."""
    body: dict[str, Any] = {
        "unit_code": result.unit_code, "period": result.period, "profile": result.profile, "score": result.score,
        "max_score": result.max_score, "band": result.band, "rank": result.rank, "components": result.components,
        "ratings": result.ratings, "dossiers": result.dossiers, "version": version, "updated_at": result.updated_at,
        # Extensions: the unit's name, whether the figure is provisional, live or official.
        "unit_name": result.unit_name, "provisional": result.provisional, "edition": edition,
    }
    if snapshot_version is not None:
        body["snapshot_version"] = snapshot_version
        body["score_version"] = result.version
    return orjson.dumps(body)


def feed_entry(result: PublicResult, edition: str, snapshot_version: int | None = None) -> dict[str, Any]:
    return {**result.as_dict(), "edition": edition, "snapshot_version": snapshot_version}


async def queue_for_targets(
    tx_conn: Any, policy: PublicationPolicy, results: list[PublicResult], edition: str,
    versions: list[int] | None = None, snapshot_version: int | None = None,
) -> None:
    """Queue each result for every target that receives its profile: one set of statements per target.

    `versions`: the version each push carries (the score's, unless given: an official snapshot's)."""
    versions = versions or [result.version for result in results]
    bodies: dict[int, bytes] = {}  # one body per result, whichever targets take it
    for target in policy.targets:
        pushes = []
        for index, result in enumerate(results):
            if pushes_profile(target.profiles, result.profile):
                if index not in bodies:
                    bodies[index] = push_body(result, edition, versions[index], snapshot_version)
                pushes.append(store.Push(result.unit_code, result.period, result.profile, versions[index], bodies[index]))
        await store.queue_deliveries(tx_conn, target.name, edition, pushes)


async def on_unit_upserted(event: events.CloudEvent, unit: events.UnitUpserted, tx: Tx) -> None:
    lat, lon, source = unit.lat, unit.lon, "registry"
    if lat is None or lon is None:
        seat = provincial_seat(unit.code) if unit.level == "province" else None
        lat, lon, source = (seat.lat, seat.lon, "provincial_seat") if seat else (None, None, None)
    await store.save_unit(
        tx.conn,
        {
            "code": unit.code, "name": unit.name, "level": unit.level, "parent_code": unit.parent_code,
            "lat": lat, "lon": lon, "coordinates_source": source,
            "valid_from": unit.valid_from, "valid_to": unit.valid_to, "successor_code": unit.successor_code,
            "updated_at": datetime.now(timezone.utc),
        },
    )


async def on_score_changed(event: events.CloudEvent, score: events.ScoreChanged, tx: Tx) -> None:
    # Collected, and stored once for the whole batch before it commits (publish_results).
    # Several versions of one result in a batch: only the newest counts (and only it is turned into a dict).
    batch: dict[tuple[str, str, str], events.ScoreChanged] = tx.state.setdefault(NEW_SCORES, {})
    key = (score.profile, score.unit_code, score.period)
    known = batch.get(key)
    if known is None or known.version < score.version:
        batch[key] = score


async def on_ticket_event(event: events.CloudEvent, ticket: events.TicketEvent, tx: Tx) -> None:
    await store.save_ticket(
        tx.conn,
        {
            "ticket_id": ticket.ticket_id, "unit_code": ticket.unit_code, "category": ticket.category,
            "severity": ticket.severity, "status": ticket.status, "period": ticket.period,
            "opened_at": ticket.opened_at, "due_at": ticket.due_at, "breached": ticket.breached,
            "resolved_at": ticket.resolved_at, "closed_at": ticket.closed_at,
            "measures": ticket.measures, "event_time": event.time,
        },
    )


def build_handlers() -> dict[str, Handler]:
    return {
        events.UNIT_UPSERTED: on_unit_upserted,
        events.SCORE_CHANGED: on_score_changed,
        events.TICKET_OPENED: on_ticket_event,
        events.TICKET_UPDATED: on_ticket_event,
    }


async def _ranked(tx: Tx, results: list[PublicResult], min_ratings: int) -> list[PublicResult]:
    """Each rankable result with its rank among its peers (same profile, period and level): one query a batch."""
    rankable = [result for result in results if result.rankable and result.score is not None]
    if not rankable:
        return results
    groups = sorted({(result.profile, result.period) for result in rankable})
    floor = min(result.score for result in rankable if result.score is not None)
    peers = await store.rankable_peer_scores(tx.conn, groups, min_ratings, above=floor)
    ranked = []
    for result in results:
        if result.rankable and result.score is not None:
            higher = peers.get((result.profile, result.period, result.level), [])
            better = len(higher) - bisect.bisect_right(higher, result.score)
            result = replace(result, rank=peer_rank(result, better))
        ranked.append(result)
    return ranked


def build_publish_results(policy: PublicationPolicy) -> BatchHook:
    async def publish_results(tx: Tx) -> None:
        """Before the batch commits: feed entries and pushes for the newest score of each touched result."""
        batch: dict[tuple[str, str, str], events.ScoreChanged] = tx.state.pop(NEW_SCORES, {})
        scores = [batch[key].model_dump(mode="json") for key in sorted(batch)]
        new_scores = await store.save_latest_scores(tx.conn, scores)
        if not new_scores:
            return
        unit_infos = await store.units_by_code(tx.conn, sorted({score["unit_code"] for score in new_scores}))
        results = [public_result(score, unit_infos.get(score["unit_code"]), policy.min_ratings) for score in new_scores]
        results = await _ranked(tx, results, policy.min_ratings)
        await queue_for_targets(tx.conn, policy, results, LIVE)
        # Last: it holds the feed's sequence lock until commit.
        await store.append_changes(tx.conn, [feed_entry(result, LIVE) for result in results])

    return publish_results
