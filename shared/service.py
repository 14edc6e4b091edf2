"""What every service is made of: one FastAPI app whose lifespan migrates the database and runs the bus.

A service declares its tables, routers, subscriptions and handlers in a `ServiceSpec`; `create_app`
is the only place real adapters are wired (the composition root).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import DEV_JWT_SECRET, ApiKeyStore, Principal, split_api_key, verify_jwt
from shared.bodysize import BodySizeLimit
from shared.bus.consumer import BatchHook, ConsumerRunner, Handler
from shared.bus.outbox import OutboxRelay
from shared.bus.relay_process import ProcessRelay
from shared.bus.tables import BusTables
from shared.db import is_unavailable, prepare_database
from shared.logging import configure_logging, get_logger
from shared.memory import limit_malloc_arenas
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.problems import Problem, install_problem_handlers, install_unavailable_handler
from shared.settings import Settings, get_settings
from shared.textguard import RefuseNul

log = get_logger(__name__)

BackgroundWorker = Callable[["Runtime"], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str
    title: str
    bus: BusTables
    routers: list[APIRouter]
    subscriptions: list[str] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    before_commit: BatchHook | None = None  # runs once per consumed batch, inside its transaction
    idempotent_event_types: frozenset[str] = frozenset()  # applied idempotently by natural key: no processed_events rows
    workers: list[BackgroundWorker] = field(default_factory=list)
    api_key_store: Callable[[Runtime], ApiKeyStore] | None = None
    required_secrets: tuple[str, ...] = ("jwt_secret",)
    on_events_committed: Callable[[Runtime, list[str]], None] | None = None
    on_start: list[BackgroundWorker] = field(default_factory=list)
    max_body_bytes: int = 1024 * 1024  # 413 above this …
    large_body_paths: dict[str, int] = field(default_factory=dict)  # … except paths ending so (batches, imports)
    # The outbox relay in a child process (shared/bus/relay_process.py) unless settings.outbox_relay_process is off.
    relay_in_child_process: bool = False
    # On SQLite, statements run on the event loop's thread rather than aiosqlite's (shared/db.py OnLoopSqliteConnection).
    sqlite_on_loop: bool = False


@dataclass
class Runtime:
    """The live parts of a running service, reachable from routes through `RuntimeDep`."""

    spec: ServiceSpec
    settings: Settings
    engine: AsyncEngine
    relay: OutboxRelay | ProcessRelay
    consumer: ConsumerRunner | None = None
    api_keys: ApiKeyStore | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def jwt_secret(self) -> str:
        return self.settings.jwt_secret or DEV_JWT_SECRET

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on commit the relay is woken so its events leave at once."""
        async with self.engine.begin() as conn:
            yield conn
        self.relay.wake()


async def get_runtime(request: Request) -> Runtime:
    # async: a plain `def` dependency would be run in a worker thread on every request.
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _principal(request: Request, runtime: RuntimeDep) -> Principal | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return None
    api_key = split_api_key(token)
    if api_key is not None:
        if runtime.api_keys is None:
            return None
        return await runtime.api_keys.principal_for(*api_key)
    return verify_jwt(runtime.jwt_secret, token)


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must authenticate with one of `roles` (401 without credentials, 403 otherwise)."""

    # The runtime is read from the app, not asked for as a sub-dependency: FastAPI's resolution of each
    # dependency costs more than the authentication itself (bench/notes/intake.md).
    async def dependency(request: Request) -> Principal:
        principal = await _principal(request, request.app.state.runtime)
        if principal is None:
            raise Problem(401, "Unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        if roles and principal.role not in roles:
            raise Problem(403, "Forbidden", f"role {principal.role!r} may not do this")
        return principal

    return dependency


class _RequestMetrics:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(self.service, method, path, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, path).observe(time.perf_counter() - started)


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            async with runtime.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), timeout=2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        kafka_ok = runtime.relay.kafka_ok and (runtime.consumer is None or runtime.consumer.kafka_ok)
        checks["kafka"] = "ok" if kafka_ok else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, settings.log_level, settings.log_json)
        limit_malloc_arenas(settings.malloc_arena_max)  # before the database threads start
        if not settings.dev_mode:
            settings.require_secrets(*spec.required_secrets)
        database_url = settings.database_url_for(spec.name)
        engine = await prepare_database(database_url, spec.name, sqlite_on_loop=spec.sqlite_on_loop)
        batch_size, poll_seconds = settings.outbox_batch_size, settings.outbox_poll_seconds
        relay: OutboxRelay | ProcessRelay
        if spec.relay_in_child_process and settings.outbox_relay_process:
            relay = ProcessRelay(spec.name, engine, spec.bus, database_url, settings.kafka_bootstrap, batch_size=batch_size,
                                 poll_seconds=poll_seconds, log_level=settings.log_level, log_json=settings.log_json)
        else:
            relay = OutboxRelay(spec.name, engine, spec.bus, settings.kafka_bootstrap, batch_size=batch_size, poll_seconds=poll_seconds)
        runtime = Runtime(spec, settings, engine, relay)
        if spec.subscriptions:
            runtime.consumer = ConsumerRunner(
                spec.name, engine, spec.bus,
                bootstrap=settings.kafka_bootstrap, topic_prefix=settings.topic_prefix,
                topics=spec.subscriptions, handlers=spec.handlers,
                batch_size=settings.consumer_batch_size, max_retries=settings.consumer_max_retries,
                before_commit=spec.before_commit,
                idempotent_types=spec.idempotent_event_types,
                after_commit=lambda topics: _after_commit(runtime, topics),
            )
        if spec.api_key_store is not None:
            runtime.api_keys = spec.api_key_store(runtime)
        for hook in spec.on_start:
            await hook(runtime)
        app.state.runtime = runtime
        tasks = [asyncio.create_task(relay.run(), name=f"{spec.name}-outbox-relay")]
        if runtime.consumer is not None:
            tasks.append(asyncio.create_task(runtime.consumer.run(), name=f"{spec.name}-consumer"))
        tasks += [asyncio.create_task(worker(runtime), name=f"{spec.name}-{worker.__name__}") for worker in spec.workers]
        log.info("service started", database=engine.url.render_as_string(hide_password=True), kafka=settings.kafka_bootstrap)
        try:
            yield
        finally:
            await _shutdown(runtime, tasks)

    app = FastAPI(title=spec.title, version="1.0.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(_ops_router())
    for router in spec.routers:
        app.include_router(router)
    app.add_middleware(RefuseNul)  # inside the size cap: it reads bodies the cap has bounded
    app.add_middleware(BodySizeLimit, default=spec.max_body_bytes, large=spec.large_body_paths)
    app.add_middleware(_RequestMetrics, service=spec.name)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Problem documents for every error; 503 with Retry-After while the database is away. A database restarting
    answers "starting up" (a bare DBAPIError) and drops connections (ConnectionResetError): 503 too, not 500."""
    install_problem_handlers(app)
    install_unavailable_handler(app, (DBAPIError, ConnectionError), is_unavailable)


def _after_commit(runtime: Runtime, topics: list[str]) -> None:
    runtime.relay.wake()
    if runtime.spec.on_events_committed is not None:
        runtime.spec.on_events_committed(runtime, topics)


async def _shutdown(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    """Finish the batch in hand, flush what the outbox can, then close."""
    if runtime.consumer is not None:
        runtime.consumer.stop()
        consumer_task = tasks[1]
        try:
            await asyncio.wait_for(asyncio.shield(consumer_task), timeout=15)
        except (asyncio.TimeoutError, Exception):
            pass
        await runtime.consumer.close()
    for task in tasks:
        task.cancel()
    # Bounded: a task that ignores its cancellation must not keep the process from exiting.
    _, stuck = await asyncio.wait(tasks, timeout=10)
    if stuck:
        log.warning("background tasks did not stop in time", tasks=[task.get_name() for task in stuck])
    await runtime.relay.stop()
    await runtime.engine.dispose()
    log.info("service stopped")
