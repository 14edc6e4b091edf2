"""Suite `freshness`: how soon a rating shows, with the whole system running (scenarios 4 and 7 of issue 7).

The four services run as real processes (SQLite, as `make run`; PostgreSQL too with `--postgres`) on the
bench's broker, with a real HTTP server playing the institution map. Dossiers are loaded first; then kiosks
post single ratings at a steady rate (500/s for 60 s) and, for every rating answered 202, the suite records

- to score: the first `score.changed` on scoring's SSE stream (`GET /v1/rankings/stream`) whose count for the
  rating's unit and month includes it;
- to map: the first PUT received by the map for that unit and month whose count includes it;

as p50 / p99 / max. A unit's k-th accepted rating is reflected by the first figure counting at least k
ratings: ratings of one unit are consumed in their partition's order, so that figure holds it.
The ceiling is Kafka itself in the same run: one hop, producer to an independent consumer, at the same rate.
Peak memory (VmHWM) of each service process is read at the end (scenario 7).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import ROOT, BenchContext, UvicornProcess, cpu_seconds
from deploy.kafka.runner import free_port
from shared.auth import issue_jwt

PREFIX = "benchfresh."
JWT_SECRET = "bench-freshness-jwt-secret-long-enough-for-hs256"
MAP_SECRET = "bench-freshness-map-secret"
SERVICES = ("intake", "scoring", "workflow", "publisher")
UNITS = 50
PERIOD = "2026-11"
MAP_PROFILE = "hcmc-2024"


@dataclass
class MapServer:
    """The institution map: answers 200 (HTTP/1.1, kept alive) and keeps (arrival time, unit, period, ratings) of every PUT."""

    received: list[tuple[float, str, str, int]] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        outer, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as a real map's HTTPS front does: with HTTP/1.0 every push opened a connection of its own.
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with lock:
                    outer.received.append((time.time(), body["unit_code"], body["period"], int(body["ratings"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()


class ScoreStream:
    """Reads scoring's SSE stream in a thread: (arrival time, unit, ratings) of every satisfied-share month figure."""

    def __init__(self, url: str) -> None:
        self.events: list[tuple[float, str, int]] = []
        self.connected = threading.Event()
        self._stop = False
        threading.Thread(target=self._read, args=(url,), daemon=True).start()

    def _read(self, url: str) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(10, read=None)) as client, client.stream("GET", url) as response:
                self.connected.set()
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if line.startswith("data:"):
                        data = json.loads(line[5:])
                        self.events.append((time.time(), data["unit_code"], int(data["ratings"])))
        except httpx.HTTPError:
            return

    def stop(self) -> None:
        self._stop = True


def _dossier(code: str, unit: str) -> dict[str, Any]:
    return {
        "dossier_code": code, "unit_code": unit, "procedure_code": "1.004227", "channel": "in_person",
        "received_at": "2026-11-10T08:00:00+07:00", "due_at": "2026-11-19T17:00:00+07:00",
        "completed_at": "2026-11-18T10:00:00+07:00", "result": "approved",
    }


def _rating(code: str, index: int) -> dict[str, Any]:
    return {
        "dossier_code": code, "channel": "kiosk", "device_id": f"KIOSK-{index % 997}", "submitted_at": "2026-11-18T10:02:10+07:00",
        "overall": "satisfied" if index % 7 else "normal", "attitude": "good", "respondent": {"phone": f"+8490{index:07d}"},
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 1), "p99_ms": round(pick(0.99) * 1000, 1), "max_ms": round(ordered[-1] * 1000, 1)}


def reflection_delays(accepted: dict[str, list[float]], seen: list[tuple[float, str, int]]) -> tuple[list[float], int]:
    """For each unit's k-th accepted rating, seconds from its 202 to the first sighting counting ≥ k ratings.

    Returns the delays and how many ratings were never seen reflected."""
    first_time_at_count: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for at, unit, count in sorted(seen):
        best = first_time_at_count[unit]
        if not best or count > best[-1][0]:
            best.append((count, at))
    delays: list[float] = []
    missing = 0
    for unit, times in accepted.items():
        sightings = first_time_at_count.get(unit, [])
        counts = [c for c, _ in sightings]
        for k, answered_at in enumerate(sorted(times), start=1):
            index = bisect.bisect_left(counts, k)
            if index == len(counts):
                missing += 1
                continue
            delays.append(max(0.0, sightings[index][1] - answered_at))
    return delays, missing


async def kafka_hop(bootstrap: str, topic: str, rate: int, seconds: float) -> list[float]:
    """The ceiling: seconds from a producer's send to an independent consumer receiving it, at `rate` per second."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", group_id=None, fetch_max_wait_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await consumer.start()
    await producer.start()
    delays: list[float] = []
    try:
        await consumer.getmany(timeout_ms=500)  # joined and positioned at the end
        received: dict[str, float] = {}

        async def receive(expect: int) -> None:
            deadline = time.monotonic() + seconds + 30
            while len(received) < expect and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        received[record.value.decode()] = time.time()

        total = int(rate * seconds)
        reader = asyncio.create_task(receive(total))
        sent: dict[str, float] = {}
        started = time.monotonic()
        for n in range(total):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            key = str(n)
            sent[key] = time.time()
            await producer.send(topic, key.encode(), key=key.encode())
        await reader
        delays = [received[k] - sent[k] for k in sent if k in received]
    finally:
        await producer.stop()
        await consumer.stop()
    return delays


async def post_steadily(
    url: str, token: str, dossiers: list[tuple[str, str]], rate: int, connections: int = 48
) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """Rate each (unit, dossier code) at `rate` per second; the 202 times per unit, the statuses, the achieved rate.

    Plain HTTP/1.1 over kept-alive asyncio streams with each request's bytes built beforehand: httpx took ~1 ms of
    CPU a request, so at 500/s the load generator alone took half of one of the machine's two cores from the
    services it measures."""
    accepted: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, int] = defaultdict(int)
    host, port = url.removeprefix("http://").split(":")
    requests = [_request_bytes(host, int(port), token, _rating(code, index)) for index, (_, code) in enumerate(dossiers)]
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (index := await queue.get()) is not None:
                try:
                    writer.write(requests[index])
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                    body = await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
                    statuses[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                    continue
                statuses[str(status)] += 1
                if status == 202 and json.loads(body)["status"] == "accepted":
                    accepted[dossiers[index][0]].append(time.time())
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.monotonic()
    for index in range(len(dossiers)):
        await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        queue.put_nowait(index)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    achieved = len(dossiers) / (time.monotonic() - started)
    return accepted, dict(statuses), achieved


def _request_bytes(host: str, port: int, token: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (f"POST /v1/ratings HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


async def _new_key(database_url: str, role: str, unit: str | None = None) -> str:
    from services.intake.keys import create_api_key
    from shared.db import create_engine_for

    engine = create_engine_for(database_url, "intake")
    try:
        async with engine.begin() as conn:
            return (await create_api_key(conn, role, f"bench {role}", unit)).token
    finally:
        await engine.dispose()


async def measure(ctx: BenchContext, database: str) -> list[dict[str, Any]]:
    from deploy.kafka.runner import ensure_topics
    from shared.topics import topic_specs

    rate, seconds = 500, max(10, int(60 * ctx.scale))
    prefix = f"{PREFIX}{database}."
    await ensure_topics(ctx.bootstrap, topic_specs(prefix, 3))
    data_dir = ctx.tmp / database
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = ctx.postgres.create_database(f"bench_fresh_{uuid.uuid4().hex[:8]}") if database == "postgresql" else None
    institution_map = MapServer()
    env = {
        "HAILONG_DATA_DIR": str(data_dir), "HAILONG_KAFKA_BOOTSTRAP": ctx.bootstrap, "HAILONG_TOPIC_PREFIX": prefix,
        "HAILONG_JWT_SECRET": JWT_SECRET, "HAILONG_RESPONDENT_HASH_KEY": "bench-freshness-respondent-key",
        "HAILONG_MAP_URL": institution_map.url, "HAILONG_MAP_TOKEN": "bench", "HAILONG_MAP_SIGNING_SECRET": MAP_SECRET,
        "HAILONG_LOG_JSON": "true", "HAILONG_LOG_LEVEL": "WARNING",
        # Kiosks of a whole province: the abuse limits are not what is measured here.
        "HAILONG_INTAKE_RATE_LIMIT_KIOSK": "100000000/minute", "HAILONG_INTAKE_RATE_LIMIT_PORTAL": "100000000/minute",
        "HAILONG_INTAKE_BURST_MAX_RATINGS": "100000000", "HAILONG_INTAKE_REPEAT_MAX_RATINGS": "100000000",
        "HAILONG_SCORING_PUBLIC_RATE_LIMIT": "100000/minute",
        # The pace agreed with the map bounds its freshness: every hot unit-period (50 units x month, quarter,
        # half, year = 200 rows) waits its turn, 10 s at the default 20 pushes/s. A map built for a province
        # at once takes more; this local one takes 200/s, 8 at a time (docs/operations.md).
        "HAILONG_MAP_RATE_PER_SECOND": "200", "HAILONG_MAP_CONCURRENCY": "8",
    }
    if database_url:
        env["HAILONG_DATABASE_URL"] = database_url
    intake_url = database_url or f"sqlite+aiosqlite:///{(data_dir / 'intake.db').resolve()}"
    services = {name: UvicornProcess(f"services.{name}.app:app", env, ctx.tmp / f"{name}-{database}.log") for name in SERVICES}
    stream: ScoreStream | None = None
    try:
        for service in services.values():
            service.wait_answering("/readyz", 90)
        intake, scoring = services["intake"], services["scoring"]
        admin = {"Authorization": f"Bearer {issue_jwt(JWT_SECRET, 'bench', 'admin')}"}
        units = [f"79.F{n:03d}" for n in range(UNITS)]
        async with httpx.AsyncClient(base_url=intake.url, timeout=60, headers=admin) as client:
            (await client.put("/v1/units/79", json={"name": "Thành phố Hồ Chí Minh", "level": "province"})).raise_for_status()
            for code in units:
                body = {"name": f"Phường đo {code} (bench)", "level": "ward", "parent_code": "79"}
                (await client.put(f"/v1/units/{code}", json=body)).raise_for_status()
        portal, kiosk = await _new_key(intake_url, "portal"), await _new_key(intake_url, "kiosk")
        dossiers = [(units[n % UNITS], f"FR-{n}") for n in range(rate * seconds)]
        async with httpx.AsyncClient(base_url=intake.url, timeout=120, headers={"Authorization": f"Bearer {portal}"}) as client:
            for start in range(0, len(dossiers), 1000):
                items = [_dossier(code, unit) for unit, code in dossiers[start:start + 1000]]
                answer = await client.post("/v1/dossiers/batch", json={"items": items})
                answer.raise_for_status()
        # Let the dossiers settle at scoring: only the ratings' freshness is measured.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            cards = [httpx.get(f"{scoring.url}/v1/units/{u}/scores", params={"period": PERIOD, "profile": "satisfied-share"}, timeout=10) for u in units[:1] + units[-1:]]
            if all(c.status_code == 200 and c.json()["dossiers"] == len(dossiers) // UNITS for c in cards):
                break
            await asyncio.sleep(1)
        stream = ScoreStream(f"{scoring.url}/v1/rankings/stream?profile=satisfied-share&period={PERIOD}")
        stream.connected.wait(30)
        await asyncio.sleep(1)

        print(f"  posting {len(dossiers):,} kiosk ratings at {rate}/s over {len(units)} units ({database})", flush=True)
        cpu_before = {name: service.cpu_seconds() for name, service in services.items()} | {"load generator": cpu_seconds("self")}
        posting_started = time.monotonic()
        by_unit, statuses, achieved = await post_steadily(intake.url, kiosk, dossiers, rate)
        posting_seconds = time.monotonic() - posting_started
        cpu_after = {name: service.cpu_seconds() for name, service in services.items()} | {"load generator": cpu_seconds("self")}
        # Share of one core each process took while the ratings were posted: where the two cores went.
        cpu_share = {name: round((cpu_after[name] - cpu_before[name]) / posting_seconds, 2) for name in cpu_before}
        total = sum(len(t) for t in by_unit.values())
        settle = time.monotonic() + 120
        while time.monotonic() < settle:
            _, missing_score = reflection_delays(by_unit, stream.events)
            mapped = [(at, unit, count) for at, unit, period, count in institution_map.received if period == PERIOD]
            _, missing_map = reflection_delays(by_unit, mapped)
            if not missing_score and not missing_map:
                break
            await asyncio.sleep(1)
        to_score, missing_score = reflection_delays(by_unit, stream.events)
        mapped = [(at, unit, count) for at, unit, period, count in institution_map.received if period == PERIOD]
        to_map, missing_map = reflection_delays(by_unit, mapped)
        memory = {name: round(service.peak_rss_mb(), 1) for name, service in services.items()}
    finally:
        if stream is not None:
            stream.stop()
        for service in services.values():
            service.stop()
        institution_map.close()

    hop = await kafka_hop(ctx.bootstrap, f"{prefix}ratings.v1.dlq", rate, min(seconds, 20))
    ceiling = percentiles(hop)
    score, map_ = percentiles(to_score), percentiles(to_map)
    print(f"  202 → score (SSE): {score}; 202 → map: {map_}; Kafka hop: {ceiling}; achieved {achieved:.0f}/s; {statuses}", flush=True)
    print(f"  peak RSS (MB): {memory}", flush=True)
    print(f"  CPU while posting (cores): {cpu_share}", flush=True)
    common = {"ratings_answered_202": total, "offered_rate_per_second": rate, "achieved_rate_per_second": round(achieved, 1),
              "seconds": seconds, "statuses": statuses, "units": UNITS, "cpu_cores_while_posting": cpu_share}
    return [
        {"scenario": f"freshness: 202 → unit's score on scoring's SSE stream ({database})", "unit": "ms (p99)",
         "value": score["p99_ms"], "ceiling": "one Kafka hop, producer → consumer, same rate", "ceiling_value": ceiling["p99_ms"],
         "ratio_to_ceiling": round(ceiling["p99_ms"] / score["p99_ms"], 3) if score["p99_ms"] else None,
         "target": "p99 < 1 s", **score, "ceiling_p50_ms": ceiling["p50_ms"], "never_seen": missing_score, **common},
        {"scenario": f"freshness: 202 → institution map receives it ({database})", "unit": "ms (p99)",
         "value": map_["p99_ms"], "ceiling": "one Kafka hop, producer → consumer, same rate", "ceiling_value": ceiling["p99_ms"],
         "ratio_to_ceiling": round(ceiling["p99_ms"] / map_["p99_ms"], 3) if map_["p99_ms"] else None,
         "target": "p99 < 2 s", **map_, "never_seen": missing_map, "map_profile": MAP_PROFILE},
        {"scenario": f"peak memory (VmHWM) of each service during the freshness run ({database})", "unit": "MB (largest)",
         "value": max(memory.values()), "ceiling": "", "ceiling_value": None, "ratio_to_ceiling": None,
         "target": "< 250 MB per service", **{f"{name}_mb": mb for name, mb in memory.items()}},
    ]


async def run(ctx: BenchContext) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for database in ["sqlite"] + (["postgresql"] if ctx.postgres is not None else []):
        rows += await measure(ctx, database)
    return rows
