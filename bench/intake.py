"""Suite `intake`: the real intake process beside its ceiling (the same FastAPI stack answering without a
database or Kafka), both under uvicorn, measured in the same run.

1. single `POST /v1/ratings` at 64 concurrent connections, load from Debian's `wrk` (bench/wrk/ratings.lua,
   one fresh dossier per request, loaded beforehand so every rating is counted): requests/s and p50/p99;
2. `POST /v1/ratings/batch` of 1,000 ratings from two concurrent clients: ratings/s.

Intake runs on SQLite (the default of `make run`) and, with `python -m bench intake --postgres`, also on
PostgreSQL, against the bench's broker; its outbox relay publishes to Kafka during the run, as in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from bench.common import ROOT, BenchContext, UvicornProcess, ratio_row
from shared.auth import issue_jwt
from shared.topics import topic_specs

PREFIX = "benchintake."
JWT_SECRET = "bench-jwt-secret-long-enough-for-hs256-signatures"
WRK_SCRIPT = ROOT / "bench" / "wrk" / "ratings.lua"
CONNECTIONS = 64
THREADS = 2


@contextmanager
def profiled(server: UvicornProcess, name: str) -> Iterator[None]:
    """With BENCH_PROFILE=<folder>, py-spy samples `server` for the block (raw collapsed stacks per thread,
    <folder>/<name>.txt): the profiles of bench/notes/intake.md were taken this way."""
    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.process.pid), "--format", "raw", "--threads", "--rate", "100",
         "--output", str(Path(folder) / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(30)


def wrk(url: str, seconds: int, token: str, prefix: str) -> dict[str, Any]:
    result = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), f"{url}/v1/ratings"],
        capture_output=True, text=True, env={**os.environ, "BENCH_TOKEN": token, "BENCH_PREFIX": prefix}, timeout=seconds + 60,
    )
    line = next((l for l in result.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(line.removeprefix("BENCH_JSON "))
    summary["rps"] = summary["requests"] / summary["seconds"]
    print(f"  wrk {url}: {summary['rps']:,.0f} req/s p50 {summary['p50_ms']:.1f} ms p99 {summary['p99_ms']:.1f} ms {summary['statuses']}", flush=True)
    return summary


def dossier(code: str, unit: str) -> dict[str, Any]:
    return {
        "dossier_code": code, "unit_code": unit, "procedure_code": "1.004227", "channel": "in_person",
        "received_at": "2026-11-10T08:00:00+07:00", "due_at": "2026-11-19T17:00:00+07:00",
        "completed_at": "2026-11-18T10:00:00+07:00", "officer_ids": [f"{unit}.CB0012"], "result": "approved",
    }


def rating(code: str, index: int) -> dict[str, Any]:
    return {
        "dossier_code": code, "channel": "portal", "submitted_at": "2026-11-18T10:02:10+07:00",
        "overall": "satisfied" if index % 5 else "dissatisfied", "attitude": "good",
        "criteria": {"access": 5, "procedure": 4, "officer": 5, "result": 5, "feedback": 4},
        "reasons": [] if index % 5 else ["processing_time"],
    }


async def post_batches(url: str, token: str, batches: list[list[dict[str, Any]]], clients: int = 2) -> tuple[float, int]:
    """Seconds to post every batch with `clients` concurrent posters, and the items answered without error.

    The bodies are serialised before the clock starts and the answers read with orjson: the clients share the
    machine's two cores with the server, and the standard library's JSON (httpx's `json=`) cost them ~5 ms of
    CPU a batch that a portal's own machine would spend, not intake's."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(orjson.dumps({"items": batch}))
    ok = 0

    async def poster() -> None:
        nonlocal ok
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as client:
            while not queue.empty():
                body = queue.get_nowait()
                answer = await client.post("/v1/ratings/batch", content=body)
                answer.raise_for_status()
                ok += orjson.loads(answer.content)["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(clients)))
    return time.perf_counter() - started, ok


async def load_dossiers(url: str, token: str, codes: list[str], unit: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:
        for start in range(0, len(codes), 1000):
            answer = await client.post("/v1/dossiers/batch", json={"items": [dossier(c, unit) for c in codes[start:start + 1000]]})
            answer.raise_for_status()
            assert answer.json()["failed"] == 0, answer.text[:500]


async def new_key(database_url: str, role: str) -> str:
    from services.intake.keys import create_api_key
    from shared.db import create_engine_for

    engine = create_engine_for(database_url, "intake")
    try:
        async with engine.begin() as conn:
            return (await create_api_key(conn, role, f"bench {role}", None)).token
    finally:
        await engine.dispose()


async def outbox_drained(database_url: str, timeout: float = 300) -> float:
    """Wait until intake's relay has published every event of the set-up (the dossiers just loaded): the
    measured posts should not share the CPU with publishing what came before them. Seconds waited."""
    from services.intake.store import bus
    from shared.bus.outbox import count_unsent
    from shared.db import create_engine_for

    engine = create_engine_for(database_url, "intake")
    started = time.monotonic()
    try:
        while (backlog := await count_unsent(engine, bus)) > 0:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"intake's outbox still holds {backlog:,} events after {timeout:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    return time.monotonic() - started


async def counted(database_url: str) -> dict[str, int]:
    from shared.db import create_engine_for

    engine = create_engine_for(database_url, "intake")
    try:
        async with engine.connect() as conn:
            return dict((await conn.execute(sa.text("SELECT status, count(*) FROM ratings GROUP BY status"))).all())
    finally:
        await engine.dispose()


async def run(ctx: BenchContext) -> list[dict[str, Any]]:
    """SQLite always; PostgreSQL too when the bench was started with --postgres."""
    from deploy.kafka.runner import ensure_topics

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is missing: `make bench` installs it (apt-get install wrk)")
    rows = []
    for database in ["sqlite"] + (["postgresql"] if ctx.postgres is not None else []):
        prefix = f"{PREFIX}{database}."
        await ensure_topics(ctx.bootstrap, topic_specs(prefix, 3))
        url = ctx.postgres.create_database(f"bench_intake_{uuid.uuid4().hex[:8]}") if database == "postgresql" else f"sqlite+aiosqlite:///{ctx.tmp / 'intake.db'}"
        rows += await measure(ctx, database, url, prefix)
    return rows


async def measure(ctx: BenchContext, database: str, database_url: str, prefix: str) -> list[dict[str, Any]]:
    seconds = max(5, int(20 * ctx.scale))
    env = {
        "HAILONG_DATABASE_URL": database_url, "HAILONG_KAFKA_BOOTSTRAP": ctx.bootstrap, "HAILONG_TOPIC_PREFIX": prefix,
        "HAILONG_JWT_SECRET": JWT_SECRET, "HAILONG_RESPONDENT_HASH_KEY": "bench-respondent-key", "HAILONG_LOG_JSON": "true",
        "HAILONG_INTAKE_RATE_LIMIT_KIOSK": "100000000/minute", "HAILONG_INTAKE_RATE_LIMIT_PORTAL": "100000000/minute",
        "HAILONG_INTAKE_RATE_LIMIT_DEFAULT": "100000000/minute",
    }
    intake = UvicornProcess("services.intake.app:app", env, ctx.tmp / f"intake-{database}.log")
    ceiling = UvicornProcess("bench._intake_ceiling:app", env, ctx.tmp / f"ceiling-{database}.log")
    for server in (intake, ceiling):
        server.wait_answering("/openapi.json", 60)
    rows: list[dict[str, Any]] = []
    try:
        admin = issue_jwt(JWT_SECRET, "bench", "admin")
        unit = "79.BENCH"
        for code, body in (("79", {"name": "Thành phố Hồ Chí Minh", "level": "province"}),
                           (unit, {"name": "Đơn vị đo (bench)", "level": "department", "parent_code": "79"})):
            httpx.put(f"{intake.url}/v1/units/{code}", json=body, headers={"Authorization": f"Bearer {admin}"}, timeout=30).raise_for_status()
        kiosk, portal = await new_key(database_url, "kiosk"), await new_key(database_url, "portal")

        # 1. Single posts. wrk's threads number their requests; every code it can reach is loaded first.
        per_thread = 2_500 * seconds  # more than wrk can send in `seconds`
        singles = [f"S-{thread}-{n}" for thread in range(THREADS) for n in range(1, per_thread + 1)]
        loading = time.perf_counter()
        await load_dossiers(intake.url, portal, singles, unit)
        print(f"  loaded {len(singles):,} dossiers in {time.perf_counter() - loading:.1f}s"
              f" (published {await outbox_drained(database_url):.1f}s later)", flush=True)
        wrk(ceiling.url, 3, kiosk, "S")  # warm-up of both servers (imports, caches)
        ceiling_cpu = ceiling.cpu_seconds()
        top = wrk(ceiling.url, seconds, kiosk, "S")
        ceiling_cpu = ceiling.cpu_seconds() - ceiling_cpu
        intake_cpu, relay_cpu = intake.cpu_seconds(), intake.children_cpu_seconds()
        with profiled(intake, f"single-{database}"):
            measured = wrk(intake.url, seconds, kiosk, "S")
        intake_cpu, relay_cpu = intake.cpu_seconds() - intake_cpu, intake.children_cpu_seconds() - relay_cpu
        accepted = measured["statuses"].get("202", 0)
        rows.append(ratio_row(
            f"single POST /v1/ratings, {CONNECTIONS} connections ({database})", "requests/s", measured["rps"],
            "same FastAPI stack answering 202 without database or Kafka", top["rps"],
            target="≥ 50% of ceiling, p99 < 50 ms", p50_ms=round(measured["p50_ms"], 1), p99_ms=round(measured["p99_ms"], 1),
            ceiling_p50_ms=round(top["p50_ms"], 1), ceiling_p99_ms=round(top["p99_ms"], 1), answered_202=accepted,
            other_statuses={k: v for k, v in measured["statuses"].items() if k != "202"}, socket_errors=measured["socket_errors"],
            # CPU time per request of each process (all its threads): steadier than throughput on a shared machine.
            cpu_us_per_request=round(intake_cpu / max(1, measured["requests"]) * 1e6), ceiling_cpu_us_per_request=round(ceiling_cpu / max(1, top["requests"]) * 1e6),
            # intake's outbox relay runs in a child process (shared/bus/relay_process.py): its CPU, on top of the above.
            relay_cpu_us_per_request=round(relay_cpu / max(1, measured["requests"]) * 1e6),
            load_average=round(os.getloadavg()[0], 1),
        ))
        print(f"  cpu_us_per_request: intake {rows[-1]['cpu_us_per_request']} (+ its relay process {rows[-1]['relay_cpu_us_per_request']}),"
              f" ceiling {rows[-1]['ceiling_cpu_us_per_request']}", flush=True)

        # 2. Batches of 1,000 from two clients.
        count = max(10_000, int(60_000 * ctx.scale))
        codes = [f"B-{n}" for n in range(count)]
        await load_dossiers(intake.url, portal, codes, unit)
        await outbox_drained(database_url)
        batches = [[rating(code, i) for i, code in enumerate(codes[start:start + 1000], start)] for start in range(0, count, 1000)]
        ceiling_cpu = ceiling.cpu_seconds()
        ceiling_seconds, _ = await post_batches(ceiling.url, portal, batches)
        ceiling_cpu = ceiling.cpu_seconds() - ceiling_cpu
        intake_cpu, relay_cpu = intake.cpu_seconds(), intake.children_cpu_seconds()
        with profiled(intake, f"batch-{database}"):
            batch_seconds, ok = await post_batches(intake.url, portal, batches)
        intake_cpu, relay_cpu = intake.cpu_seconds() - intake_cpu, intake.children_cpu_seconds() - relay_cpu
        rows.append(ratio_row(
            f"POST /v1/ratings/batch of 1,000, 2 clients ({database})", "ratings/s", ok / batch_seconds,
            "same FastAPI stack validating the batch without database or Kafka", count / ceiling_seconds,
            target="≥ 20,000 ratings/s", ratings=count, accepted=ok,
            cpu_us_per_rating=round(intake_cpu / count * 1e6), ceiling_cpu_us_per_rating=round(ceiling_cpu / count * 1e6),
            relay_cpu_us_per_rating=round(relay_cpu / count * 1e6),
            load_average=round(os.getloadavg()[0], 1),
        ))
        print(f"  cpu_us_per_rating: intake {rows[-1]['cpu_us_per_rating']} (+ its relay process {rows[-1]['relay_cpu_us_per_rating']}),"
              f" ceiling {rows[-1]['ceiling_cpu_us_per_rating']}", flush=True)
        stored = await counted(database_url)
        print(f"  intake holds {stored}", flush=True)

        # 7. Peak memory of intake over scenarios 1 and 2 (and the dossier loading before them).
        peak, ceiling_peak, relay_peak = intake.peak_rss_mb(), ceiling.peak_rss_mb(), intake.children_peak_rss_mb()
        print(f"  peak RSS: intake {peak:.0f} MiB (its relay process {relay_peak:.0f} MiB), ceiling {ceiling_peak:.0f} MiB", flush=True)
        rows.append({
            "scenario": f"intake peak RSS during single posts and batches ({database})", "unit": "MiB", "value": round(peak, 1),
            "ceiling": "the ceiling app's peak RSS (for comparison; lower is better)", "ceiling_value": round(ceiling_peak, 1),
            "ratio_to_ceiling": round(peak / ceiling_peak, 3), "target": "< 250 MB", "ratings_stored": sum(stored.values()),
            "relay_process_peak_mib": round(relay_peak, 1),
        })
    finally:
        intake.stop()
        ceiling.stop()
    return rows
