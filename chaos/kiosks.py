"""The kiosk fleet of the chaos run: one-stop-shop kiosks and the portal posting dossiers and ratings the way
real ones do, and a ledger of every attempt and every answer they got.

Like `hailong simulate kiosk` (services/intake/simulator.py) each rating belongs to a fresh dossier and a
refused-for-load, failed or timed-out post is retried with the same Idempotency-Key; unlike it, the fleet
keeps what the invariants need: for every post, each attempt's outcome — an HTTP status with the body's
rating id, a request that was never sent (connection refused), or one whose fate the kiosk cannot know
(timed out or cut off after sending). It also behaves as badly as real kiosks do:

- some kiosks are impatient: one attempt, and they give up whatever the answer;
- some send an answered request again with the same key (the answer was lost on the way back);
- some citizens press twice: the same rating again under a new key (one counted rating per dossier and
  channel: 409 naming the first);
- some ratings arrive before their dossier (held as pending_dossier, released when it comes);
- some dossiers are completed late (workflow owes an apology letter), some ratings are dissatisfied with
  reasons (workflow opens remediation tickets), and the portal posts ratings with the dossier inline.

Every choice is drawn from a generator seeded by the run's seed and the rating's index, so a run can be
replayed with the same ratings (the moments at which the system answers differ, of course).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

from services.intake.simulator import RETRYABLE
from shared.periods import VIETNAM, local_time

OVERALL_WEIGHTS = {"very_satisfied": 35, "satisfied": 35, "normal": 10, "dissatisfied": 15, "very_dissatisfied": 5}
REASONS = ("equipment", "informal_cost", "attitude", "procedure", "documents", "processing_time", "other")
# Outcomes of an attempt that got no HTTP answer.
NOT_SENT = "not_sent"  # the connection was refused or never made: the service cannot have acted on it
NO_ANSWER = "no_answer"  # timed out or cut off after sending: the service may or may not have acted on it


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    level: str
    parent_code: str | None = None
    weight: int = 0  # share of the ratings (0: no kiosk of its own, e.g. a province)


# Two provinces, their departments and a service centre: ratings on several partitions, figures rolled up.
UNITS = (
    Unit("79", "Thành phố Hồ Chí Minh", "province"),
    Unit("79.SNV", "Sở Nội vụ", "department", "79", 12),
    Unit("79.STP", "Sở Tư pháp", "department", "79", 10),
    Unit("79.SXD", "Sở Xây dựng", "department", "79", 9),
    Unit("79.STNMT", "Sở Tài nguyên và Môi trường", "department", "79", 9),
    Unit("79.SYT", "Sở Y tế", "department", "79", 8),
    Unit("79.SGDDT", "Sở Giáo dục và Đào tạo", "department", "79", 7),
    Unit("79.TTPVHCC", "Trung tâm Phục vụ hành chính công", "center", "79", 15),
    Unit("01", "Thành phố Hà Nội", "province"),
    Unit("01.SNV", "Sở Nội vụ Hà Nội", "department", "01", 10),
    Unit("01.STP", "Sở Tư pháp Hà Nội", "department", "01", 8),
    Unit("01.SXD", "Sở Xây dựng Hà Nội", "department", "01", 7),
    Unit("01.TTPVHCC", "Trung tâm Phục vụ hành chính công Hà Nội", "center", "01", 5),
)
RATED_UNITS = tuple(u for u in UNITS if u.weight)


@dataclass
class Behaviour:
    """How often kiosks misbehave; each share is of all ratings."""

    impatient: float = 0.03  # one attempt only
    resend_answered: float = 0.03  # the answered request again, same key
    second_press: float = 0.01  # the same rating again, new key
    rating_first: float = 0.05  # the rating before its dossier
    late_dossier: float = 0.04  # completed after its due date
    portal: float = 0.15  # posted by the portal (channel portal), half of them with the dossier inline
    timeout_seconds: float = 6.0  # a kiosk's patience per attempt
    give_up_after_seconds: float = 600.0  # a patient kiosk keeps its queue this long


@dataclass
class Attempt:
    at: float  # seconds since the run started
    outcome: str  # "202", "409", "503", … or NOT_SENT / NO_ANSWER
    rating_id: str | None = None  # from a 202, or the first_rating_id of a 409
    status: str | None = None  # the rating's status in a 202
    detail: str | None = None

    @property
    def answered(self) -> bool:
        return self.outcome.isdigit()


@dataclass
class Post:
    """One request with one Idempotency-Key, and every attempt made with it."""

    purpose: str  # dossier | rating | resend | second_press
    key: str
    attempts: list[Attempt] = field(default_factory=list)

    def first(self, outcome: str) -> Attempt | None:
        return next((a for a in self.attempts if a.outcome == outcome), None)


@dataclass
class RatingRecord:
    """One citizen's rating of one dossier, and every post the fleet made for it."""

    index: int
    unit_code: str
    dossier_code: str
    completed_at: str
    due_at: str
    overall: str
    reasons: list[str]
    channel: str  # kiosk | portal
    inline_dossier: bool
    rating_first: bool
    impatient: bool
    posts: list[Post] = field(default_factory=list)

    def post(self, purpose: str) -> Post | None:
        return next((p for p in self.posts if p.purpose == purpose), None)

    @property
    def late(self) -> bool:
        return local_time(datetime.fromisoformat(self.completed_at)).date() > local_time(datetime.fromisoformat(self.due_at)).date()


@dataclass
class FleetTally:
    planned: int = 0
    finished: int = 0
    attempts: int = 0
    retries: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)

    def note(self, outcome: str) -> None:
        self.attempts += 1
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1


def quarter_months(now: datetime) -> list[tuple[int, int]]:
    """The months of the current quarter (Việt Nam time) up to this one: no period of the run has closed,
    so the publisher freezes no official snapshot while the run is on."""
    local = local_time(now)
    first = 3 * ((local.month - 1) // 3) + 1
    return [(local.year, month) for month in range(first, local.month + 1)]


def draw_record(seed: int, index: int, run_id: str, now: datetime, behaviour: Behaviour) -> tuple[RatingRecord, dict[str, Any], dict[str, Any]]:
    """The index-th rating of a run: (record, dossier body, rating body), all drawn from (seed, index)."""
    rng = random.Random(seed * 1_000_003 + index)
    unit = rng.choices(RATED_UNITS, [u.weight for u in RATED_UNITS])[0]
    year, month = rng.choice(quarter_months(now))
    start = datetime(year, month, 1, tzinfo=VIETNAM)
    latest = max(start, min(now - timedelta(minutes=5), (start + timedelta(days=32)).replace(day=1) - timedelta(hours=2)))
    completed = start + (latest - start) * rng.random()
    received = completed - timedelta(days=rng.uniform(1, 12))
    late = rng.random() < behaviour.late_dossier
    due = completed - timedelta(days=rng.uniform(1.2, 3)) if late else completed + timedelta(days=rng.uniform(0.5, 5))
    due = max(due, received)
    if late and local_time(due).date() >= local_time(completed).date():
        late = False  # received and due on the completion day: not late after all
    overall = rng.choices(list(OVERALL_WEIGHTS), list(OVERALL_WEIGHTS.values()))[0]
    reasons: list[str] = []
    if overall in ("normal", "dissatisfied", "very_dissatisfied"):
        reasons = sorted(set(rng.sample(REASONS, rng.choice([0, 1, 1, 2]))))
    portal = rng.random() < behaviour.portal
    code = f"CHAOS-{run_id}-{index:06d}"
    dossier = {
        "dossier_code": code, "unit_code": unit.code, "procedure_code": rng.choice(["1.004227", "2.000889", "1.001612"]),
        "channel": rng.choice(["in_person", "in_person", "online"]), "received_at": received.isoformat(),
        "due_at": due.isoformat(), "completed_at": completed.isoformat(),
        "supplement_requests": rng.choices([0, 1, 2], [85, 12, 3])[0],
        "officer_ids": [f"{unit.code}.CB{rng.randrange(1, 6):04d}"], "result": rng.choices(["approved", "refused"], [9, 1])[0],
    }
    submitted = min(now, completed + timedelta(minutes=rng.uniform(1, 60)))
    rating: dict[str, Any] = {
        "dossier_code": code, "channel": "portal" if portal else "kiosk",
        "submitted_at": submitted.isoformat(), "overall": overall,
        "attitude": rng.choices(["good", "normal", "bad"], [7, 2, 1] if overall in ("very_satisfied", "satisfied") else [2, 4, 4])[0],
        "criteria": {name: rng.randint(2, 5) for name in ("access", "procedure", "officer", "result", "feedback")},
        "reasons": reasons,
        "respondent": {"phone": f"+8490{rng.randrange(10**7):07d}"},
    }
    if not portal:
        rating["device_id"] = f"KIOSK-{unit.code}-{rng.randrange(1, 4):02d}"
    inline = portal and rng.random() < 0.5
    if inline:
        rating["dossier"] = dossier
    record = RatingRecord(
        index=index, unit_code=unit.code, dossier_code=code, completed_at=dossier["completed_at"], due_at=dossier["due_at"],
        overall=overall, reasons=reasons, channel=rating["channel"], inline_dossier=inline,
        rating_first=not inline and rng.random() < behaviour.rating_first, impatient=rng.random() < behaviour.impatient,
    )
    return record, dossier, rating


class KioskFleet:
    """Posts `total` ratings at `rate` per second from the kiosks of every rated unit and the portal, at most
    `concurrency` ratings at a time (as many devices posting at once: a busy intake slows them down instead of
    burying itself under requests that time out and come back)."""

    def __init__(
        self, intake_url: str, kiosk_keys: dict[str, list[str]], portal_key: str, *, seed: int, total: int, rate: float,
        behaviour: Behaviour | None = None, concurrency: int = 48, clock: Callable[[], float] = time.monotonic,
        run_started: float | None = None,
    ) -> None:
        self.intake_url = intake_url
        self.kiosk_keys = kiosk_keys
        self.portal_key = portal_key
        self.seed = seed
        self.total = total
        self.rate = rate
        self.behaviour = behaviour or Behaviour()
        self.concurrency = concurrency
        self.clock = clock
        self.t0 = run_started if run_started is not None else clock()
        self.run_id = f"{seed:x}"[-6:] + uuid.uuid4().hex[:4]
        self.records: list[RatingRecord] = []
        self.tally = FleetTally(planned=total)
        self.acknowledged = 0  # ratings answered 202 so far (what the fault log quotes)
        self.posting_seconds = 0.0

    def now(self) -> float:
        return self.clock() - self.t0

    async def run(self) -> list[RatingRecord]:
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency + 16, max_keepalive_connections=64)
        started = self.clock()
        wall = datetime.now(timezone.utc)
        async with httpx.AsyncClient(base_url=self.intake_url, limits=limits) as client:
            tasks = []
            for index in range(self.total):
                delay = started + index / self.rate - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                await gate.acquire()
                now = wall + timedelta(seconds=self.clock() - started)
                tasks.append(asyncio.create_task(self._one(client, index, now, gate)))
            await asyncio.gather(*tasks)
        self.posting_seconds = self.clock() - started
        self.records.sort(key=lambda r: r.index)
        return self.records

    async def _one(self, client: httpx.AsyncClient, index: int, now: datetime, gate: asyncio.Semaphore) -> None:
        try:
            record, dossier, rating = draw_record(self.seed, index, self.run_id, now, self.behaviour)
            self.records.append(record)
            rng = random.Random(self.seed * 7_000_003 + index)
            key = self.portal_key if record.channel == "portal" else rng.choice(self.kiosk_keys[record.unit_code])
            portal = self.portal_key
            b = self.behaviour
            if record.inline_dossier:
                await self._rating(client, record, key, rating, rng)
            elif record.rating_first:
                await self._rating(client, record, key, rating, rng)
                await self._send(client, record, "dossier", "/v1/dossiers", portal, dossier, patient=True)
            else:
                sent = await self._send(client, record, "dossier", "/v1/dossiers", portal, dossier, patient=True)
                if sent.first("202") is not None:
                    await self._rating(client, record, key, rating, rng)
            answered = record.post("rating")
            if answered is not None and answered.first("202") is not None:
                if rng.random() < b.resend_answered:
                    await self._send(client, record, "resend", "/v1/ratings", key, rating, patient=True, idempotency_key=answered.key)
                if rng.random() < b.second_press:
                    await self._send(client, record, "second_press", "/v1/ratings", key, rating, patient=True)
        finally:
            self.tally.finished += 1
            gate.release()

    async def _rating(self, client: httpx.AsyncClient, record: RatingRecord, key: str, body: dict[str, Any], rng: random.Random) -> None:
        post = await self._send(client, record, "rating", "/v1/ratings", key, body, patient=not record.impatient)
        if post.first("202") is not None:
            self.acknowledged += 1

    async def _send(
        self, client: httpx.AsyncClient, record: RatingRecord, purpose: str, path: str, token: str, body: dict[str, Any],
        *, patient: bool, idempotency_key: str | None = None,
    ) -> Post:
        """POST with a kiosk's retry policy: the same key every attempt, backoff with jitter, Retry-After honoured."""
        post = Post(purpose, idempotency_key or str(uuid.uuid4()))
        record.posts.append(post)
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": post.key}
        timeout = self.behaviour.timeout_seconds * (2.5 if purpose == "dossier" else 1.0)
        give_up = self.clock() + self.behaviour.give_up_after_seconds
        failures = 0
        while True:
            retry_after = 0.0
            try:
                answer = await client.post(path, json=body, headers=headers, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                attempt = Attempt(self.now(), NOT_SENT, detail=type(exc).__name__)
            except httpx.TransportError as exc:  # read timeouts, resets, a server gone mid-answer
                attempt = Attempt(self.now(), NO_ANSWER, detail=type(exc).__name__)
            else:
                attempt = _attempt_of(self.now(), answer)
                retry_after = _seconds(answer.headers.get("Retry-After"))
            post.attempts.append(attempt)
            self.tally.note(attempt.outcome)
            retryable = not attempt.answered or int(attempt.outcome) in RETRYABLE
            if not retryable or not patient or self.clock() > give_up:
                return post
            failures += 1
            self.tally.retries += 1
            await asyncio.sleep(max(retry_after, min(10.0, 0.25 * 2 ** min(failures, 6)) * (0.5 + random.random() / 2)))

    def write_ledger(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            for record in self.records:
                out.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


def _attempt_of(at: float, answer: httpx.Response) -> Attempt:
    rating_id = status = detail = None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if isinstance(body, dict):
        rating_id = body.get("rating_id") or body.get("first_rating_id")
        status = body.get("status") if answer.status_code < 300 else None
        if answer.status_code >= 400:
            detail = str(body.get("title") or body.get("detail") or "")[:120]
    return Attempt(at, str(answer.status_code), rating_id if isinstance(rating_id, str) else None,
                   status if isinstance(status, str) else None, detail)


def _seconds(header: str | None) -> float:
    try:
        return min(30.0, float(header)) if header else 0.0
    except ValueError:
        return 0.0


def load_ledger(path: Path) -> list[RatingRecord]:
    """A ledger written by `write_ledger`, e.g. to check the invariants of a finished run again."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        posts = [Post(p["purpose"], p["key"], [Attempt(**a) for a in p["attempts"]]) for p in raw.pop("posts")]
        records.append(RatingRecord(**raw, posts=posts))
    return records
