"""Group commit of single rating posts: concurrent `POST /v1/ratings` requests are written together in one
transaction, and each is answered only after that transaction commits.

Why: every post is a write transaction (rating, slot, outbox row). One transaction per request makes
concurrent kiosks queue for the database's write lock (SQLite has one writer; PostgreSQL pays a commit
each), and the lock is held across the event loop's scheduling gaps. The writer takes whatever requests
are waiting — one when the system is quiet, hundreds under load — and runs them through the same bulk
write path as `POST /v1/ratings/batch`. "202 only after commit" still holds for every request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import handlers, metrics
from services.intake.handlers import ItemError, RatingOutcome
from services.intake.schemas import RatingIn
from shared.auth import Principal
from shared.logging import get_logger
from shared.problems import Problem

log = get_logger(__name__)
MAX_GROUP = 256
RELAY_WAKE_SECONDS = 0.05
ATTEMPTS = 3


@dataclass
class Post:
    principal: Principal
    rating: RatingIn
    idempotency_key: str | None
    fingerprint: str
    traceparent: str | None
    answer: asyncio.Future[tuple[int, dict[str, Any]]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RatingWriter:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.queue: asyncio.Queue[Post] = asyncio.Queue()
        self._wake_pending = False

    def _wake_relay_soon(self) -> None:
        """Wake the outbox relay at most every RELAY_WAKE_SECONDS: waking it after every group made its
        write transaction collide with the next group's on SQLite's single write lock (busy waits)."""
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_later(RELAY_WAKE_SECONDS, self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self.runtime.relay.wake()

    async def submit(self, post: Post) -> tuple[int, dict[str, Any]]:
        """Queue one post and wait for its committed answer (status, body); a refusal raises its Problem."""
        await self.queue.put(post)
        return await post.answer

    async def run(self) -> None:
        while True:
            group = [await self.queue.get()]
            for _ in range(2):  # let requests already being parsed join this group
                await asyncio.sleep(0)
            while len(group) < MAX_GROUP and not self.queue.empty():
                group.append(self.queue.get_nowait())
            await self._write(group)

    async def _write(self, group: list[Post]) -> None:
        metrics.WRITE_GROUP.observe(len(group))
        started = time.perf_counter()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.runtime.engine.begin() as conn:
                    answers = await self._apply(conn, group)
                break
            except IntegrityError:
                # Another replica (or a batch) took a slot or key meanwhile: the next pass sees it and answers 409.
                if attempt == ATTEMPTS:
                    answers = [Problem(409, "Conflicting concurrent request", "retry the request")] * len(group)
            except Exception as exc:  # the database is away: every post of the group fails the same way
                answers = [exc] * len(group)
                break
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        self._wake_relay_soon()
        for post, answer in zip(group, answers, strict=True):
            if post.answer.done():
                continue  # the client went away
            if isinstance(answer, BaseException):
                post.answer.set_exception(answer)
            else:
                post.answer.set_result(answer)

    async def _apply(self, conn: AsyncConnection, group: list[Post]) -> list[tuple[int, dict[str, Any]] | BaseException]:
        answers: list[tuple[int, dict[str, Any]] | BaseException | None] = [None] * len(group)
        first_with_key: dict[tuple[str, str], int] = {}
        fresh: list[int] = []
        for index, post in enumerate(group):
            if post.idempotency_key is None:
                fresh.append(index)
                continue
            key = (post.principal.subject, post.idempotency_key)
            if key in first_with_key:
                continue  # answered with the first of the group below
            first_with_key[key] = index
            try:
                stored = await handlers.stored_response(conn, post.principal, post.idempotency_key, post.fingerprint)
            except Problem as problem:
                answers[index] = problem
                continue
            if stored is not None:
                answers[index] = stored
            else:
                fresh.append(index)
        if fresh:
            outcomes = await handlers.record_ratings(
                conn, self.runtime.extras["intake"], [group[i].principal for i in fresh], [group[i].rating for i in fresh],
                group[fresh[0]].traceparent,
            )
            for index, outcome in zip(fresh, outcomes, strict=True):
                post = group[index]
                if isinstance(outcome, ItemError):
                    answers[index] = outcome.as_problem()
                    continue
                assert isinstance(outcome, RatingOutcome)
                body = {"rating_id": outcome.rating_id, "status": outcome.status}
                answers[index] = (202, body)
                if post.idempotency_key is not None:
                    await handlers.remember_response(conn, post.principal, post.idempotency_key, post.fingerprint, 202, body)
        for index, post in enumerate(group):
            if answers[index] is None:  # a repeat of a key within the group
                first = first_with_key[(post.principal.subject, post.idempotency_key or "")]
                same = group[first].fingerprint == post.fingerprint
                answers[index] = answers[first] if same else Problem(
                    409, "Idempotency key reused", "this Idempotency-Key was used with a different body")
        return answers  # type: ignore[return-value]
