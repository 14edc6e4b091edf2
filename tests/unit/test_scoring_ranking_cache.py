"""The computed-rankings cache is bounded by bytes as well as by count: national rankings are megabytes each."""

from __future__ import annotations

import pytest

from services.scoring import reads
from services.scoring.reads import RankingCache


async def test_the_oldest_answers_leave_when_the_bytes_run_over(monkeypatch: pytest.MonkeyPatch) -> None:
    async def newest_feed_id(_conn: object) -> int:
        return 7  # nothing new published: every cached answer is still valid

    monkeypatch.setattr(reads.store, "newest_feed_id", newest_feed_id)
    cache = RankingCache(size=256, max_bytes=100)
    renders: list[str] = []

    def renderer(name: str):  # type: ignore[no-untyped-def]
        async def render() -> bytes:
            renders.append(name)
            return name.encode() * 40

        return render

    for name in "abc":
        await cache.get(None, (name,), renderer(name))  # type: ignore[arg-type]
    assert await cache.get(None, ("c",), renderer("c")) == b"c" * 40  # type: ignore[arg-type]
    assert await cache.get(None, ("b",), renderer("b")) == b"b" * 40  # type: ignore[arg-type]
    assert renders == ["a", "b", "c"]  # b and c came from the cache
    await cache.get(None, ("a",), renderer("a"))  # type: ignore[arg-type]
    assert renders == ["a", "b", "c", "a"]  # a had been evicted: 3 x 40 bytes is over 100
