"""Scoring's handlers and score publisher inside real database transactions, on SQLite and PostgreSQL.

Events are the contract's CloudEvents (shared.events), applied batch by batch exactly as the consumer
runner applies them; figures are checked against numbers computed by hand from the regulations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring.domain.profiles import ProfileBook
from services.scoring.scorer import Scorer
from tests.support import scoring_events as se
from tests.support.infra import Backend

pytestmark = pytest.mark.integration
WARD = "79.P1"


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    engine = await se.scoring_engine(backend)
    await se.apply(engine, [se.unit("79", level="province"), se.unit(WARD, "79"), se.unit("79.P2", "79")])
    yield engine
    await engine.dispose()


async def publish(engine: AsyncEngine, book: ProfileBook | None = None) -> None:
    await Scorer(engine, book or ProfileBook.build(), "t.").publish_once()


def ward_month() -> list:
    """November 2026 in one ward, computed by hand below.

    Ten dossiers: D1–D5, D9, D10 on time; D6 late by 3 working days (due Mon 2 Nov, done Thu 5 Nov);
    D7 late by 3 working days across the Culture Day holiday (due Fri 20 Nov, done Thu 26 Nov);
    D8 late by 7 (due Mon 2 Nov, done Wed 11 Nov). Supplement requests: D3, D4, D7 once; D5, D8 twice.
    Eight attitude answers: 5 good, 2 normal, 1 bad (with a dissatisfied rating of D1); one rating without.
    """
    on_time = dict(due="2026-11-19 17:00", completed="2026-11-18 10:00")
    dossiers = [
        se.dossier("D1", WARD, **on_time), se.dossier("D2", WARD, **on_time),
        se.dossier("D3", WARD, supplement_requests=1, **on_time), se.dossier("D4", WARD, supplement_requests=1, **on_time),
        se.dossier("D5", WARD, supplement_requests=2, **on_time),
        se.dossier("D6", WARD, due="2026-11-02 17:00", completed="2026-11-05 10:00"),
        se.dossier("D7", WARD, due="2026-11-20 17:00", completed="2026-11-26 09:00", supplement_requests=1),
        se.dossier("D8", WARD, due="2026-11-02 17:00", completed="2026-11-11 10:00", supplement_requests=2),
        se.dossier("D9", WARD, **on_time), se.dossier("D10", WARD, **on_time),
    ]
    completed = {d.data["dossier_code"]: d.data["completed_at"] for d in dossiers}

    def rated(code: str, overall: str, attitude: str | None) -> object:
        local = completed[code][:16].replace("T", " ")
        return se.rating(code, WARD, overall, attitude=attitude, completed=local)

    ratings = [
        rated("D1", "dissatisfied", "bad"), rated("D2", "satisfied", "good"), rated("D3", "very_satisfied", "good"),
        rated("D4", "satisfied", "good"), rated("D6", "satisfied", "good"), rated("D7", "normal", "normal"),
        rated("D8", "normal", "normal"), rated("D9", "satisfied", "good"), rated("D10", "satisfied", None),
    ]
    return dossiers + ratings


async def test_a_hand_computed_ward_month_under_hcmc_2024_and_qd766(engine: AsyncEngine) -> None:
    await se.apply(engine, ward_month())
    await publish(engine)
    provisional = await se.figure(engine, WARD, "2026-11", "hcmc-2024")
    # Before D and E: A = 7/10, B = 8/10, C = 5/8 → 2.125, provisional.
    assert provisional.band == "provisional" and provisional.provisional
    assert provisional.score == pytest.approx(0.7 + 0.8 + 0.625)

    await se.apply(engine, [se.assessment(WARD, "2026-11", feedback_handling=17.5, public_listing=True)])
    await publish(engine)
    card = await se.figure(engine, WARD, "2026-11", "hcmc-2024")
    assert card.components["A"] | {"wilson_95": None} == {"value": 0.7, "points": 7, "of": 10, "wilson_95": None, "grace_working_days": 0}
    assert (card.components["B"]["points"], card.components["B"]["of"]) == (8, 10)
    assert (card.components["C"]["points"], card.components["C"]["of"]) == (5, 8)
    assert card.score == pytest.approx(20.625)  # 0.7 + 0.8 + 0.625 + 17.5 + 1
    assert card.band == "satisfied" and not card.provisional and card.version == 2
    assert (card.ratings, card.dossiers) == (9, 10)

    lenient = ProfileBook.build({"hcmc-2024": {"a_grace_working_days": 5, "b_denominator": "returned_dossiers"}})
    scored = lenient.score("hcmc-2024", "2026-11", await se.counters(engine, WARD, "2026-11"), {"feedback_handling": 17.5, "public_listing": True})
    assert scored is not None
    # Grace 5: D6 and D7 (3 days late) earn A's point, D8 (7) does not → 9/10; B over returned: D3, D4, D7 of 5.
    assert scored[0].components["A"]["value"] == 0.9 and scored[0].components["B"]["value"] == 0.6
    assert scored[0].score == pytest.approx(0.9 + 0.6 + 0.625 + 18.5)

    qd766 = await se.figure(engine, WARD, "2026-11", "qd766-satisfaction")
    # Bad dossiers: D1 (rated dissatisfied), D5 (2 supplements), D6, D7, D8 (late) → 5/10 → 0.5 × 6 / 0.9.
    assert qd766.components["dossier_satisfaction"]["value"] == pytest.approx(3.333333, abs=1e-6)
    province = await se.figure(engine, "79", "2026-Q4", "hcmc-2024")
    assert (province.dossiers, province.ratings) == (10, 9)  # rolled up; the province has no D and E of its own
    assert province.band == "provisional"


async def test_a_rating_at_2330_utc_on_31_march_counts_in_april(engine: AsyncEngine) -> None:
    await se.apply(engine, [se.rating("D-EDGE", WARD, completed="2026-04-01 06:30")])  # 23:30 UTC on 31 March
    assert (await se.counters(engine, WARD, "2026-04"))["ratings"] == 1
    assert (await se.counters(engine, WARD, "2026-Q2"))["ratings"] == 1
    assert await se.counters(engine, WARD, "2026-03") == {}


async def test_corrections_redelivery_and_verdicts_keep_counters_equal_to_the_contributions(engine: AsyncEngine) -> None:
    first = se.rating("D1", WARD, "dissatisfied", attitude="bad")
    flagged = se.rating("D2", WARD, "satisfied", flagged=True)
    doomed = se.rating("D3", WARD, "satisfied")
    await se.apply(engine, [se.dossier("D1", WARD), se.dossier("D2", WARD), se.dossier("D3", WARD), first, flagged, doomed])
    await se.apply(engine, [first, flagged])  # redelivered: nothing changes
    november = await se.counters(engine, WARD, "2026-11")
    assert (november["ratings"], november.get("satisfied", 0), november["qd766_bad"]) == (2, 1, 1)

    correction = se.rating("D1", WARD, "satisfied", attitude="good", supersedes=se.rating_id_of(first))
    await se.apply(engine, [
        correction,
        se.verdict(se.rating_id_of(flagged), "D2", "genuine"),
        se.verdict(se.rating_id_of(doomed), "D3", "not_genuine"),
    ])
    november = await se.counters(engine, WARD, "2026-11")
    # D1's dissatisfied rating replaced by a satisfied one; D2's flagged rating counts; D3's is gone.
    assert (november["ratings"], november["satisfied"], november.get("dissatisfied", 0)) == (2, 2, 0)
    assert november.get("qd766_bad", 0) == 0 and november["attitude_good"] == 1

    # A corrected dossier moves to December, taking its rating along.
    await se.apply(engine, [se.dossier("D1", WARD, completed="2026-12-01 09:00", due="2026-12-04 17:00", revision=2)])
    await se.apply(engine, [se.dossier("D1", WARD, revision=1)])  # a stale revision changes nothing
    assert (await se.counters(engine, WARD, "2026-11"))["dossiers"] == 2
    december = await se.counters(engine, WARD, "2026-12")
    assert (december["dossiers"], december["ratings"], december["satisfied"]) == (1, 1, 1)
    assert (await se.counters(engine, WARD, "2026-Q4"))["ratings"] == 2

    before = await se.all_counters(engine)
    await se.rebuild(engine)
    assert await se.all_counters(engine) == before


async def test_a_verdict_before_its_rating_and_a_correction_before_the_original(engine: AsyncEngine) -> None:
    flagged = se.rating("D1", WARD, flagged=True)
    original = se.rating("D2", WARD, "dissatisfied")
    correction = se.rating("D2", WARD, "satisfied", supersedes=se.rating_id_of(original))
    await se.apply(engine, [se.verdict(se.rating_id_of(flagged), "D1", "genuine"), correction])
    await se.apply(engine, [flagged, original])
    november = await se.counters(engine, WARD, "2026-11")
    assert (november["ratings"], november["satisfied"], november.get("dissatisfied", 0)) == (2, 2, 0)


async def test_provinces_sum_their_units_counts_whatever_order_the_registry_arrives_in(engine: AsyncEngine) -> None:
    # Ratings of a ward that is registered only later, under a district that is registered later still.
    await se.apply(engine, [se.rating(f"N{i}", "79.NEW", "satisfied" if i % 4 else "dissatisfied") for i in range(8)])
    await se.apply(engine, [se.rating(f"P{i}", WARD, "satisfied") for i in range(3)])
    assert (await se.counters(engine, "79", "2026-11"))["ratings"] == 3
    await se.apply(engine, [se.unit("79.NEW", "79.D1")])
    await se.apply(engine, [se.unit("79.D1", "79", level="center")])
    province = await se.counters(engine, "79", "2026-11")
    assert (province["ratings"], province["satisfied"]) == (11, 9)  # counts summed, not shares averaged
    assert (await se.counters(engine, "79.D1", "2026")) ["ratings"] == 8
    # The ward moves to another parent: the old one loses it, the new one gains it.
    await se.apply(engine, [se.unit("79.NEW", "79.P2")])
    assert await se.counters(engine, "79.D1", "2026-11") == {}
    assert (await se.counters(engine, "79.P2", "2026-11"))["ratings"] == 8
    assert (await se.counters(engine, "79", "2026-11"))["ratings"] == 11
    before = await se.all_counters(engine)
    await se.rebuild(engine)
    assert await se.all_counters(engine) == before


async def test_versions_only_go_up_and_threshold_crossings_are_emitted(engine: AsyncEngine) -> None:
    book = ProfileBook.build(minimum_count=2)
    await se.apply(engine, [se.rating(f"A{i}", WARD, "dissatisfied") for i in range(2)])
    await publish(engine, book)
    await se.apply(engine, [se.rating(f"B{i}", WARD, "satisfied") for i in range(10)])
    await publish(engine, book)
    await se.apply(engine, [se.rating("C", WARD, "satisfied")])
    await publish(engine, book)
    changes = [e["data"] for e in await se.outbox_events(engine, "vn.hailong.score.changed.v1")
               if e["data"]["unit_code"] == WARD and e["data"]["period"] == "2026-11" and e["data"]["profile"] == "satisfied-share"]
    assert [c["version"] for c in changes] == [1, 2, 3]
    assert [c["band"] for c in changes] == ["not_satisfied", "satisfied", "satisfied"]
    assert changes[-1]["components"]["wilson_95"] and changes[-1]["ranked"] is True and changes[-1]["unit_level"] == "ward"
    crossings = [e["data"] for e in await se.outbox_events(engine, "vn.hailong.score.threshold_crossed.v1")
                 if e["data"]["unit_code"] == WARD and e["data"]["period"] == "2026-11" and e["data"]["profile"] == "satisfied-share"]
    assert [(c["direction"], c["version"]) for c in crossings] == [("became_not_satisfied", 1), ("recovered", 2)]


async def test_assessments_are_partial_and_the_newest_value_of_each_field_holds(engine: AsyncEngine) -> None:
    from datetime import datetime, timezone

    early, late = datetime(2026, 12, 1, tzinfo=timezone.utc), datetime(2026, 12, 2, tzinfo=timezone.utc)
    await se.apply(engine, [se.assessment(WARD, "2026-Q4", time=late, feedback_handling=17.0)])
    await se.apply(engine, [se.assessment(WARD, "2026-Q4", time=early, feedback_handling=12.0, public_listing=False)])
    await se.apply(engine, [se.assessment(WARD, "2026-Q4", time=late, public_listing=True)])
    await publish(engine)
    card = await se.figure(engine, WARD, "2026-Q4", "hcmc-2024")
    assert card.components["D"]["value"] == 17.0 and card.components["E"]["value"] == 1
    assert card.dossiers == 0 and card.band == "insufficient_data"


async def test_officers_get_their_own_figures(engine: AsyncEngine) -> None:
    await se.apply(engine, [se.officer("79.P1.CB01", WARD), se.dossier("D1", WARD, officers=["79.P1.CB01"])])
    await se.apply(engine, [se.rating(f"D{i}", WARD, "dissatisfied" if i else "satisfied", officers=["79.P1.CB01"]) for i in range(6)])
    await publish(engine)
    officers = [e["data"] for e in await se.outbox_events(engine, "vn.hailong.officer_score.changed.v1") if e["data"]["period"] == "2026"]
    share = next(o for o in officers if o["profile"] == "satisfied-share")
    assert (share["officer_id"], share["ratings"], share["band"]) == ("79.P1.CB01", 6, "not_satisfied")
    assert share["components"]["satisfied"] == 1
    before = await se.all_officer_counters(engine)
    await se.rebuild(engine)
    assert await se.all_officer_counters(engine) == before


async def test_batches_and_passes_reuse_their_compiled_statements(engine: AsyncEngine) -> None:
    """The consumer's writes and the score publisher's compile each statement once: a statement built afresh per
    batch was compiled afresh and kept in execute_many's cache (while catching up on 1,000,000 ratings, scoring's
    memory grew by ~100 MB of compiled statements that way, and every batch paid for compiling them)."""
    from shared.db import _compiled

    def month(n: int) -> list:
        code = f"M{n}"
        return [se.dossier(code, WARD, due="2026-11-19 17:00", completed="2026-11-18 10:00"),
                se.rating(code, WARD, "satisfied", attitude="good", completed="2026-11-18 10:00")]

    await se.apply(engine, month(0))
    await publish(engine)
    compiled_before = _compiled.cache_info().misses
    for n in range(1, 4):
        await se.apply(engine, month(n))
        await publish(engine)
    assert _compiled.cache_info().misses == compiled_before
    assert (await se.figure(engine, WARD, "2026-11", "hcmc-2024")).ratings == 4
