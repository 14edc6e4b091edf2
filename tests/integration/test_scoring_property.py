"""Property: any interleaving, duplication and batching of scoring's events gives the counters of a rebuild.

Hypothesis draws a small history (units registered late or moved, dossiers corrected to another unit or
month, ratings flagged, verified, superseded), then delivers it in a random order, with some events
delivered twice, cut into random batches — on a real database, on SQLite and PostgreSQL. Only the unit
registry keeps its order, as Kafka keeps the order of one key's events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import events
from tests.support import scoring_events as se
from tests.support.infra import Backend

pytestmark = pytest.mark.integration

UNITS = ["79.A", "79.B"]
MONTHS = ["2026-03-31 20:00", "2026-04-01 06:30", "2026-06-30 23:00"]  # 06:30 on 1 April is 23:30 UTC on 31 March
DOSSIERS = ["D1", "D2", "D3"]
OVERALL = ["very_satisfied", "satisfied", "normal", "dissatisfied"]


@st.composite
def histories(draw: st.DrawFn) -> list[events.CloudEvent]:
    history: list[events.CloudEvent] = [
        se.unit("79", level="province"), se.unit("79.C", "79", level="center"), se.unit("79.A", "79"),
        se.unit("79.B", draw(st.sampled_from(["79", "79.C"]))),
    ]
    if draw(st.booleans()):
        history.append(se.unit("79.B", "79"))  # moved: the newest registration holds
    for code in DOSSIERS:
        for revision in range(1, draw(st.integers(0, 2)) + 1):
            history.append(se.dossier(
                code, draw(st.sampled_from(UNITS)), completed=draw(st.sampled_from(MONTHS)), due="2026-04-03 17:00",
                received="2026-03-01 08:00", revision=revision, supplement_requests=draw(st.integers(0, 3)),
                officers=draw(st.sampled_from([[], ["79.A.CB1"], ["79.A.CB1", "79.B.CB2"]])),
            ))
    ratings: list[events.CloudEvent] = []
    for _ in range(draw(st.integers(1, 6))):
        code = draw(st.sampled_from(DOSSIERS))
        supersedes = se.rating_id_of(draw(st.sampled_from(ratings))) if ratings and draw(st.booleans()) else None
        rating = se.rating(
            code, draw(st.sampled_from(UNITS)), draw(st.sampled_from(OVERALL)), completed=draw(st.sampled_from(MONTHS)),
            flagged=draw(st.booleans()), attitude=draw(st.sampled_from([None, "good", "bad"])), supersedes=supersedes,
            criteria={"access": draw(st.integers(1, 5))}, officers=draw(st.sampled_from([[], ["79.A.CB1"]])),
        )
        ratings.append(rating)
        for _ in range(draw(st.integers(0, 2))):
            history.append(se.verdict(se.rating_id_of(rating), code, draw(st.sampled_from(["genuine", "not_genuine"])),
                                      when=draw(st.sampled_from(["2026-05-01 09:00", "2026-05-02 09:00"]))))
    return history + ratings


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    engine = await se.scoring_engine(backend)
    yield engine
    await engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories(), data=st.data())
async def test_any_delivery_order_gives_the_counters_of_a_rebuild(engine: AsyncEngine, history: list[events.CloudEvent], data: st.DataObject) -> None:
    contributions = [e for e in history if e.type != events.UNIT_UPSERTED]
    delivered = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(contributions), max_size=6))))
    # Kafka keeps one key's order within its partition (and the runner drops a re-sent event id): the
    # registry's events keep their relative order; everything else may come in any order, some twice.
    registry = iter([e for e in history if e.type == events.UNIT_UPSERTED])
    delivered = [next(registry) if e.type == events.UNIT_UPSERTED else e for e in delivered]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(delivered)), max_size=5)))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)])]

    await se.clear_scoring_state(engine)
    await se.apply_each(engine, batches)
    incremental = await se.all_counters(engine), await se.all_officer_counters(engine)

    await se.clear_scoring_state(engine)
    await se.apply_each(engine, [[event] for event in history])  # the history in its own order, one event at a time
    in_order = await se.all_counters(engine), await se.all_officer_counters(engine)
    await se.rebuild(engine)
    rebuilt = await se.all_counters(engine), await se.all_officer_counters(engine)

    assert incremental == in_order == rebuilt
    province_ratings = sum(v.get("ratings", 0) for (unit, _month), v in rebuilt[0].items() if unit == "79")
    ward_ratings = sum(v.get("ratings", 0) for (unit, _month), v in rebuilt[0].items() if unit in UNITS)
    assert province_ratings == ward_ratings  # the province is the sum of its wards
