"""The system under test: a throwaway PostgreSQL, a real Kafka broker, the four services as real processes
and the two push targets — started, crashed and restarted on demand, and watched until they are quiet.

Everything runs on free ports chosen at run time and keeps its files under the run's folder (logs, the
broker's data); PostgreSQL keeps its cluster in a temporary folder of its own (its server runs as the
`postgres` user). The watcher reads the services' bus tables directly: a backlog is a fact of the
database (unsent outbox rows, stored offsets behind the topics' ends, dirty counters, due deliveries),
not of a gauge that may be stale.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chaos.targets import PushTarget, free_port
from deploy.process import die_with_parent
from shared import topics
from shared.auth import issue_jwt

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "scoring", "workflow", "publisher")
PREFIX = "hailong."
DATABASE = "hailong"
# What each service consumes, as its app.py declares it (ServiceSpec.subscriptions): the topics whose stored
# offsets must reach the topics' ends before the run is quiet. Any other topic found in a service's
# consumer_offsets table is checked as well.
SUBSCRIPTIONS = {
    "intake": (topics.VERIFICATIONS,),
    "scoring": (topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.ASSESSMENTS, topics.VERIFICATIONS),
    "workflow": (topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.SCORES),
    "publisher": (topics.UNITS, topics.SCORES, topics.TICKETS),
}
Say = Callable[[str], None]


class ServiceProcess:
    """One service as a uvicorn process on a fixed port, so that it can be killed -9 and started again."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== chaos: starting {self.name} (start {self.starts + 1}) ====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", f"services.{self.name}.app:app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--no-access-log"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        self.starts += 1

    def kill(self) -> None:
        """kill -9: no shutdown hook runs, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    async def wait_healthy(self, timeout: float = 180.0) -> float:
        """Seconds until /healthz answers (the lifespan has migrated and started the bus)."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() - started < timeout:
                code = self.exited()
                if code is not None:
                    raise RuntimeError(f"{self.name} exited with {code}; see {self.log_path}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer /healthz within {timeout:.0f}s; see {self.log_path}")

    async def wait_ready(self, timeout: float = 180.0) -> float:
        """Seconds until /readyz says the database and Kafka are reachable."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() - started < timeout:
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready within {timeout:.0f}s; see {self.log_path}")


@dataclass
class Backlog:
    """Work the system still has in hand; quiet when every figure is zero."""

    outbox: dict[str, int] = field(default_factory=dict)  # unsent rows per service
    lag: dict[str, int] = field(default_factory=dict)  # records behind the topics' ends, per service
    dirty_counters: int = 0  # scoring: counters changed but not yet scored
    due_deliveries: int = 0  # publisher: pushes pending or waiting for a retry

    @property
    def quiet(self) -> bool:
        return not any(self.outbox.values()) and not any(self.lag.values()) and not self.dirty_counters and not self.due_deliveries

    def describe(self) -> str:
        outbox = sum(self.outbox.values())
        lag = ", ".join(f"{k} {v}" for k, v in self.lag.items() if v) or "none"
        return f"outbox {outbox}, lag {lag}, dirty counters {self.dirty_counters}, due deliveries {self.due_deliveries}"


class Cluster:
    """Start with `await cluster.start()`; always `await cluster.stop()` (it is safe after a partial start)."""

    def __init__(self, run_dir: Path, seed: int, say: Say, *, partitions: int = 3, target_failure_rate: float = 0.05) -> None:
        self.run_dir = run_dir
        self.seed = seed
        self.say = say
        self.partitions = partitions
        self.target_failure_rate = target_failure_rate
        self.jwt_secret = secrets.token_urlsafe(32)
        self.postgres: Any = None
        self.broker: Any = None
        self.engine: AsyncEngine | None = None
        self.map: PushTarget | None = None
        self.portal: PushTarget | None = None
        self.services: dict[str, ServiceProcess] = {}

    # --- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        from deploy.kafka.runner import KafkaBroker
        from deploy.kafka.runner import free_port as kafka_port
        from deploy.postgres.runner import ThrowawayPostgres
        from shared.topics import topic_specs

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.say("starting PostgreSQL (throwaway cluster) and Kafka (KRaft, one node)")
        # A crash must not lose what was committed: synchronous_commit=off (the test servers' setting) loses the
        # last fraction of a second of commits when the server dies, 202s included. fsync stays off: the run
        # crashes processes, not the machine, and the kernel keeps what was written.
        self.postgres = ThrowawayPostgres(settings={"synchronous_commit": "on"})
        await asyncio.to_thread(self.postgres.start)
        database_url = await asyncio.to_thread(self.postgres.create_database, DATABASE)
        self.broker = KafkaBroker(kafka_port(), self.run_dir / "kafka", num_partitions=self.partitions, die_with_parent=True)
        await asyncio.to_thread(self.broker.start_and_wait, 180)
        await self.broker.create_topics(topic_specs(PREFIX, self.partitions), timeout=60)
        self.engine = create_async_engine(database_url, pool_pre_ping=True, pool_size=2, max_overflow=2)
        self.map = PushTarget("map", secrets.token_urlsafe(16), secrets.token_urlsafe(32), self.seed + 1, self.target_failure_rate)
        self.portal = PushTarget("portal", secrets.token_urlsafe(16), secrets.token_urlsafe(32), self.seed + 2, self.target_failure_rate)
        env = self._service_env(database_url)
        self.services = {name: ServiceProcess(name, env, self.run_dir / "logs") for name in SERVICES}
        # intake first: it owns the registry every other service copies, and a first start migrates.
        self.services["intake"].start()
        await self.services["intake"].wait_healthy()
        for name in SERVICES[1:]:
            self.services[name].start()
        for service in self.services.values():
            await service.wait_healthy()
            await service.wait_ready()
        self.say("four services ready: " + ", ".join(f"{s.name} {s.url}" for s in self.services.values()))

    def _service_env(self, database_url: str) -> dict[str, str]:
        assert self.map is not None and self.portal is not None
        unlimited = "10000000/minute"
        return {
            "HAILONG_DATABASE_URL": database_url,
            "HAILONG_DATA_DIR": str(self.run_dir / "var"),
            "HAILONG_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "HAILONG_TOPIC_PREFIX": PREFIX,
            "HAILONG_JWT_SECRET": self.jwt_secret,
            "HAILONG_RESPONDENT_HASH_KEY": secrets.token_urlsafe(32),
            "HAILONG_LOG_JSON": "true",
            "HAILONG_MAP_URL": self.map.url, "HAILONG_MAP_TOKEN": self.map.token,
            "HAILONG_MAP_SIGNING_SECRET": self.map.signing_secret,
            "HAILONG_PORTAL_URL": self.portal.url, "HAILONG_PORTAL_TOKEN": self.portal.token,
            "HAILONG_PORTAL_SIGNING_SECRET": self.portal.signing_secret,
            # A failed push waits at most this long before its retry: the run's quiet comes sooner.
            "HAILONG_MAP_MAX_BACKOFF_SECONDS": "15",
            "HAILONG_WORKFLOW_TICK_SECONDS": "5",
            # The harness reads figures and tickets far more often than one citizen would; kiosks keep the
            # production per-key limit (and retry a 429 like any refusal for load).
            "HAILONG_INTAKE_RATE_LIMIT_DEFAULT": unlimited, "HAILONG_INTAKE_RATE_LIMIT_PUBLIC": unlimited,
            "HAILONG_SCORING_PUBLIC_RATE_LIMIT": unlimited, "HAILONG_PUBLIC_RATE_LIMIT": unlimited,
            # Simulated kiosks press far faster than one citizen at one device: without this every rating
            # would be flagged as a burst and held for verification instead of counted.
            "HAILONG_INTAKE_BURST_MAX_RATINGS": "1000000", "HAILONG_INTAKE_REPEAT_MAX_RATINGS": "1000000",
        }

    async def stop(self) -> None:
        for service in self.services.values():
            await asyncio.to_thread(service.stop)
        for target in (self.map, self.portal):
            if target is not None:
                target.close()
        if self.engine is not None:
            await self.engine.dispose()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)

    # --- credentials --------------------------------------------------------------------------------------

    def token(self, role: str, unit_scope: str | None = None) -> str:
        return issue_jwt(self.jwt_secret, f"chaos-{role}", role, unit_scope)

    async def create_api_keys(self, role: str, units: list[str | None], name: str) -> list[str]:
        """API keys issued as `hailong keys create` does, straight into intake's schema (one per entry)."""
        from services.intake.keys import create_api_key

        engine = create_async_engine(
            self.postgres.url_for(DATABASE), connect_args={"server_settings": {"search_path": "intake"}}
        )
        try:
            async with engine.begin() as conn:
                return [(await create_api_key(conn, role, f"{name} {n + 1}", unit)).token for n, unit in enumerate(units)]
        finally:
            await engine.dispose()

    # --- faults -------------------------------------------------------------------------------------------

    async def crash_service(self, name: str) -> None:
        await asyncio.to_thread(self.services[name].kill)

    async def start_service(self, name: str) -> float:
        service = self.services[name]
        started = time.monotonic()
        service.start()
        await service.wait_healthy()
        return time.monotonic() - started

    async def crash_broker(self) -> None:
        await asyncio.to_thread(self.broker.kill)

    async def start_broker(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(self.broker.start_and_wait, 180)
        return time.monotonic() - started

    async def crash_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.kill)

    async def start_postgres(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(self.postgres.start)
        return time.monotonic() - started

    def exited_services(self) -> dict[str, int]:
        """Services that died without being told to (a crash the harness did not cause)."""
        return {name: code for name, s in self.services.items() if (code := s.exited()) is not None}

    # --- watching -------------------------------------------------------------------------------------------

    async def end_offsets(self, base_topics: list[str]) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            partitions = [TopicPartition(f"{PREFIX}{t}", p) for t in base_topics for p in range(self.partitions)]
            return dict(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()

    async def backlog(self) -> Backlog:
        assert self.engine is not None
        wanted = sorted({t for subscribed in SUBSCRIPTIONS.values() for t in subscribed})
        ends = await self.end_offsets(wanted)
        backlog = Backlog()
        async with self.engine.connect() as conn:
            for name in SERVICES:
                backlog.outbox[name] = int(await conn.scalar(sa.text(f"SELECT count(*) FROM {name}.outbox WHERE sent_at IS NULL")) or 0)
                stored = {
                    TopicPartition(row.topic, row.partition): row.next_offset
                    for row in await conn.execute(sa.text(
                        f"SELECT topic, partition, next_offset FROM {name}.consumer_offsets WHERE group_id = :group"
                    ), {"group": name})
                }
                subscribed = {f"{PREFIX}{t}" for t in SUBSCRIPTIONS[name]} | {tp.topic for tp in stored}
                backlog.lag[name] = sum(
                    max(0, end - stored.get(tp, 0)) for tp, end in ends.items() if tp.topic in subscribed
                )
            backlog.dirty_counters = int(await conn.scalar(sa.text(
                "SELECT (SELECT count(*) FROM scoring.counters WHERE dirty) + (SELECT count(*) FROM scoring.officer_counters WHERE dirty)"
            )) or 0)
            backlog.due_deliveries = int(await conn.scalar(sa.text(
                "SELECT count(*) FROM publisher.deliveries WHERE status IN ('pending', 'retry')"
            )) or 0)
        return backlog

    async def wait_for_quiet(self, timeout: float, settle: float = 5.0) -> tuple[float, Backlog]:
        """Wait until the backlog is empty twice, `settle` seconds apart; (seconds waited, last backlog)."""
        started = time.monotonic()
        last_said = 0.0
        backlog = Backlog()
        quiet_since: float | None = None
        while time.monotonic() - started < timeout:
            try:
                backlog = await self.backlog()
            except Exception as exc:  # a service's schema mid-migration, a broker still electing: look again
                self.say(f"  (backlog not readable yet: {type(exc).__name__})")
                backlog = Backlog(outbox={"?": 1})
            now = time.monotonic()
            if backlog.quiet:
                quiet_since = quiet_since or now
                if now - quiet_since >= settle:
                    return now - started, backlog
            else:
                quiet_since = None
            if now - last_said > 15:
                self.say(f"  waiting for quiet ({now - started:.0f}s): {backlog.describe()}")
                last_said = now
            await asyncio.sleep(1.0)
        return time.monotonic() - started, backlog

    async def dead_lettered(self) -> dict[str, int]:
        """Records on every .dlq topic (each starts empty in a fresh run)."""
        dlqs = [topics.dlq_of(t) for t in topics.ALL_BASE_TOPICS]
        ends = await self.end_offsets(dlqs)
        out: dict[str, int] = {}
        for tp, end in ends.items():
            out[tp.topic] = out.get(tp.topic, 0) + end
        return out

    async def read_topic(self, base_topic: str) -> list[Any]:
        """Every record of a topic, read from the beginning by a consumer outside the system."""
        ends = await self.end_offsets([base_topic])
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False, group_id=None,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        records: list[Any] = []
        try:
            consumer.assign(list(ends))
            await consumer.seek_to_beginning(*ends)
            remaining = {tp for tp, end in ends.items() if end > 0}
            deadline = time.monotonic() + 300
            while remaining and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for tp, part in batch.items():
                    records.extend(part)
                    if part and part[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            if remaining:
                raise TimeoutError(f"could not read {base_topic} to its end")
        finally:
            await consumer.stop()
        return records
