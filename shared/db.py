"""Database engines and migrations: one schema (PostgreSQL) or one file (SQLite) per service."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from functools import lru_cache, partial
from operator import itemgetter
from pathlib import Path

import aiosqlite
import orjson
from alembic import command
from alembic.config import Config
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
SQLITE_BUSY_TIMEOUT_SECONDS = 30  # how long a statement waits for another connection's write lock


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes stored as UTC and read back aware, on SQLite (which keeps no offset) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every time in Hài Lòng carries its offset")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    # On SQLite the value is text in SQLAlchemy's format ("2026-11-18 03:02:10.000000", UTC). Written and read by
    # the datetime type's own C methods: SQLAlchemy's converters (Python, a regular expression to read) cost
    # ~2-3 µs a value, a few values a rating (tests/unit/test_db_datetimes.py holds the two to the same text).
    def bind_processor(self, dialect: sa.Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            moment = self.process_bind_param(value, dialect)  # naive UTC on SQLite
            return None if moment is None else moment.isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Callable[[Any], datetime | None] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: Any) -> datetime | None:
            return self.process_result_value(datetime.fromisoformat(value) if isinstance(value, str) else value, dialect)

        return from_text


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def json_text(value: Any) -> str:
    """JSON columns' text, by orjson: the standard library's encoder was 15 % of a score-publishing pass (a figure's
    components and every outbox row's headers). Keys that are not strings (none are stored today) become strings,
    as the standard library's did."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class OnLoopSqliteConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run on the event loop's own thread.

    Why: aiosqlite hands every call to a thread of its own, and the sqlite3 module gives up the GIL around each
    row it steps, so a write of a thousand rows hands the GIL back and forth a thousand times with a busy event
    loop (which keeps it for up to a switch interval each time). Intake's statements take micro- to milliseconds
    on a local file: run where they are awaited, intake's batches took about a fifth less CPU a rating and its
    single posts ~10 % less, with a lower p99 (bench/notes/intake.md, fifth round). The price: a statement
    blocks the loop while it runs, including SQLite's wait for a write lock another process holds (the relay
    process's short transactions), so this suits short, indexed statements only. Commits still go through the
    thread (below).

    One rule keeps it from deadlocking: a connection never waits for SQLite's write lock on the loop while
    another connection of this process holds it. That one may be parked at an `await` between its first write
    and its commit, and could not go on while the loop sat in SQLite's busy wait; so a statement issued then
    goes through aiosqlite's thread as usual and the loop stays free."""

    # The open connections of the process, weakly: a plain set copied whole (one C call under the GIL) before it is
    # read, since the loops of several threads (a test client's and the test's own) may open connections at once.
    _open: set[weakref.ref[OnLoopSqliteConnection]] = set()

    async def _connect(self) -> OnLoopSqliteConnection:
        connection = await super()._connect()
        OnLoopSqliteConnection._open.add(weakref.ref(self, OnLoopSqliteConnection._open.discard))
        return connection

    async def _execute(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._another_holds_write_lock():
            return await super()._execute(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def commit(self) -> None:
        # Through the thread: the commit's fsync (synchronous=FULL) waits on the disk with the GIL released, and
        # the loop goes on serving requests meanwhile.
        await super()._execute(self._conn.commit)

    def _another_holds_write_lock(self) -> bool:
        # in_transaction: the sqlite3 module has begun a transaction, which it does only before a write.
        for reference in tuple(OnLoopSqliteConnection._open):
            other = reference()
            if other is not None and other is not self and other._connection is not None and other._connection.in_transaction:
                return True
        return False


def _on_loop_sqlite_creator(path: str) -> Callable[[], Any]:
    async def connect() -> OnLoopSqliteConnection:
        connector = partial(sqlite3.connect, path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        connection = OnLoopSqliteConnection(connector, 64)
        connection._thread.daemon = True  # as SQLAlchemy sets it for aiosqlite's own connections
        return await connection

    return connect


def create_engine_for(url: str, schema: str, *, sqlite_on_loop: bool = False, sqlite_fsync_each_commit: bool = True) -> AsyncEngine:
    """An engine whose connections see `schema` first, so each service's tables stay its own.

    SQLite only: `sqlite_on_loop` runs statements on the event loop's thread (OnLoopSqliteConnection);
    `sqlite_fsync_each_commit=False` commits without an fsync (synchronous=NORMAL), for writers whose commits a
    power cut may take back."""
    if is_sqlite(url):
        path = make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}}
        if sqlite_on_loop and path and path != ":memory:":
            options = {"async_creator": _on_loop_sqlite_creator(path)}
        synchronous = "FULL" if sqlite_fsync_each_commit else "NORMAL"
        engine = create_async_engine(url, json_serializer=json_text, json_deserializer=orjson.loads, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the API read while the consumer writes; busy_timeout waits instead of failing. FULL: a commit
            # is on disk before it returns, so a power cut cannot take back a rating answered 202 (one fsync per
            # group commit, ~0.25 ms here). NORMAL where the caller asks (intake's relay process, which only deletes
            # what it published); scoring, which re-derives its tables from the topics, relaxes it on its own.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages (default 2 MiB): big tables stay in memory
            cursor.close()

        return engine
    return create_async_engine(
        url,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"server_settings": {"search_path": schema, "application_name": f"hailong-{schema}"}},
    )


async def ensure_schema(url: str, schema: str) -> None:
    if is_sqlite(url):
        return
    bootstrap = create_async_engine(url)
    try:
        async with bootstrap.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        await bootstrap.dispose()


def _alembic_config(service: str, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, service: str) -> None:
    """Bring the service's schema to the newest revision; safe to run on every start."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.upgrade(_alembic_config(service, sync_conn), "head"))


async def prepare_database(url: str, service: str, *, sqlite_on_loop: bool = False) -> AsyncEngine:
    """Create the schema if needed, migrate it, and return the service's engine."""
    await ensure_schema(url, service)
    engine = create_engine_for(url, service, sqlite_on_loop=sqlite_on_loop)
    await migrate(engine, service)
    return engine


def run_sync(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from synchronous code (CLI commands)."""
    return asyncio.run(coro)


def upsert_statement(table: sa.Table, keys: list[str], columns: list[str], dialect_name: str):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT (keys) DO UPDATE the other `columns`, for PostgreSQL and SQLite alike.

    Without values, so it can be executed with one parameter set or many (executemany). Built once per table,
    keys, columns and dialect (statements are immutable): `execute_many` then finds it compiled already,
    where a fresh statement per batch was compiled afresh every time (6 % of scoring's time under load).
    """
    return _upsert_statement(table, tuple(keys), tuple(columns), dialect_name)


@lru_cache(maxsize=512)
def _upsert_statement(table: sa.Table, keys: tuple[str, ...], columns: tuple[str, ...], dialect_name: str):  # type: ignore[no-untyped-def]
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    update = [c for c in columns if c not in keys]
    if not update:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(index_elements=list(keys), set_={c: statement.excluded[c] for c in update})


@lru_cache(maxsize=128)
def insert_statement(table: sa.Table) -> Any:
    """`table.insert()`, built once: `execute_many` compiles a statement once per statement object, so a
    statement built afresh per call is compiled afresh, and kept in that cache until pushed out."""
    return table.insert()


def upsert(table: sa.Table, values: dict, keys: list[str], dialect_name: str):  # type: ignore[no-untyped-def,type-arg]
    return upsert_statement(table, keys, list(values), dialect_name).values(**values)


async def execute_many(conn: AsyncConnection, statement: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute `statement` once per row (executemany), handing the driver plain tuples.

    For wide rows SQLAlchemy's per-row parameter handling costs more than the database's own insert;
    here the statement is compiled once and only the columns whose types convert values (aware
    datetimes, JSON) go through their converters. Falls back to the ordinary path for dialects with
    named parameters.
    """
    if not rows:
        return
    # Compiled for the columns the rows carry, as SQLAlchemy itself does for an executemany (every row
    # must carry the same keys).
    compiled = _compiled(statement, conn.dialect, tuple(rows[0]))
    names = compiled.positiontup
    processors = getattr(compiled, "_bind_processors", None)
    if not names or processors is None:
        await conn.execute(statement, list(rows))
        return
    # Literals of the statement itself (e.g. the 1 of "revision + 1", a timestamp given with .values())
    # keep the value they were compiled with, converted once.
    literals = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
    for name, value in literals.items():
        if name in processors:
            literals[name] = processors[name](value)
    from_rows = [name for name in names if name in rows[0]]
    converters = [(i, processors[name]) for i, name in enumerate(names) if name in processors and name in rows[0]]
    if len(from_rows) == len(names):
        take = itemgetter(*names)  # every value from the row: one C call per row
        tuples = [take(row) for row in rows] if len(names) > 1 else [(take(row),) for row in rows]
        if converters:
            # Converted a column at a time, each distinct value object once: rows of a write often share a value
            # object (its timestamp, its trace headers, a JSON value the caller interned). By identity, which is
            # safe: every value stays referenced by `rows` for the whole call, so no id is reused meanwhile. The
            # loops over rows are C (zip, map); a Python function per row cost ~2.5 µs a rating of a batch.
            columns: list[Any] = list(zip(*tuples))
            for i, convert in converters:
                ids = list(map(id, columns[i]))
                converted = {key: convert(value) for key, value in dict(zip(ids, columns[i])).items()}
                columns[i] = map(converted.__getitem__, ids)
            tuples = list(zip(*columns))
    else:
        tuples = []
        for row in rows:
            values = [row[name] if name in row else literals[name] for name in names]
            for i, convert in converters:
                values[i] = convert(values[i])
            tuples.append(tuple(values))
    await conn.exec_driver_sql(str(compiled), tuples)


@lru_cache(maxsize=128)
def _compiled(statement: Any, dialect: sa.Dialect, column_keys: tuple[str, ...]) -> Any:
    """A statement compiled once per dialect and set of columns (compiling a wide INSERT costs ~100 µs).

    Keyed by the statement object: callers pass statements built once (module level, `insert_statement`,
    `upsert_statement` or an `lru_cache`d builder). One built per call misses every time and its compiled form
    stays here until pushed out: scoring's peak memory grew by ~100 MB that way while catching up."""
    return statement.compile(dialect=dialect, column_keys=list(column_keys))


async def delete_in_batches(
    engine: AsyncEngine, table: sa.Table, condition: Any, *, batch_rows: int, pause_seconds: float = 0.0,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Delete the rows of `table` that match `condition`, lowest key first, `batch_rows` per transaction (with a
    pause between them): retention must not hold SQLite's one write lock for seconds while writers wait.
    `on_batch` is told each transaction's count; returns how many rows went."""
    key = list(table.primary_key.columns)
    oldest = sa.select(*key).where(condition).order_by(*key).limit(batch_rows)
    total = 0
    while True:
        async with engine.begin() as conn:
            keys = [tuple(row) for row in await conn.execute(oldest)]
            if keys:
                chosen = key[0].in_([k[0] for k in keys]) if len(key) == 1 else sa.tuple_(*key).in_(keys)
                await conn.execute(table.delete().where(chosen))
        total += len(keys)
        if on_batch is not None:
            on_batch(len(keys))
        if len(keys) < batch_rows:
            return total
        if pause_seconds:
            await asyncio.sleep(pause_seconds)


async def fetch_tuples(conn: AsyncConnection, statement: Any) -> list[tuple[Any, ...]]:
    """Rows of a SELECT as the driver returns them: no per-row result processing by SQLAlchemy.

    For big reads (a ranking of ten thousand units) where the values need no conversion the caller
    cannot do itself: SQLite returns booleans as 0/1 and timestamps as text. Falls back to the ordinary
    path for dialects with named parameters.
    """
    compiled = statement.compile(dialect=conn.dialect)
    names = compiled.positiontup
    if names is None:
        return [tuple(row) for row in await conn.execute(statement)]
    params = compiled.construct_params()
    result = await conn.exec_driver_sql(str(compiled), tuple(params[name] for name in names))
    return [tuple(row) for row in result.cursor.fetchall()] if result.cursor is not None else []


def in_values(column: Any, values: Sequence[Any], dialect_name: str) -> Any:
    """`column IN (values)` with the values as ONE bound parameter: a JSON array read by `json_each` on
    SQLite, an array with `= ANY` on PostgreSQL.

    SQLAlchemy renders an ordinary IN list afresh for every execution, one named parameter per value,
    which for the thousands of keys of a consumed batch costs more than the lookup itself."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(column.type)))
    import orjson

    listed = sa.func.json_each(sa.bindparam(None, orjson.dumps(list(values)).decode(), type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


# SQLSTATEs of a database that is away rather than of a bad statement: connection exceptions (class 08),
# insufficient resources (53, e.g. too many connections), and a server shutting down, crashed or starting up
# (57P01–57P03). asyncpg reports the last ones as errors SQLAlchemy passes on as a bare DBAPIError.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database (or the way to it) is unavailable for now: retry later, nothing is wrong
    with the data. A server restarting answers "the database system is starting up" (57P03) for a moment."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
        return sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    return False


# The largest values an INTEGER and a BIGINT column hold. An API parameter compared with such a column is bounded
# by them: a larger number is a 422 naming the parameter, not the database's "out of range" (a 500).
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
