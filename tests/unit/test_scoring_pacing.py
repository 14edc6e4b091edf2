"""The score publisher rests in proportion to its last pass, so under steady load it cannot take all the CPU
(every figure it publishes is consumed again by workflow and the publisher). A fake clock: no timing."""

from __future__ import annotations

import asyncio

import pytest

from services.scoring import scorer as scorer_module
from services.scoring.domain.profiles import ProfileBook
from services.scoring.scorer import PassResult, Scorer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def rests_after_passes(monkeypatch: pytest.MonkeyPatch, pass_seconds: float, events: int, rest_factor: float) -> list[float]:
    clock = Clock()
    monkeypatch.setattr(scorer_module.time, "monotonic", clock.monotonic)
    rests: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        rests.append(seconds)
        if len(rests) == 3:
            raise asyncio.CancelledError
        await real_sleep(0)

    monkeypatch.setattr(scorer_module.asyncio, "sleep", sleep)
    scorer = Scorer(engine=None, book=ProfileBook.build(), topic_prefix="t.")  # type: ignore[arg-type]

    async def publish_once() -> PassResult:
        clock.now += pass_seconds
        return PassResult(unit_rows=1, events=events)

    async def prune() -> None:
        return None

    scorer.publish_once = publish_once  # type: ignore[method-assign]
    scorer._prune_feed = prune  # type: ignore[method-assign]
    scorer.wake.set()
    scorer.wake.set = lambda: None  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await scorer.run(poll_seconds=0, min_interval_seconds=0.05, rest_factor=rest_factor)
    return rests


async def test_a_long_pass_is_followed_by_a_proportional_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    rests = await rests_after_passes(monkeypatch, pass_seconds=0.2, events=1020, rest_factor=3.0)
    assert rests[0] == pytest.approx(0.6)  # 3 x 0.2 s: the publisher takes at most a quarter of the time


async def test_the_rest_is_bounded_after_a_long_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    rests = await rests_after_passes(monkeypatch, pass_seconds=30.0, events=24_000, rest_factor=3.0)
    assert rests[0] == pytest.approx(scorer_module.MAX_REST_SECONDS)


async def test_a_short_pass_rests_the_minimum_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    rests = await rests_after_passes(monkeypatch, pass_seconds=0.001, events=20, rest_factor=3.0)
    assert rests[0] == pytest.approx(0.05)


async def test_a_pass_that_published_nothing_does_not_rest_longer(monkeypatch: pytest.MonkeyPatch) -> None:
    rests = await rests_after_passes(monkeypatch, pass_seconds=0.2, events=0, rest_factor=3.0)
    assert rests[0] == pytest.approx(0.05)


async def test_a_backlog_is_drained_in_one_pass_before_resting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that left dirty rows behind is followed by the next batch at once, not by a rest: after a catch-up
    the score publisher worked a quarter of the time while 950,000 figures waited. The rest that follows the pass
    is in proportion to the whole pass (three batches of 0.2 s here), within its bound."""
    clock = Clock()
    monkeypatch.setattr(scorer_module.time, "monotonic", clock.monotonic)
    batches_before_rest: list[int] = []
    rests: list[float] = []
    batches = 0
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        rests.append(seconds)
        batches_before_rest.append(batches)
        raise asyncio.CancelledError

    monkeypatch.setattr(scorer_module.asyncio, "sleep", sleep)
    scorer = Scorer(engine=None, book=ProfileBook.build(), topic_prefix="t.")  # type: ignore[arg-type]

    async def publish_once() -> PassResult:
        nonlocal batches
        batches += 1
        clock.now += 0.2
        await real_sleep(0)
        return PassResult(unit_rows=240, events=4_000, more=batches < 3)

    async def prune() -> None:
        return None

    scorer.publish_once = publish_once  # type: ignore[method-assign]
    scorer._prune_feed = prune  # type: ignore[method-assign]
    scorer.wake.set()
    with pytest.raises(asyncio.CancelledError):
        await scorer.run(poll_seconds=0, min_interval_seconds=0.05, rest_factor=3.0)
    assert batches_before_rest == [3]
    assert rests[0] == pytest.approx(min(scorer_module.MAX_REST_SECONDS, 3 * 0.6))
