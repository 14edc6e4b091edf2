"""Applying one consumed batch to scoring's tables with a handful of set-based statements.

The handlers only note what each event says (`Batch`); `apply_batch` then, inside the batch's transaction:
1. updates the unit registry and, where a unit's place in the hierarchy changed, its ancestor closure;
2. loads the contributions the batch touches (one SELECT … IN per table), folds the events into them in
   memory with the pure rules of domain/contributions.py, and writes back the rows that changed;
3. adds the difference between each changed contribution's old and new counters to the counters of its
   unit, every ancestor and its officers, for the month, quarter, half and year (one additive upsert),
   marking those rows dirty for the score publisher;
4. recomputes from the contributions the counters of any unit whose subtree changed.
So the counters always equal the sum of the current contributions, whatever the order of the events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring import store
from services.scoring.domain.contributions import DossierState, Placement, RatingState, rating_placement
from services.scoring.domain.counters import (
    COUNTERS, DOSSIER_COUNTERS, RATING_COUNTERS, SIPAS_FACTORS, DossierFacts, RatingFacts, Step, Vector, add_into, rating_vector,
)
from services.scoring.domain.periods import months_of
from shared import events
from shared.calendar import WorkingCalendar, default_calendar
from shared.db import execute_many, in_values, upsert_statement

IN_CHUNK = 2000  # ids per IN (…) list: well inside SQLite's and asyncpg's parameter limits
MAX_DEPTH = 16  # a unit hierarchy deeper than this is a cycle in the registry


@dataclass
class Batch:
    """What the events of one consumed batch say, in arrival order where order matters."""

    ratings: list[tuple[events.RatingAccepted, bool]] = field(default_factory=list)  # (rating, flagged)
    verdicts: list[events.RatingVerified] = field(default_factory=list)
    dossiers: list[events.DossierCompleted] = field(default_factory=list)
    units: dict[str, events.UnitUpserted] = field(default_factory=dict)
    officers: dict[str, events.OfficerUpserted] = field(default_factory=dict)
    assessments: list[tuple[events.AssessmentRecorded, datetime]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ratings or self.verdicts or self.dossiers or self.units or self.officers or self.assessments)


@dataclass
class Touched:
    """What a batch changed, for the caller to report."""

    unit_months: set[tuple[str, str]] = field(default_factory=set)
    officer_months: set[tuple[str, str]] = field(default_factory=set)


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def officers_json(officer_ids: Sequence[str]) -> str:
    if not officer_ids:
        return "[]"  # most ratings name no officer
    return orjson.dumps(sorted(set(officer_ids))).decode()


VIETNAM_OFFSET = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh: UTC+7 without daylight saving since 1975


def month_of(moment: datetime) -> str:
    """`YYYY-MM` of a moment in Việt Nam (as shared.periods.month_of; a fixed offset converts 5× faster)."""
    local = moment.astimezone(VIETNAM_OFFSET)
    return f"{local.year}-{local.month:02d}"


sipas_answers = attrgetter(*SIPAS_FACTORS)  # a rating's criteria as a tuple in SIPAS_FACTORS' order


@lru_cache(maxsize=4096)
def answers_of(overall: str, attitude: str | None, criteria: tuple[int | None, ...] | None) -> Mapping[str, int]:
    """What a counted rating with these answers adds (counters.rating_vector), the SIPAS criteria in SIPAS_FACTORS'
    order. A few hundred combinations recur among millions of ratings, so each is computed once; the vector is
    shared by every rating that gave those answers, hence read-only."""
    facts = RatingFacts(overall, attitude, dict(zip(SIPAS_FACTORS, criteria)) if criteria is not None else None)
    return MappingProxyType(rating_vector(facts))


def placement_of(unit_code: str, completed_at: datetime, officer_ids: Iterable[str]) -> Placement:
    return Placement(unit_code, month_of(completed_at), tuple(sorted(set(officer_ids))) if officer_ids else ())


# --- the registry -------------------------------------------------------------------------------------


async def apply_registry(conn: AsyncConnection, batch: Batch) -> set[str]:
    """Upsert units and officers; returns the units whose subtree totals must be recomputed."""
    dialect = conn.dialect.name
    if batch.officers:
        rows = [{"officer_id": o.officer_id, "unit_code": o.unit_code, "name": o.name, "active": o.active} for o in batch.officers.values()]
        await conn.execute(upsert_statement(store.officers, ["officer_id"], list(rows[0]), dialect), rows)
    if not batch.units:
        return set()
    codes = list(batch.units)
    known: dict[str, str | None] = {}
    for part in chunks(codes):
        known.update((await conn.execute(sa.select(store.units.c.code, store.units.c.parent_code).where(store.units.c.code.in_(part)))).all())
    rows = [
        {"code": u.code, "name": u.name, "level": u.level, "parent_code": u.parent_code, "valid_to": u.valid_to,
         "successor_code": u.successor_code}
        for u in batch.units.values()
    ]
    await conn.execute(upsert_statement(store.units, ["code"], list(rows[0]), dialect), rows)
    moved = [code for code, unit in batch.units.items() if code not in known or known[code] != unit.parent_code]
    if not moved:
        return set()
    return await _rebuild_closure(conn, moved)


async def _rebuild_closure(conn: AsyncConnection, moved: list[str]) -> set[str]:
    """New ancestor rows for the moved units and everything below them; returns old and new ancestors."""
    closure = store.unit_ancestors
    subtree = set(moved)
    for part in chunks(moved):
        subtree.update((await conn.scalars(sa.select(closure.c.unit_code).where(closure.c.ancestor_code.in_(part)))).all())
    members = sorted(subtree)
    affected: set[str] = set(members)
    for part in chunks(members):
        affected.update((await conn.scalars(sa.select(closure.c.ancestor_code).where(closure.c.unit_code.in_(part)))).all())
        await conn.execute(closure.delete().where(closure.c.unit_code.in_(part)))
    parents = dict((await conn.execute(sa.select(store.units.c.code, store.units.c.parent_code))).all())
    rows = []
    for code in members:
        for depth, ancestor in enumerate(ancestors_of(code, parents)):
            rows.append({"unit_code": code, "ancestor_code": ancestor, "depth": depth})
            affected.add(ancestor)
    await conn.execute(closure.insert(), rows)
    return affected


def ancestors_of(code: str, parents: dict[str, str | None]) -> list[str]:
    """The unit itself, then its parent and so on; a parent not yet registered ends the chain."""
    chain = [code]
    current = parents.get(code)
    while current is not None and current not in chain and len(chain) < MAX_DEPTH:
        chain.append(current)
        current = parents.get(current)
    return chain


async def ancestors_for(conn: AsyncConnection, unit_codes: Iterable[str]) -> dict[str, list[str]]:
    """Each unit's roll-up chain (itself first); units never seen get a closure row of their own."""
    closure = store.unit_ancestors
    wanted = sorted(set(unit_codes))
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for part in chunks(wanted):
        rows = await conn.execute(sa.select(closure.c.unit_code, closure.c.ancestor_code, closure.c.depth).where(in_values(closure.c.unit_code, part, conn.dialect.name)))
        for unit_code, ancestor, depth in rows:
            found[unit_code].append((depth, ancestor))
    missing = [code for code in wanted if code not in found]
    if missing:
        # Nothing on conflict: another replica may have just added the same unit's row.
        await conn.execute(upsert_statement(closure, ["unit_code", "ancestor_code"], ["unit_code", "ancestor_code", "depth"], conn.dialect.name),
                           [{"unit_code": c, "ancestor_code": c, "depth": 0} for c in missing])
        for code in missing:
            found[code] = [(0, code)]
    return {code: [a for _, a in sorted(chain)] for code, chain in found.items()}


# --- contributions ------------------------------------------------------------------------------------

RATING_STATE_COLUMNS = ("dossier_code", "unit_code", "month", "officer_ids", "arrived", "flagged", "verdict", "verdict_at", "superseded_by", "counted")


def _rating_from_row(row: Any) -> RatingState:
    placement = Placement(row.unit_code, row.month, tuple(orjson.loads(row.officer_ids))) if row.unit_code else None
    answers = {name: value for name in RATING_COUNTERS if (value := getattr(row, name))} if row.arrived else None
    return RatingState(
        rating_id=row.rating_id, dossier_code=row.dossier_code, placement=placement, answers=answers, arrived=row.arrived,
        flagged=row.flagged, verdict=row.verdict, verdict_at=row.verdict_at, superseded_by=row.superseded_by,
    )


RATING_ZEROS = dict.fromkeys(RATING_COUNTERS, 0)
DOSSIER_ZEROS = dict.fromkeys(DOSSIER_COUNTERS, 0)
COUNTER_ZEROS = dict.fromkeys(COUNTERS, 0)


def _rating_row(state: RatingState, placement: Placement | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rating_id": state.rating_id,
        "dossier_code": state.dossier_code,
        "unit_code": placement.unit_code if placement else None,
        "month": placement.month if placement else None,
        "officer_ids": officers_json(placement.officer_ids) if placement else "[]",
        "arrived": state.arrived,
        "flagged": state.flagged,
        "verdict": state.verdict,
        "verdict_at": state.verdict_at,
        "superseded_by": state.superseded_by,
        "counted": state.counted,
        **RATING_ZEROS,
    }
    row.update(state.answers or {})
    return row


def dossier_facts(data: dict[str, Any]) -> DossierFacts:
    """The facts kept from a dossier.completed event (stored as JSON, read back here)."""
    when = datetime.fromisoformat
    return DossierFacts(
        received_at=when(data["received_at"]),
        due_at=when(data["due_at"]),
        completed_at=when(data["completed_at"]),
        result=data["result"],
        channel=data.get("channel", "in_person"),
        supplement_requests=int(data.get("supplement_requests", 0)),
        complaint=data.get("complaint", "none"),
        applicant_contacts=data.get("applicant_contacts"),
        agencies_contacted=data.get("agencies_contacted"),
        steps=tuple(Step(when(s["due_at"]), when(s["completed_at"])) for s in data.get("steps", [])),
    )


FACT_FIELDS = (
    "received_at", "due_at", "completed_at", "result", "channel", "supplement_requests", "complaint",
    "applicant_contacts", "agencies_contacted", "steps",
)


def _dossier_from_row(row: Any) -> DossierState:
    placement = Placement(row.unit_code, row.month, tuple(orjson.loads(row.officer_ids)))
    return DossierState(row.dossier_code, row.revision, placement, dossier_facts(row.facts), row.rated_dissatisfied)


def _dossier_row(state: DossierState, facts_json: dict[str, Any], vector: Vector) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dossier_code": state.dossier_code, "revision": state.revision, "unit_code": state.placement.unit_code,
        "month": state.placement.month, "officer_ids": officers_json(state.placement.officer_ids), "facts": facts_json,
        "rated_dissatisfied": state.rated_dissatisfied,
        **DOSSIER_ZEROS,
    }
    row.update(vector)
    return row


async def _load_ratings(conn: AsyncConnection, column: sa.Column, keys: Iterable[str]) -> dict[str, RatingState]:
    found: dict[str, RatingState] = {}
    wanted = sorted(set(keys))
    for part in chunks(wanted):
        for row in await conn.execute(sa.select(store.rating_contributions).where(in_values(column, part, conn.dialect.name))):
            found[row.rating_id] = _rating_from_row(row)
    return found


async def _load_dossiers(
    conn: AsyncConnection, codes: Iterable[str]
) -> tuple[dict[str, DossierState], dict[str, dict[str, Any]], dict[str, Vector]]:
    states: dict[str, DossierState] = {}
    facts: dict[str, dict[str, Any]] = {}
    vectors: dict[str, Vector] = {}
    wanted = sorted(set(codes))
    for part in chunks(wanted):
        for row in await conn.execute(sa.select(store.dossier_contributions).where(in_values(store.dossier_contributions.c.dossier_code, part, conn.dialect.name))):
            states[row.dossier_code] = _dossier_from_row(row)
            facts[row.dossier_code] = row.facts
            vectors[row.dossier_code] = {name: value for name in DOSSIER_COUNTERS if (value := getattr(row, name))}
    return states, facts, vectors


class Deltas:
    """Counter differences per (unit, month) and (officer, month), summed over a batch."""

    def __init__(self) -> None:
        self.units: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.officers: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.officer_units: dict[str, str] = {}

    def add(self, placement: Placement | None, vector: Vector, sign: int) -> None:
        if placement is None or not vector:
            return
        add_into(self.units[(placement.unit_code, placement.month)], vector, sign)
        for officer in placement.officer_ids:
            add_into(self.officers[(officer, placement.month)], vector, sign)
            self.officer_units[officer] = placement.unit_code

    def move(self, before: Placement | None, old: Vector, after: Placement | None, new: Vector) -> None:
        if before == after and old == new:
            return
        self.add(before, old, -1)
        self.add(after, new, +1)


async def apply_contributions(conn: AsyncConnection, batch: Batch, calendar: WorkingCalendar) -> Deltas:
    rating_ids = {r.rating_id for r, _ in batch.ratings} | {r.supersedes for r, _ in batch.ratings if r.supersedes}
    rating_ids |= {v.rating_id for v in batch.verdicts}
    ratings = await _load_ratings(conn, store.rating_contributions.c.rating_id, rating_ids) if rating_ids else {}
    dossier_codes = {d.dossier_code for d in batch.dossiers} | {r.dossier_code for r, _ in batch.ratings}
    dossier_codes |= {v.dossier_code for v in batch.verdicts} | {r.dossier_code for r in ratings.values() if r.dossier_code}
    dossiers, stored_facts, stored_vectors = await _load_dossiers(conn, dossier_codes) if dossier_codes else ({}, {}, {})
    before_ratings = dict(ratings)
    before_dossiers = dict(dossiers)

    # Fold the events into the states, in arrival order; every rule is order-independent anyway.
    new_facts: dict[str, dict[str, Any]] = {}
    for dossier in batch.dossiers:
        current = dossiers.get(dossier.dossier_code)
        if current is not None and not current.newer(dossier.revision):
            continue  # a repeated or stale revision
        data = dossier.model_dump(mode="json", include=set(FACT_FIELDS))
        placement = placement_of(dossier.unit_code, dossier.completed_at, dossier.officer_ids)
        rated = current.rated_dissatisfied if current else False
        dossiers[dossier.dossier_code] = DossierState(dossier.dossier_code, dossier.revision, placement, dossier_facts(data), rated)
        new_facts[dossier.dossier_code] = data
    for rating, flagged in batch.ratings:
        criteria = rating.criteria
        answers = answers_of(rating.overall, rating.attitude, sipas_answers(criteria) if criteria else None)
        placement = placement_of(rating.unit_code, rating.dossier_completed_at, rating.officer_ids)
        state = ratings.get(rating.rating_id)
        if state is None:  # the usual case, built at once: what RatingState(rating_id).arrive(...) gives
            ratings[rating.rating_id] = RatingState(rating.rating_id, rating.dossier_code, placement, answers, True, flagged)
        else:
            ratings[rating.rating_id] = state.arrive(rating.dossier_code, placement, answers, flagged)
        if rating.supersedes:
            target = ratings.get(rating.supersedes) or RatingState(rating.supersedes, dossier_code=rating.dossier_code)
            ratings[rating.supersedes] = target.supersede(rating.rating_id)
    for verdict in batch.verdicts:
        state = ratings.get(verdict.rating_id) or RatingState(verdict.rating_id)
        ratings[verdict.rating_id] = state.verify(verdict.verdict, verdict.verified_at, verdict.dossier_code)

    # Known dossiers whose placement or whose ratings changed: bring in all their ratings.
    changed_ratings = {rid for rid, state in ratings.items() if before_ratings.get(rid) != state}
    affected_dossiers = set(new_facts) | {ratings[rid].dossier_code for rid in changed_ratings if ratings[rid].dossier_code in dossiers}
    affected_dossiers.discard(None)  # type: ignore[arg-type]
    if affected_dossiers:
        siblings = await _load_ratings(conn, store.rating_contributions.c.dossier_code, affected_dossiers)
        for rid, state in siblings.items():
            ratings.setdefault(rid, state)
            before_ratings.setdefault(rid, state)
    by_dossier: dict[str, list[RatingState]] = defaultdict(list)
    for state in ratings.values():
        if state.dossier_code in affected_dossiers:
            by_dossier[state.dossier_code].append(state)  # type: ignore[index]
    for code in affected_dossiers:
        rated = any(r.dissatisfied for r in by_dossier.get(code, ()))
        if dossiers[code].rated_dissatisfied != rated:
            dossiers[code] = DossierState(code, dossiers[code].revision, dossiers[code].placement, dossiers[code].facts, rated)

    deltas = Deltas()
    rating_rows = []
    for rid, state in ratings.items():
        old = before_ratings.get(rid)
        placement = rating_placement(state, dossiers.get(state.dossier_code) if state.dossier_code else None)
        # A stored row's placement is where it counted (its dossier's, once the dossier was known).
        if old is not None and old == state and old.placement == placement:
            continue
        deltas.move(old.placement if old else None, old.vector() if old else {}, placement, state.vector())
        rating_rows.append(_rating_row(state, placement))
    dossier_rows = []
    for code, state in dossiers.items():
        old = before_dossiers.get(code)
        if old is not None and old == state:
            continue
        vector = state.vector(calendar)
        # What the stored row added, as stored: the calendar may have changed since it was computed.
        deltas.move(old.placement if old else None, stored_vectors.get(code, {}), state.placement, vector)
        dossier_rows.append(_dossier_row(state, new_facts.get(code) or stored_facts[code], vector))

    dialect = conn.dialect.name
    if rating_rows:
        await execute_many(conn, upsert_statement(store.rating_contributions, ["rating_id"], list(rating_rows[0]), dialect), rating_rows)
    if dossier_rows:
        await execute_many(conn, upsert_statement(store.dossier_contributions, ["dossier_code"], list(dossier_rows[0]), dialect), dossier_rows)
    return deltas


# --- counters -----------------------------------------------------------------------------------------


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


@lru_cache(maxsize=16)
def _counter_upsert(table: sa.Table, keys: tuple[str, ...], extra: tuple[str, ...], dialect: str, *, additive: bool) -> Any:
    """INSERT the row, or ON CONFLICT add it to (or, not additive, put it in place of) the stored one;
    either way revision + 1 and dirty, so the score publisher scores it."""
    statement = _insert(dialect)(table)
    changes: dict[str, Any] = {
        name: (table.c[name] + statement.excluded[name]) if additive else statement.excluded[name] for name in COUNTERS
    }
    changes.update({name: statement.excluded[name] for name in extra})
    changes["revision"] = table.c.revision + 1
    changes["dirty"] = sa.true()
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)


def _counter_rows(keys: tuple[str, str], totals: dict[tuple[str, str], dict[str, int]], extra: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    rows = []
    for key, vector in sorted(totals.items()):
        row = {keys[0]: key[0], keys[1]: key[1], "revision": 1, "dirty": True}
        if extra is not None:
            row.update(extra[key[0]])
        row.update(COUNTER_ZEROS)
        row.update(vector)
        rows.append(row)
    return rows


async def _write_counters(conn: AsyncConnection, table: sa.Table, keys: tuple[str, str], rows: list[dict[str, Any]], *, additive: bool) -> None:
    if not rows:
        return
    extra = tuple(name for name in rows[0] if name not in (*keys, *COUNTERS, "revision", "dirty"))
    await execute_many(conn, _counter_upsert(table, tuple(keys), extra, conn.dialect.name, additive=additive), rows)


async def add_to_counters(conn: AsyncConnection, deltas: Deltas, touched: Touched) -> None:
    """Add the batch's differences to each unit and its ancestors, and to each officer, for the month."""
    unit_totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    if deltas.units:
        chains = await ancestors_for(conn, {unit for unit, _ in deltas.units})
        for (unit, month), vector in deltas.units.items():
            for ancestor in chains[unit]:
                add_into(unit_totals[(ancestor, month)], vector)
    unit_totals = {key: vector for key, vector in unit_totals.items() if any(vector.values())}
    await _write_counters(conn, store.counters, ("unit_code", "month"), _counter_rows(("unit_code", "month"), unit_totals), additive=True)
    touched.unit_months.update(unit_totals)
    officer_totals = {key: vector for key, vector in deltas.officers.items() if any(vector.values())}
    units_of = {officer: {"unit_code": unit} for officer, unit in deltas.officer_units.items()}
    await _write_counters(
        conn, store.officer_counters, ("officer_id", "month"), _counter_rows(("officer_id", "month"), officer_totals, units_of), additive=True,
    )
    touched.officer_months.update(officer_totals)


async def mark_dirty(conn: AsyncConnection, unit_months: Iterable[tuple[str, str]], touched: Touched) -> None:
    """Have the publisher re-score these (e.g. an assessment changed), creating empty counters if needed."""
    keys = sorted(set(unit_months))
    await _write_counters(conn, store.counters, ("unit_code", "month"), _counter_rows(("unit_code", "month"), {k: {} for k in keys}), additive=True)
    touched.unit_months.update(keys)


@dataclass
class Sums:
    """Counters summed from the contributions: per (unit, month) and per (officer, month)."""

    units: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    officers: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    officer_units: dict[str, str] = field(default_factory=dict)
    contributions: int = 0


async def sum_contributions(conn: AsyncConnection, unit_codes: Sequence[str] | None = None, month: str | None = None) -> Sums:
    """The counters of the current contributions, grouped in SQL by unit, month and officer list."""
    sums = Sums()
    for table, names, condition in (
        (store.rating_contributions, RATING_COUNTERS, store.rating_contributions.c.counted),
        (store.dossier_contributions, DOSSIER_COUNTERS, sa.true()),
    ):
        totals = [sa.func.sum(table.c[name]).label(name) for name in names]
        query = sa.select(table.c.unit_code, table.c.month, table.c.officer_ids, sa.func.count().label("n"), *totals)
        query = query.where(condition, table.c.unit_code.is_not(None)).group_by(table.c.unit_code, table.c.month, table.c.officer_ids)
        if month is not None:
            query = query.where(table.c.month == month)
        parts = [None] if unit_codes is None else list(chunks(list(unit_codes)))
        for part in parts:
            scoped = query if part is None else query.where(table.c.unit_code.in_(part))
            for row in await conn.execute(scoped):
                vector = {name: int(getattr(row, name) or 0) for name in names}
                sums.contributions += int(row.n)
                add_into(sums.units[(row.unit_code, row.month)], vector)
                for officer in orjson.loads(row.officer_ids):
                    add_into(sums.officers[(officer, row.month)], vector)
                    sums.officer_units[officer] = row.unit_code
    return sums


async def recompute_counters(conn: AsyncConnection, ancestors: set[str], touched: Touched) -> None:
    """Set the counters of `ancestors` to the sums of the contributions of their subtrees (after a move)."""
    closure = store.unit_ancestors
    members: dict[str, set[str]] = defaultdict(set)  # unit → the recomputed ancestors it rolls up into
    for part in chunks(sorted(ancestors)):
        for unit_code, ancestor in await conn.execute(sa.select(closure.c.unit_code, closure.c.ancestor_code).where(closure.c.ancestor_code.in_(part))):
            members[unit_code].add(ancestor)
    sums = await sum_contributions(conn, sorted(members))
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (unit, month), vector in sums.units.items():
        for ancestor in members.get(unit, ()):
            add_into(totals[(ancestor, month)], vector)
    existing: set[tuple[str, str]] = set()
    for part in chunks(sorted(ancestors)):
        query = sa.select(store.counters.c.unit_code, store.counters.c.month).where(store.counters.c.unit_code.in_(part))
        existing.update((u, m) for u, m in await conn.execute(query))
    every = {key: totals.get(key, {}) for key in existing | set(totals)}
    await _write_counters(conn, store.counters, ("unit_code", "month"), _counter_rows(("unit_code", "month"), every), additive=False)
    touched.unit_months.update(every)


async def zero_counters(conn: AsyncConnection) -> None:
    """Every counter to zero, and dirty: what follows adds to them, and the publisher re-scores them all."""
    zeros = {name: 0 for name in COUNTERS}
    for table in (store.counters, store.officer_counters):
        await conn.execute(table.update().values(**zeros, revision=table.c.revision + 1, dirty=True))


async def contribution_months(conn: AsyncConnection) -> dict[str, int]:
    """How many contributions each month has (ratings and dossiers)."""
    months: dict[str, int] = defaultdict(int)
    for table in (store.rating_contributions, store.dossier_contributions):
        query = sa.select(table.c.month, sa.func.count()).where(table.c.month.is_not(None)).group_by(table.c.month)
        for month, count in await conn.execute(query):
            months[month] += int(count)
    return dict(sorted(months.items()))


async def rebuild_counters(conn: AsyncConnection, on_progress: Callable[[int], None] | None = None) -> int:
    """Every unit's and officer's counters from the contributions alone, month by month; returns how many
    contributions were summed. `on_progress` is told how many contributions each month had."""
    if conn.dialect.name == "postgresql":
        # Consumer batches wait until the rebuild commits: one committing between the rebuild's sums and its
        # writes would otherwise have its difference overwritten.
        await conn.execute(sa.text("LOCK TABLE counters, officer_counters IN EXCLUSIVE MODE"))
    await zero_counters(conn)  # a write first: on SQLite it takes the write lock before anything is read
    units_with_contributions = set()
    for table in (store.rating_contributions, store.dossier_contributions):
        units_with_contributions.update((await conn.scalars(sa.select(table.c.unit_code).where(table.c.unit_code.is_not(None)).distinct())).all())
    await ancestors_for(conn, units_with_contributions)  # closure rows for units never registered
    closure = store.unit_ancestors
    chains: dict[str, list[str]] = defaultdict(list)
    for unit_code, ancestor in await conn.execute(sa.select(closure.c.unit_code, closure.c.ancestor_code)):
        chains[unit_code].append(ancestor)
    summed = 0
    for month, count in (await contribution_months(conn)).items():
        sums = await sum_contributions(conn, None, month)
        unit_totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for (unit, unit_month), vector in sums.units.items():
            for ancestor in chains.get(unit, [unit]):
                add_into(unit_totals[(ancestor, unit_month)], vector)
        await _write_counters(conn, store.counters, ("unit_code", "month"), _counter_rows(("unit_code", "month"), unit_totals), additive=False)
        units_of = {officer: {"unit_code": unit} for officer, unit in sums.officer_units.items()}
        await _write_counters(
            conn, store.officer_counters, ("officer_id", "month"), _counter_rows(("officer_id", "month"), dict(sums.officers), units_of), additive=False,
        )
        summed += sums.contributions
        if on_progress is not None:
            on_progress(count)
    return summed


# --- assessments --------------------------------------------------------------------------------------

ASSESSMENT_FIELDS = ("feedback_handling", "public_listing", "feedback_received", "feedback_answered_on_time", "feedback_dissatisfied_or_overdue")


def assessment_fields(assessment: events.AssessmentRecorded) -> dict[str, Any]:
    """The fields an assessment sets (those left out are unchanged), flat; Decree 61 inputs as decree61_*."""
    values = {name: getattr(assessment, name) for name in ASSESSMENT_FIELDS if getattr(assessment, name) is not None}
    if assessment.decree61 is not None:
        values.update({f"decree61_{k}": v for k, v in assessment.decree61.model_dump(exclude_none=True).items()})
    if assessment.source is not None:
        values["source"] = assessment.source
    return values


def merge_inputs(stored: dict[str, Any], values: dict[str, Any], recorded_at: datetime) -> dict[str, Any]:
    """Field by field, the newest recording holds (ties: the larger value, so any order gives one result)."""
    merged = dict(stored)
    stamp = recorded_at.isoformat()
    for name, value in values.items():
        current = merged.get(name)
        if current is None or (stamp, orjson.dumps(value)) > (current[1], orjson.dumps(current[0])):
            merged[name] = [value, stamp]
    return merged


def current_inputs(stored: dict[str, Any] | None) -> dict[str, Any]:
    return {name: value for name, (value, _at) in (stored or {}).items()}


async def apply_assessments(conn: AsyncConnection, batch: Batch, touched: Touched) -> None:
    if not batch.assessments:
        return
    table = store.assessments
    keys = sorted({(a.unit_code, a.period) for a, _ in batch.assessments})
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for unit_code, period in keys:
        row = (await conn.execute(sa.select(table.c.inputs).where(table.c.unit_code == unit_code, table.c.period == period))).first()
        stored[(unit_code, period)] = dict(row.inputs) if row else {}
    for assessment, recorded_at in batch.assessments:
        key = (assessment.unit_code, assessment.period)
        stored[key] = merge_inputs(stored[key], assessment_fields(assessment), recorded_at)
    now = max(at for _, at in batch.assessments)
    rows = [{"unit_code": u, "period": p, "inputs": stored[(u, p)], "updated_at": now} for u, p in keys]
    await conn.execute(upsert_statement(table, ["unit_code", "period"], list(rows[0]), conn.dialect.name), rows)
    # An assessment of a quarter is re-scored through its months: the publisher scores every period of a dirty month.
    await mark_dirty(conn, [(u, month) for u, p in keys for month in months_of(p)], touched)


async def apply_batch(conn: AsyncConnection, batch: Batch, calendar: WorkingCalendar | None = None) -> Touched:
    """Everything one batch changes, inside the caller's transaction."""
    touched = Touched()
    moved_ancestors = await apply_registry(conn, batch)
    if batch.ratings or batch.verdicts or batch.dossiers:
        deltas = await apply_contributions(conn, batch, calendar or default_calendar())
        await add_to_counters(conn, deltas, touched)
    await apply_assessments(conn, batch, touched)
    if moved_ancestors:
        await recompute_counters(conn, moved_ancestors, touched)
    return touched
