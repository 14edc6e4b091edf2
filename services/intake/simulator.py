"""`hailong simulate kiosk`: kiosks at a one-stop shop posting ratings at a steady rate, retrying like real
kiosks, then checking that intake, the ratings topic and scoring count the same ratings.

Each simulated rating belongs to a fresh dossier completed a minute earlier (posted by the portal key), so
it is counted at once. A kiosk retries a timed-out, refused-for-load (429/503) or failed (5xx) post with the
same Idempotency-Key: a retry can never count twice. After the run the three counts are compared as
deltas against their values at the start; the command exits 1 when they still disagree after the quiet
period.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from shared.periods import month_of

RETRYABLE = {429, 500, 502, 503, 504}


@dataclass
class Options:
    intake_url: str
    scoring_url: str
    credentials: Path
    bootstrap: str
    ratings_topic: str
    rate: float
    duration: float
    kiosks: int | None = None
    unit_code: str | None = None
    quiet_seconds: float = 30.0
    timeout: float = 5.0
    max_attempts: int = 8
    concurrency: int = 64
    kiosk_keys: list[str] = field(default_factory=list)  # one per simulated kiosk (each key has its own rate limit)


@dataclass
class Tally:
    sent: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass
class Counts:
    intake: int | None
    topic: int | None
    scoring: int | None

    def agree(self) -> bool:
        return self.intake is not None and self.intake == self.topic == self.scoring


class Simulator:
    def __init__(self, options: Options, say: Any = print) -> None:
        self.o = options
        self.say = say
        credentials = json.loads(options.credentials.read_text(encoding="utf-8"))
        self.admin = credentials["admin"]
        self.portal = credentials["portal"]
        self.kiosk_keys = options.kiosk_keys or [credentials["kiosk"]["key"]]
        self.unit = options.unit_code or credentials["kiosk"]["unit_code"]
        self.run_id = uuid.uuid4().hex[:8]
        self.tally = Tally()
        self.period = str(month_of(datetime.now(timezone.utc)))
        # Enough kiosks that none of them looks like a burst (default: 5 ratings a minute each at most).
        self.kiosks = options.kiosks or max(1, int(options.rate * 15) + 1)

    async def _post(self, client: httpx.AsyncClient, path: str, token: str, body: dict[str, Any]) -> httpx.Response | None:
        """POST with the kiosk's retry policy: same Idempotency-Key, backoff with jitter, Retry-After honoured."""
        key = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        for attempt in range(self.o.max_attempts):
            try:
                answer = await client.post(path, json=body, headers=headers, timeout=self.o.timeout)
                if answer.status_code not in RETRYABLE:
                    return answer
                delay = float(answer.headers.get("Retry-After", 0) or 0)
            except (httpx.TimeoutException, httpx.TransportError):
                delay = 0.0
            self.tally.retries += 1
            await asyncio.sleep(max(delay, min(8.0, 0.2 * 2**attempt)) * (0.5 + random.random()))
        return None

    async def _one(self, client: httpx.AsyncClient, index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            now = datetime.now(timezone.utc)
            code = f"SIM-{self.run_id}-{index:07d}"
            dossier = {
                "dossier_code": code, "unit_code": self.unit, "procedure_code": "1.004227", "channel": "in_person",
                "received_at": (now - timedelta(days=3)).isoformat(), "due_at": (now + timedelta(days=2)).isoformat(),
                "completed_at": (now - timedelta(minutes=1)).isoformat(), "result": "approved",
            }
            started = time.perf_counter()
            stored = await self._post(client, "/v1/dossiers", self.portal, dossier)
            if stored is None or stored.status_code != 202:
                self.tally.failed += 1
                return
            overall = random.choices(["very_satisfied", "satisfied", "normal", "dissatisfied"], [4, 4, 1, 1])[0]
            rating = {
                "dossier_code": code, "channel": "kiosk", "device_id": f"SIM-KIOSK-{self.run_id}-{index % self.kiosks:03d}",
                "submitted_at": now.isoformat(), "overall": overall, "attitude": "good" if overall in {"very_satisfied", "satisfied"} else "normal",
                "reasons": ["processing_time"] if overall == "dissatisfied" else [],
            }
            answer = await self._post(client, "/v1/ratings", self.kiosk_keys[index % len(self.kiosk_keys)], rating)
            self.tally.latencies.append(time.perf_counter() - started)
            if answer is None or answer.status_code != 202:
                self.tally.failed += 1
                if answer is not None:
                    self.say(f"rating refused: {answer.status_code} {answer.text[:200]}")
                return
            status = answer.json()["status"]
            self.tally.by_status[status] = self.tally.by_status.get(status, 0) + 1

    async def _intake_count(self, client: httpx.AsyncClient) -> int | None:
        try:
            answer = await client.get("/v1/ratings/counts", params={"unit_code": self.unit}, headers={"Authorization": f"Bearer {self.admin}"})
            return int(answer.json()["by_status"].get("accepted", 0)) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def _scoring_count(self) -> int | None:
        try:
            async with httpx.AsyncClient(base_url=self.o.scoring_url, timeout=10) as client:
                answer = await client.get(f"/v1/units/{self.unit}/scores", params={"period": self.period})
            if answer.status_code == 404:
                return 0
            return int(answer.json()["ratings"]) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def _topic_count(self, consumer: AIOKafkaConsumer) -> int:
        """rating.accepted events of this run on the topic, read by a consumer outside the system."""
        count = 0
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:
                        continue
                    if event.get("type") == "vn.hailong.rating.accepted.v1" and str(event["data"].get("dossier_code", "")).startswith(f"SIM-{self.run_id}-"):
                        count += 1
        return count

    async def run(self) -> int:
        consumer = AIOKafkaConsumer(
            self.o.ratings_topic, bootstrap_servers=self.o.bootstrap, enable_auto_commit=False, group_id=None,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            partitions = list(consumer.assignment())
            if not partitions:
                self.say(f"no topic {self.o.ratings_topic} on {self.o.bootstrap}")
                return 2
            for tp, end in (await consumer.end_offsets(partitions)).items():
                consumer.seek(tp, end)  # only this run's events matter
            async with httpx.AsyncClient(base_url=self.o.intake_url, timeout=self.o.timeout) as client:
                before_intake, before_scoring = await self._intake_count(client), await self._scoring_count()
                if before_intake is None or before_scoring is None:
                    self.say("intake or scoring is not answering; is `make run` up and are the URLs right?")
                    return 2
                total = int(self.o.rate * self.o.duration)
                self.say(f"run {self.run_id}: {total} ratings at {self.o.rate:g}/s for {self.o.duration:g}s from {self.kiosks} kiosks at {self.unit}")
                gate = asyncio.Semaphore(self.o.concurrency)
                start = time.monotonic()
                tasks = []
                for index in range(total):
                    delay = start + index / self.o.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(self._one(client, index, gate)))
                await asyncio.gather(*tasks)
                self.tally.sent = total
                elapsed = time.monotonic() - start
                self._report_run(elapsed)
                topic = 0
                deadline = time.monotonic() + self.o.quiet_seconds
                while True:
                    topic += await self._topic_count(consumer)
                    intake_now, scoring_now = await self._intake_count(client), await self._scoring_count()
                    counts = Counts(
                        None if intake_now is None else intake_now - before_intake, topic,
                        None if scoring_now is None else scoring_now - before_scoring,
                    )
                    if (counts.agree() and counts.intake == self.tally.by_status.get("accepted", 0)) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(2)
        finally:
            await consumer.stop()
        accepted = self.tally.by_status.get("accepted", 0)
        self.say(f"counted ratings of this run — kiosks: {accepted}, intake: {counts.intake}, topic: {counts.topic}, scoring: {counts.scoring}")
        if counts.agree() and counts.intake == accepted:
            self.say("the counts agree")
            return 0
        self.say("the counts DISAGREE")
        return 1

    def _report_run(self, elapsed: float) -> None:
        latencies = sorted(self.tally.latencies)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

        self.say(
            f"sent {self.tally.sent} in {elapsed:.1f}s: {self.tally.by_status} failed {self.tally.failed} "
            f"retries {self.tally.retries}; dossier+rating latency p50 {pct(0.5):.0f} ms p99 {pct(0.99):.0f} ms"
        )


def simulate_kiosk(options: Options, say: Any = print) -> int:
    return asyncio.run(Simulator(options, say).run())
