"""The live feed behind GET /v1/rankings/stream: published score changes in order, and a wake-up signal.

Changes are read from the `score_feed` table (so every replica's stream sees every replica's changes, and
a client resumes with Last-Event-ID); the signal only makes this replica's streams read at once instead
of at their next poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from shared.aio import wait_event

POLL_SECONDS = 1.0
PAGE = 500


class Broadcast:
    """Wake every subscribed stream of this process."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Event] = set()

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._subscribers.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._subscribers.discard(event)

    def notify(self) -> None:
        for event in self._subscribers:
            event.set()


async def latest_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.max(store.score_feed.c.id))) or 0)


async def changes(
    engine: AsyncEngine, broadcast: Broadcast, after_id: int | None, profile: str | None, period: str | None,
) -> AsyncIterator[dict[str, Any]]:
    """Server-sent events, one per published change after `after_id` (None: from now on), forever."""
    feed = store.score_feed
    signal = broadcast.subscribe()
    try:
        last = await latest_id(engine) if after_id is None else after_id
        while True:
            query = sa.select(feed.c.id, feed.c.data).where(feed.c.id > last).order_by(feed.c.id).limit(PAGE)
            if profile:
                query = query.where(feed.c.profile == profile)
            if period:
                query = query.where(feed.c.period == period)
            async with engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                last = row.id
                yield {"id": str(row.id), "event": "score.changed", "data": row.data}
            if len(rows) < PAGE:
                await wait_event(signal, POLL_SECONDS)
                signal.clear()
    finally:
        broadcast.unsubscribe(signal)
