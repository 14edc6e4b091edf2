"""Publisher's tables and the writes its handlers and workers make.

Projections of the events it consumes (units, the newest score per unit/period/profile, tickets), the
changes feed with its gap-free sequence, immutable official snapshots, and the delivery log per target.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.publisher.domain.publication import INSUFFICIENT, PublicResult, UnitInfo
from shared.bus.tables import define_bus_tables
from shared.db import UtcDateTime, execute_many, upsert, upsert_statement

metadata = sa.MetaData()
bus = define_bus_tables(metadata)
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("parent_code", sa.String(64), nullable=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("coordinates_source", sa.String(32), nullable=True),
    sa.Column("valid_from", sa.String(32), nullable=True),
    sa.Column("valid_to", sa.String(32), nullable=True),
    sa.Column("successor_code", sa.String(64), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

latest_scores = sa.Table(
    "latest_scores",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("band", sa.String(32), nullable=True),
    sa.Column("ratings", sa.Integer, nullable=True),
    sa.Column("provisional", sa.Boolean, nullable=True),
    sa.Index("ix_latest_scores_period", "profile", "period", "score"),
    sa.Index("ix_latest_scores_unit", "unit_code", "profile"),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False, index=True),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("breached", sa.Boolean, nullable=False),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("measures", sa.Text, nullable=True),
    sa.Column("event_time", UtcDateTime, nullable=False),
)

# The changes feed: `seq` is handed out under a row lock on `sequences`, so sequence order is commit order
# and a reader that saw seq N has seen every seq below N (no gaps, whatever replicas write concurrently).
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("edition", sa.String(16), nullable=False),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("edition", "profile", "unit_code", "period", "version", name="uq_changes_version"),
)

sequences = sa.Table(
    "sequences",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("next_value", sa.BigInteger, nullable=False),
)

# Official snapshots: written once, never updated or deleted (database triggers refuse it).
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("frozen_at", UtcDateTime, nullable=False),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("unit_count", sa.Integer, nullable=False),
    sa.UniqueConstraint("period", "profile", "version", name="uq_snapshots_version"),
)

snapshot_items = sa.Table(
    "snapshot_items",
    metadata,
    sa.Column("snapshot_id", sa.BigInteger, primary_key=True),
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("level", sa.String(32), nullable=True),
    sa.Column("rank", sa.Integer, nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Index("ix_snapshot_items_unit", "unit_code"),
)

# One row per target, unit, period, profile and edition: a newer version replaces a pending one (collapse).
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(32), nullable=False),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("delivered_version", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("edition", sa.String(16), nullable=False, server_default="live"),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("target", "unit_code", "period", "profile", "edition", name="uq_deliveries_subject"),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
)

PENDING, RETRY, DELIVERED, DEAD = "pending", "retry", "delivered", "dead"
DUE_STATUSES = (PENDING, RETRY)
DELIVERY_STATUSES = (PENDING, RETRY, DELIVERED, DEAD)
CHANGES_SEQUENCE = "changes"


# --- Statements of the consumer's hot path: built and compiled once per dialect, run with plain tuples ---
# A batch's lookups name its profiles, periods and units. As IN lists (or tuple IN lists) SQLAlchemy renders
# and compiles them afresh for every batch, one parameter per value; here each list is ONE parameter (a JSON
# array read by json_each on SQLite, an array with = ANY on PostgreSQL) and the statement is compiled once.


def _in_list(column: Any, name: str, dialect_name: str) -> Any:
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))
    listed = sa.func.json_each(sa.bindparam(name, type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def _list_value(values: Any, dialect_name: str) -> Any:
    values = sorted(set(values))
    return values if dialect_name == "postgresql" else orjson.dumps(values).decode()


def _latest_versions(dialect_name: str) -> Any:
    s = latest_scores.c
    return sa.select(s.profile, s.unit_code, s.period, s.version).where(
        _in_list(s.unit_code, "units", dialect_name), _in_list(s.profile, "profiles", dialect_name),
        _in_list(s.period, "periods", dialect_name),
    )


def _rankable_peers(dialect_name: str) -> Any:
    """Rankable scores of the given profiles and periods above a floor, with each unit's level, ascending."""
    s = latest_scores.c
    return (
        sa.select(s.profile, s.period, units.c.level, s.score)
        .select_from(latest_scores.outerjoin(units, units.c.code == s.unit_code))
        .where(
            _in_list(s.profile, "profiles", dialect_name), _in_list(s.period, "periods", dialect_name),
            s.score > sa.bindparam("above", type_=sa.Float), s.band != sa.bindparam("insufficient", type_=sa.String),
            s.ratings >= sa.bindparam("min_ratings", type_=sa.Integer), sa.not_(s.provisional),
        )
        .order_by(s.score)
    )


def _queued_versions(dialect_name: str) -> Any:
    d = deliveries.c
    return sa.select(d.unit_code, d.period, d.profile, d.id, d.version).where(
        d.target == sa.bindparam("target", type_=sa.String), d.edition == sa.bindparam("edition", type_=sa.String),
        _in_list(d.unit_code, "units", dialect_name), _in_list(d.period, "periods", dialect_name),
        _in_list(d.profile, "profiles", dialect_name),
    )


class _EncodedJSON(sa.types.TypeDecorator[Any]):
    """A JSON column's value handed over already encoded (by orjson, ~8× faster than the json module SQLAlchemy
    would use for every feed entry and score payload): bound as the text it is, read back as JSON."""

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> None:  # type: ignore[override]
        return None


def encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _latest_upsert(dialect_name: str) -> Any:
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(latest_scores).values(payload=sa.bindparam("payload_json", type_=_EncodedJSON()))
    return statement.on_conflict_do_update(
        index_elements=["profile", "unit_code", "period"],
        set_={c: statement.excluded[c] for c in ("version", "score", "payload", "band", "ratings", "provisional")},
    )


_LATEST_UPSERT = {name: _latest_upsert(name) for name in ("postgresql", "sqlite")}
_CHANGES_INSERT = changes.insert().values(payload=sa.bindparam("payload_json", type_=_EncodedJSON()))


@lru_cache(maxsize=32)
def _prepared(build: Any, dialect: sa.Dialect) -> tuple[Any, str, tuple[str, ...] | None]:
    statement = build(dialect.name)
    compiled = statement.compile(dialect=dialect)
    return statement, str(compiled), tuple(compiled.positiontup) if compiled.positiontup else None


async def _fetch(conn: AsyncConnection, build: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of a prebuilt SELECT as plain tuples (its values need no conversion: strings and numbers)."""
    statement, sql, names = _prepared(build, conn.dialect)
    if names is None:  # a driver with named parameters: the ordinary way
        return [tuple(row) for row in await conn.execute(statement, params)]
    result = await conn.exec_driver_sql(sql, tuple(params[name] for name in names))
    return [tuple(row) for row in result.cursor.fetchall()] if result.cursor is not None else []


def unit_info(row: Any) -> UnitInfo:
    return UnitInfo(row.code, row.name, row.level, row.parent_code, row.lat, row.lon, row.valid_to, row.successor_code)


async def save_unit(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(upsert(units, values, ["code"], conn.dialect.name))


async def units_by_code(conn: AsyncConnection, codes: list[str]) -> dict[str, UnitInfo]:
    if not codes:
        return {}
    rows = await conn.execute(sa.select(units).where(units.c.code.in_(codes)))
    return {row.code: unit_info(row) for row in rows}


KEY_CHUNK = 2000  # keys per lookup (each column's values are one parameter: _in_list)


async def save_latest_scores(conn: AsyncConnection, scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the newest version per unit, period and profile; returns the scores that were newer than the stored.

    One read and one upsert for a whole batch: a batch of score events is mostly distinct figures. The read
    takes the batch's profiles, periods and units as one parameter each (a tuple IN list was rendered and
    compiled afresh for every batch, three parameters a key); the few extra rows it may return are ignored."""
    if not scores:
        return []
    dialect = conn.dialect.name
    keys = [(s["profile"], s["unit_code"], s["period"]) for s in scores]
    wanted = set(keys)
    known: dict[tuple[str, str, str], int] = {}
    for start in range(0, len(keys), KEY_CHUNK):
        part = keys[start:start + KEY_CHUNK]
        params = {"units": _list_value((k[1] for k in part), dialect), "profiles": _list_value((k[0] for k in part), dialect),
                  "periods": _list_value((k[2] for k in part), dialect)}
        for profile, unit_code, period, version in await _fetch(conn, _latest_versions, params):
            if (profile, unit_code, period) in wanted:
                known[(profile, unit_code, period)] = version
    # Versions only go up: an older one arriving late changes nothing.
    newer = [s for s, key in zip(scores, keys) if known.get(key, 0) < s["version"]]
    if newer:
        rows = [
            {"profile": s["profile"], "unit_code": s["unit_code"], "period": s["period"], "version": s["version"],
             "score": s["score"], "payload_json": encode_json(s), "band": s["band"], "ratings": s["ratings"],
             "provisional": bool(s.get("provisional", False))}
            for s in newer
        ]
        await execute_many(conn, _LATEST_UPSERT[dialect], rows)
    return newer


async def rankable_peer_scores(
    conn: AsyncConnection, groups: list[tuple[str, str]], min_ratings: int, above: float
) -> dict[tuple[str, str, str | None], list[float]]:
    """The scores above `above` of the rankable units of the given (profile, period) pairs, ascending, by
    (profile, period, level): one query for a whole batch (one per pair and level cost 40 round trips a batch).

    A unit's rank is one more than the number of its peers' scores strictly higher than its own."""
    found: dict[tuple[str, str, str | None], list[float]] = {}
    if not groups:
        return found
    dialect = conn.dialect.name
    wanted = set(groups)
    params = {"profiles": _list_value((g[0] for g in groups), dialect), "periods": _list_value((g[1] for g in groups), dialect),
              "above": above, "insufficient": INSUFFICIENT, "min_ratings": min_ratings}
    for profile, period, level, score in await _fetch(conn, _rankable_peers, params):
        if (profile, period) in wanted:
            found.setdefault((profile, period, level), []).append(score)
    return found


async def save_ticket(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """The newest state of a ticket; an event older than the one applied changes nothing."""
    known = await conn.scalar(sa.select(tickets.c.event_time).where(tickets.c.ticket_id == values["ticket_id"]))
    if known is not None and known > values["event_time"]:
        return
    await conn.execute(upsert(tickets, values, ["ticket_id"], conn.dialect.name))


async def append_changes(conn: AsyncConnection, entries: list[dict[str, Any]]) -> list[int]:
    """Append feed entries with the next sequence numbers; call last in the transaction (it holds a row lock).

    An entry is one version of one result: the score's version for live figures, the snapshot's for official ones.
    """
    if not entries:
        return []
    # The UPDATE takes the row lock until commit: a concurrent writer waits, so numbers commit in order.
    updated = await conn.execute(
        sequences.update().where(sequences.c.name == CHANGES_SEQUENCE)
        .values(next_value=sequences.c.next_value + len(entries))
    )
    if not updated.rowcount:
        await conn.execute(sequences.insert().values(name=CHANGES_SEQUENCE, next_value=1 + len(entries)))
    last = int(await conn.scalar(sa.select(sequences.c.next_value).where(sequences.c.name == CHANGES_SEQUENCE)))
    first = last - len(entries)
    now = datetime.now(timezone.utc)
    rows = [
        {"seq": first + index, "edition": entry["edition"], "unit_code": entry["unit_code"], "period": entry["period"],
         "profile": entry["profile"], "version": entry.get("snapshot_version") or entry["version"],
         "payload_json": encode_json({**entry, "seq": first + index}),
         "published_at": now}
        for index, entry in enumerate(entries)
    ]
    await execute_many(conn, _CHANGES_INSERT, rows)
    return [row["seq"] for row in rows]


class Push(NamedTuple):
    """One version of one result, queued for a target."""

    unit_code: str
    period: str
    profile: str
    version: int
    body: bytes


# A newer version replaces the row's (collapse). A row waiting its turn keeps its place in the queue (moving it to
# the back at every new version starved the figures that change most often on a busy map); a row backing off
# keeps its schedule and attempt count (a newer version must not make a failing target be hammered sooner than
# its backoff or its Retry-After allows); a delivered or dead row is due now with a fresh count. Decided in the
# UPDATE itself, so a delivery worker's outcome recorded meanwhile is never overwritten with what was read.
_NOW = sa.bindparam("b_now", type_=UtcDateTime())
_WAITING = sa.or_(deliveries.c.status == PENDING, deliveries.c.status == RETRY)  # no IN: it cannot be run as executemany
_REQUEUE = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("b_id", type_=sa.BigInteger()),
           deliveries.c.version < sa.bindparam("b_version", type_=sa.Integer()))
    .values(
        version=sa.bindparam("b_version", type_=sa.Integer()), body=sa.bindparam("b_body", type_=sa.LargeBinary()),
        last_error=None,
        updated_at=_NOW,
        status=sa.case((deliveries.c.status == RETRY, RETRY), else_=PENDING),
        attempts=sa.case((_WAITING, deliveries.c.attempts), else_=0),
        next_attempt_at=sa.case((_WAITING, deliveries.c.next_attempt_at), else_=_NOW),
    )
)


async def queue_deliveries(conn: AsyncConnection, target: str, edition: str, pushes: list[Push]) -> int:
    """Queue each push's version for `target`, replacing an older one (collapse); a delivered or dead row is
    reopened, a row backing off keeps its backoff. One lookup, one insert and one update for the whole list.

    Returns how many rows were inserted or changed (an older or equal version changes nothing)."""
    if not pushes:
        return 0
    newest: dict[tuple[str, str, str], Push] = {}
    for push in pushes:
        key = (push.unit_code, push.period, push.profile)
        if key not in newest or newest[key].version < push.version:
            newest[key] = push
    dialect = conn.dialect.name
    current: dict[tuple[str, str, str], tuple[int, int]] = {}
    keys = list(newest)
    for start in range(0, len(keys), KEY_CHUNK):
        part = keys[start:start + KEY_CHUNK]
        params = {"target": target, "edition": edition, "units": _list_value((k[0] for k in part), dialect),
                  "periods": _list_value((k[1] for k in part), dialect), "profiles": _list_value((k[2] for k in part), dialect)}
        for unit_code, period, profile, row_id, version in await _fetch(conn, _queued_versions, params):
            if (unit_code, period, profile) in newest:
                current[(unit_code, period, profile)] = (row_id, version)
    now = datetime.now(timezone.utc)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, push in newest.items():
        found = current.get(key)
        if found is None:
            inserts.append({
                "target": target, "unit_code": push.unit_code, "period": push.period, "profile": push.profile,
                "edition": edition, "version": push.version, "body": push.body, "status": PENDING, "attempts": 0,
                "next_attempt_at": now, "last_error": None, "updated_at": now,
            })
        elif found[1] < push.version:
            updates.append({"b_id": found[0], "b_version": push.version, "b_body": push.body, "b_now": now})
    if inserts:
        await execute_many(conn, deliveries.insert(), inserts)
    if updates:
        await conn.execute(_REQUEUE, updates)
    return len(inserts) + len(updates)


async def queue_delivery(
    conn: AsyncConnection, target: str, edition: str, unit_code: str, period: str, profile: str, version: int, body: bytes
) -> None:
    """Queue one version for `target` (see `queue_deliveries`)."""
    await queue_deliveries(conn, target, edition, [Push(unit_code, period, profile, version, body)])


async def claim_due(
    conn: AsyncConnection, target: str, owner: str, limit: int, lease: timedelta, now: datetime
) -> list[Any]:
    """Claim up to `limit` due deliveries of `target` for `owner` until the lease ends (replicas share the log)."""
    query = (
        sa.select(deliveries)
        .where(
            deliveries.c.target == target, deliveries.c.status.in_(DUE_STATUSES), deliveries.c.next_attempt_at <= now,
            sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
        )
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list((await conn.execute(query)).all())
    if rows:
        await conn.execute(
            deliveries.update().where(deliveries.c.id.in_([row.id for row in rows]))
            .values(claimed_by=owner, claimed_until=now + lease)
        )
    return rows


async def next_due_at(conn: AsyncConnection, target: str) -> datetime | None:
    """When the next row of `target` that nobody holds a claim on falls due (rows being pushed are not waited for)."""
    now = datetime.now(timezone.utc)
    return await conn.scalar(
        sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.target == target, deliveries.c.status.in_(DUE_STATUSES),
            sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
        )
    )


_ATTEMPT_INSERT = delivery_attempts.insert()


async def record_attempts(conn: AsyncConnection, owner: str, outcomes: list[tuple[Any, dict[str, Any], dict[str, Any]]]) -> list[bool]:
    """Log each (row, outcome changes, attempt) and apply the outcome where the row still holds the attempted
    version; release the claims. The log in one statement; returns, per outcome, whether it was applied."""
    if not outcomes:
        return []
    await execute_many(conn, _ATTEMPT_INSERT, [{"delivery_id": row.id, "version": row.version, **attempt} for row, _, attempt in outcomes])
    now = datetime.now(timezone.utc)
    applied = []
    for row, outcome_changes, _ in outcomes:
        updated = await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == row.id, deliveries.c.version == row.version)
            .values(updated_at=now, claimed_by=None, claimed_until=None, **outcome_changes)
        )
        if not updated.rowcount:
            # A newer version was queued meanwhile: it stays pending for the next claim; only the claim goes.
            await release_claim(conn, row.id, owner)
        applied.append(bool(updated.rowcount))
    return applied


async def release_claim(conn: AsyncConnection, delivery_id: int, owner: str) -> None:
    await conn.execute(
        deliveries.update().where(deliveries.c.id == delivery_id, deliveries.c.claimed_by == owner)
        .values(claimed_by=None, claimed_until=None)
    )


def superseded_changes_before(before: datetime) -> Any:
    """Feed entries published before `before` that a newer entry of the same result supersedes (what the
    retention deletes); a result's newest entry is kept whatever its age."""
    newer = changes.alias("newer")
    superseded = sa.exists().where(
        newer.c.edition == changes.c.edition, newer.c.profile == changes.c.profile,
        newer.c.unit_code == changes.c.unit_code, newer.c.period == changes.c.period, newer.c.version > changes.c.version,
    )
    return sa.and_(changes.c.published_at < before, superseded)


def delivery_attempts_before(before: datetime) -> Any:
    """Logged delivery attempts made before `before` (what the retention deletes)."""
    return delivery_attempts.c.at < before
